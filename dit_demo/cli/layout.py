"""The README's layout section, made from the code itself: each package's and module's docstring, first sentence.

    python -m dit_demo.cli.layout README.md     # rewrites the block between <!-- layout --> and <!-- /layout -->

A test keeps the README's block equal to what this makes, so the layout section cannot go stale: a new
module brings its docstring's first sentence, a moved one moves.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# folders that hold no Python, said here since they have no docstring to say it
DATA = {
    "dit_demo/assets": "the README's images, the bench JSON, the shipped evaluation and quality sweep",
    "dit_demo/weights": "the embedded model (Fashion-MNIST), in the hub's folder layout",
}
TESTS = "test_*.py: pytest, on tiny DiT bundles built in the tests, the embedded model and the app in a browser"
_BLOCK = re.compile(r"(<!-- layout -->\n)(.*?)(<!-- /layout -->)", re.S)
WIDTH = 30  # the column where descriptions start


# a period that ends a sentence: not an ellipsis's, not an abbreviation's ("et al.", "e.g.")
_SENTENCE_END = re.compile(r"(?<!\.)(?<!\bal)(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)\.(?=\s|$)")
LONGEST = 110  # characters of a description; a longer first sentence is cut at its first colon or semicolon


def first_sentence(path: Path) -> str:
    """The first sentence of a module's docstring (of a package: its ``__init__.py``'s), on one line."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    text = " ".join(doc.split("\n\n")[0].split())
    end = _SENTENCE_END.search(text)
    sentence = text[: end.start()] if end else text
    if len(sentence) > LONGEST:
        cut = re.search(r"[:;] ", sentence[10:])
        sentence = sentence[: cut.start() + 10] if cut else sentence
    return sentence.rstrip(":")


def _line(depth: int, name: str, text: str) -> str:
    return f"{'  ' * depth}{name}".ljust(WIDTH) + text


def _package(folder: Path, depth: int) -> list[str]:
    lines = []
    for path in sorted(folder.iterdir()):
        relative = path.relative_to(ROOT).as_posix()
        if path.is_dir() and (path / "__init__.py").is_file():
            lines.append(_line(depth, f"{path.name}/", first_sentence(path / "__init__.py")))
            lines += _package(path, depth + 1)
        elif path.is_dir() and relative in DATA:
            lines.append(_line(depth, f"{path.name}/", DATA[relative]))
        elif path.suffix == ".py" and path.name != "__init__.py":
            lines.append(_line(depth, path.name, first_sentence(path)))
    return lines


def layout() -> str:
    """The layout block: app.py, the two packages, and the tests' shared parts."""
    lines = [_line(0, "app.py", first_sentence(ROOT / "app.py"))]
    for package in ("dit_demo", "samplers"):
        lines.append(_line(0, f"{package}/", first_sentence(ROOT / package / "__init__.py")))
        lines += _package(ROOT / package, 1)
    lines.append(_line(0, "tests/", TESTS))
    shared = [p for p in sorted((ROOT / "tests").glob("*.py")) if not p.name.startswith("test_")]
    lines += [_line(1, p.name, first_sentence(p)) for p in shared]
    return "```\n" + "\n".join(lines) + "\n```\n"


def readme_layout(text: str) -> str | None:
    """The README's layout block as it stands (None: it has none)."""
    match = _BLOCK.search(text)
    return None if match is None else match[2]


def refresh(readme: Path) -> None:
    text = readme.read_text()
    if readme_layout(text) is None:
        raise SystemExit(f"error: {readme} has no <!-- layout --> ... <!-- /layout --> block to fill.")
    readme.write_text(_BLOCK.sub(lambda m: m[1] + layout() + m[3], text))


if __name__ == "__main__":
    refresh(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "README.md"))
