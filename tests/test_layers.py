"""The package's layers, read from its imports: no import circle, and nothing imports a layer above its own
(samplers < runtime < training < the lab's subpackages in their order < app < cli < the entry points)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAB = ("specs", "outputs", "sweep", "quality", "compare", "bench", "interchange")  # each imports only those before it
LAYERS = (
    "samplers",
    "dit_demo.runtime",
    "dit_demo.training",
    "dit_demo.lab",
    *(f"dit_demo.lab.{name}" for name in LAB),
    "dit_demo.app",
    "dit_demo.cli",
    "dit_demo",
)


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the project's modules it imports (at any depth of its code: lazy imports count too)."""
    paths = [*ROOT.glob("samplers/**/*.py"), *ROOT.glob("dit_demo/**/*.py")]
    modules = {_module(p): p for p in paths}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def _layer(module: str) -> int:
    return max(i for i, layer in enumerate(LAYERS) if module == layer or module.startswith(layer + "."))


def test_no_module_imports_a_layer_above_its_own():
    upward = [
        f"{module} -> {target}"
        for module, targets in _imports().items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert not upward, "upward imports: " + ", ".join(sorted(upward))


def test_no_import_circle():
    graph = _imports()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*path, module, target]
            if target not in state and (circle := visit(target, [*path, module])):
                return circle
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            circle = visit(module, [])
            assert circle is None, "import circle: " + " -> ".join(circle)


def test_the_layer_check_sees_the_package():
    graph = _imports()
    assert "dit_demo.runtime.engine" in graph["dit_demo.lab.outputs.generate"]  # it reads real imports
    assert len(graph) > 60


def test_every_lab_module_is_in_a_named_subpackage():
    loose = [p.name for p in (ROOT / "dit_demo" / "lab").glob("*.py") if p.name != "__init__.py"]
    packages = sorted(p.name for p in (ROOT / "dit_demo" / "lab").iterdir() if (p / "__init__.py").is_file())
    assert not loose and packages == sorted(LAB), (loose, packages)


def test_no_file_is_over_300_lines():
    paths = [*ROOT.glob("samplers/**/*.py"), *ROOT.glob("dit_demo/**/*.py"), *ROOT.glob("tests/*.py"), ROOT / "app.py"]
    long = {p.relative_to(ROOT).as_posix(): n for p in paths if (n := len(p.read_text().splitlines())) > 300}
    assert not long, f"over 300 lines: {long}"
