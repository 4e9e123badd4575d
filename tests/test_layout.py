"""The code's layout stays as docs/DESIGN.md states it: imports run one way, a module's private
helpers stay its own, and modules and functions stay small enough to read (a longer one says
why, in a ``# long:`` comment)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ingest", "reconcile")

# Imports run one way: ingest <- conclusions <- outgoing <- daemon <- the app shell: cli, and web
# beside it. A layer may import its own and the layers before it, never a later one; web never
# imports cli, and cli imports web only where `mailroll web` starts it (LAUNCHER).
LAYERS = ["ingest", "reconcile", "reconcile.outgoing", "reconcile.daemon", "reconcile.cli"]
BESIDE = {"reconcile.web": "reconcile.cli"}  # same rank as cli
LAUNCHER = "reconcile.cli.web_cmd"

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules():
    for package in PACKAGES:
        root = REPO / package
        if root.is_dir():
            for path in sorted(root.rglob("*.py")):
                yield path, ".".join(path.relative_to(REPO).with_suffix("").parts)


def _layer(module: str) -> str | None:
    top = module.split(".")[0]
    if module == "reconcile.web" or module.startswith("reconcile.web."):
        return "reconcile.web"
    if top not in ("ingest", "reconcile"):
        return None
    if module in ("reconcile.__main__",):
        return "reconcile.cli"
    return max((layer for layer in LAYERS if module == layer or module.startswith(layer + ".")), key=len)


def test_the_layers_name_the_real_packages():
    """Each layer is a package of the tree (a rule about a package that is not there guards nothing)."""
    for layer in [*LAYERS, *BESIDE]:
        assert (REPO / layer.replace(".", "/") / "__init__.py").is_file(), layer
    assert (REPO / (LAUNCHER.replace(".", "/") + ".py")).is_file()


def _rank(layer: str) -> int:
    return LAYERS.index(BESIDE.get(layer, layer))


def _imports(tree: ast.AST, module: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: -node.level]
                yield node.lineno, ".".join([*base, node.module])
            else:
                yield node.lineno, node.module


def test_imports_run_one_way():
    wrong = []
    for path, module in _modules():
        here = _layer(module)
        for line, target in _imports(ast.parse(path.read_text(encoding="utf-8")), module):
            there = _layer(target)
            if here is None or there is None or there == here:
                continue
            beside = {here, there} == {"reconcile.web", "reconcile.cli"}
            if _rank(there) > _rank(here) or (beside and module != LAUNCHER):
                wrong.append(f"{path.relative_to(REPO)}:{line}: {module} ({here}) imports {target} ({there})")
    assert wrong == []


def test_no_private_name_is_imported_from_another_module():
    """A helper used by two modules is public (no leading underscore) in the one that owns it."""
    private = []
    for path, _ in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PACKAGES:
                private += [
                    f"{path.relative_to(REPO)}:{node.lineno}: {alias.name} from {node.module}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert private == []


def test_modules_and_functions_are_small_or_say_why():
    """Over ~400 lines a module, over ~60 a function, says why in a ``# long:`` comment (the
    module's at the top level, the function's on the line above its ``def``)."""
    big = []
    for path, _ in _modules():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        if len(lines) > MAX_MODULE_LINES and not any(line.startswith("# long:") for line in lines):
            big.append(f"{path.relative_to(REPO)}: {len(lines)} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if length > MAX_FUNCTION_LINES and "# long:" not in lines[first - 2]:
                    big.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.name}() {length} lines")
    assert big == []


@pytest.mark.parametrize(
    "module, target, allowed",
    [
        ("ingest.pipeline", "reconcile.status", False),
        ("reconcile.status", "reconcile.outgoing.receipts", False),
        ("reconcile.outgoing.receipts", "reconcile.daemon.service", False),
        ("reconcile.daemon.service", "reconcile.cli.app", False),
        ("reconcile.cli.app", "reconcile.daemon.service", True),
        ("reconcile.outgoing.receipts", "reconcile.status", True),
        ("reconcile.status", "ingest.db", True),
    ],
)
def test_the_direction_rule_itself(module, target, allowed):
    """The checker above would catch a wrong import (so an empty list means something)."""
    here, there = _layer(module), _layer(target)
    assert (_rank(there) <= _rank(here)) == allowed
