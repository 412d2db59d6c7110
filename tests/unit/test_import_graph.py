"""The import graph of vaquero: no cycle between modules, every top-level module placed in a layer,
and the layer contracts of pyproject.toml kept (docs/architecture.md draws the map)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "controller" / "vaquero"


def _graph(*, exclude_type_checking: bool) -> grimp.ImportGraph:
    return grimp.build_graph("vaquero", cache_dir=None, exclude_type_checking_imports=exclude_type_checking)


def module_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every back edge a depth-first walk meets, as the cycle it closes (empty: the graph is acyclic)."""
    modules = sorted(m for m in graph.modules if m == "vaquero" or m.startswith("vaquero."))
    state: dict[str, int] = dict.fromkeys(modules, 0)  # 0 unseen, 1 on the path, 2 done
    cycles: list[list[str]] = []
    for start in modules:
        if state[start]:
            continue
        # Iterative, so a deep chain cannot hit the recursion limit.
        path: list[str] = [start]
        todo: list[list[str]] = [sorted(graph.find_modules_directly_imported_by(start))]
        state[start] = 1
        while path:
            if not todo[-1]:
                state[path.pop()] = 2
                todo.pop()
                continue
            nxt = todo[-1].pop()
            if nxt not in state:  # outside vaquero
                continue
            if state[nxt] == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif state[nxt] == 0:
                state[nxt] = 1
                path.append(nxt)
                todo.append(sorted(graph.find_modules_directly_imported_by(nxt)))
    return cycles


def test_no_cycle_between_modules() -> None:
    # Imports under TYPE_CHECKING are annotations, never executed: they cannot close a cycle at run time.
    assert module_cycles(_graph(exclude_type_checking=True)) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for a, b in [("vaquero.a", "vaquero.b"), ("vaquero.b", "vaquero.c"), ("vaquero.c", "vaquero.a"), ("vaquero.c", "vaquero.d")]:
        graph.add_import(importer=a, imported=b)
    assert module_cycles(graph) == [["vaquero.a", "vaquero.b", "vaquero.c", "vaquero.a"]]


def test_function_level_imports_are_in_the_graph() -> None:
    # standalone imports the run worker inside a method: contracts that missed it would pass anything.
    graph = _graph(exclude_type_checking=False)
    assert "vaquero.runner.worker" in graph.find_modules_directly_imported_by("vaquero.standalone")


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [name.strip() for layer in contract["layers"] for name in layer.replace(":", "|").split("|")]


def test_every_top_level_module_has_a_layer() -> None:
    # A new package outside the map would be checked by no layer contract at all.
    top = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    placed = {name.removeprefix("vaquero.") for name in _layers()}
    assert sorted(top - placed) == []
    assert sorted(placed - top) == []


def test_the_layer_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.is_file(), f"{lint} missing: pip install the test extra (import-linter)"
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
