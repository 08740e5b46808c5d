"""The README's layout section is the code's own: every package and module with its docstring's first sentence."""

from __future__ import annotations

from pathlib import Path

from dit_demo.cli.layout import first_sentence, layout, readme_layout

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_layout_is_made_from_the_docstrings():
    shown = readme_layout(README.read_text())
    assert shown == layout(), "README layout out of date: python -m dit_demo.cli.layout README.md"


def test_every_package_and_module_says_what_it_holds():
    root = README.parent
    silent = [
        p.relative_to(root).as_posix()
        for p in [*root.glob("dit_demo/**/*.py"), *root.glob("samplers/*.py")]
        if len(first_sentence(p)) < 10
    ]
    assert not silent, f"no docstring (or a too short one): {silent}"
