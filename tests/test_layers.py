"""The package's imports run one way: public modules -> tools -> estimators -> algorithms ->
backends -> core -> lib, and no module imports itself back through others (no cycles).

Every ``import`` and ``from ... import`` of a kmeans_xp module counts, at module level and inside
functions alike, so a lazy import cannot hide a layering mistake. Third-party imports are not
read.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "kmeans_xp"

# Lowest first. A module may import from its own layer and from the layers below it.
LAYERS = ("exceptions", "_lib", "_core", "_backends", "_algorithms", "_estimators", "_tools")
PUBLIC_LAYER = len(LAYERS)  # __init__, __main__, plot: the top


def _module_name(path: Path) -> str:
    parts = ["kmeans_xp", *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return PUBLIC_LAYER
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else PUBLIC_LAYER


def _imports(path: Path, modules: set[str]) -> set[str]:
    """kmeans_xp modules that ``path`` imports, resolved to the longest existing module name."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from package import module` imports the module; `from module import name`, the
            # module that defines the name.
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE_DIR.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, modules) for p in paths}


def test_every_module_sits_in_a_known_layer():
    odd = [
        m
        for m in _graph()
        if m.count(".") >= 1
        and m.split(".")[1].startswith("_")
        and m.split(".")[1] not in LAYERS
        and m.split(".")[1] != "__main__"
        and m.split(".")[1] != "__init__"
    ]
    assert odd == [], f"modules outside the layers {LAYERS}: {odd}"


def test_imports_only_go_down():
    upward = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in sorted(targets)
        if _layer(target) > _layer(module)
    ]
    assert upward == [], "imports against the layer order:\n" + "\n".join(upward)


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if target.startswith("kmeans_xp") and target in graph:
                if state.get(target) == 1:
                    cycles.append([*path[path.index(target) :], target])
                elif target not in state:
                    visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    ("module", "target", "allowed"),
    [
        ("kmeans_xp._tools.cli", "kmeans_xp._estimators.kmeans", True),
        ("kmeans_xp._core.primitives", "kmeans_xp._lib.compat", True),
        ("kmeans_xp._core.primitives", "kmeans_xp._algorithms.lloyd", False),
        ("kmeans_xp._lib.compat", "kmeans_xp.exceptions", True),
        ("kmeans_xp.exceptions", "kmeans_xp._lib.compat", False),
        ("kmeans_xp._estimators.kmeans", "kmeans_xp._tools.model_files", False),
    ],
)
def test_layer_rule_itself(module, target, allowed):
    """The rule the other tests apply: what may import what."""
    assert (_layer(target) <= _layer(module)) is allowed
