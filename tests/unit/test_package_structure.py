"""The package's structure: its floors only look down (no import cycle between its subpackages
and top-level modules, counting every import: module-level, function-level and
``TYPE_CHECKING``-only; the lowest floors, ``data``, ``models`` and ``capture``, import nothing above
them), and no function takes more than :data:`MAX_PARAMETERS` parameters (a config object instead)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sae_unlearn"
MAX_PARAMETERS = 8  # self/cls not counted; *args and **kwargs count one each
# What each low floor may import (besides itself and third-party code). The standalone modules
# (utils, atomic, intervention_runtime: no sae_unlearn import of their own) are the ground.
GROUND = {"utils", "atomic", "intervention_runtime"}
ALLOWED = {"data": GROUND, "models": GROUND | {"data"}, "capture": GROUND | {"data", "models"}}


def _room(module: str) -> str:
    """``sae_unlearn.saes.loading`` → ``saes``; ``sae_unlearn.export`` → ``export``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def import_graph(package: Path = PACKAGE) -> dict[str, dict[str, str]]:
    """``{room: {imported room: 'file:line' of one such import}}`` over every ``.py`` file."""
    rooms = {p.stem for p in package.glob("*.py")} | {p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    graph: dict[str, dict[str, str]] = {}
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        here = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        src = _room(module)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [target] + [f"{target}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                dst = _room(target) if target.startswith("sae_unlearn.") else ""
                if src and dst in rooms and dst != src:
                    graph.setdefault(src, {}).setdefault(dst, f"{path.relative_to(package.parent)}:{node.lineno}")
    return graph


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    """One cycle of ``graph`` as the rooms along it (first repeated last), or ``None``."""
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(room: str) -> list[str] | None:
        state[room] = 1
        path.append(room)
        for nxt in sorted(graph.get(room, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[room] = 2
        return None

    for room in sorted(graph):
        if room not in state and (found := visit(room)):
            return found
    return None


def test_no_cycle_between_rooms() -> None:
    graph = import_graph()
    cycle = find_cycle(graph)
    where = [graph[a][b] for a, b in zip(cycle, cycle[1:], strict=False)] if cycle else []
    assert cycle is None, f"import cycle {' -> '.join(cycle or [])}: " + "; ".join(where)


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_low_floors_import_nothing_above(room: str) -> None:
    above = {dst: at for dst, at in import_graph().get(room, {}).items() if dst not in ALLOWED[room]}
    assert not above, f"{room} imports from above its floor: {above}"


def test_the_walk_sees_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    """The checker itself: a cycle made only of a function-level and a TYPE_CHECKING import is found."""
    pkg = tmp_path / "sae_unlearn"
    for room in ("low", "high"):
        (pkg / room).mkdir(parents=True)
        (pkg / room / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("def f():\n    from sae_unlearn.high.b import g\n    return g\n")
    (pkg / "high" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..low import a\ndef g():\n    pass\n"
    )
    graph = import_graph(pkg)
    assert graph == {"low": {"high": "sae_unlearn/low/a.py:2"}, "high": {"low": "sae_unlearn/high/b.py:3"}}
    assert find_cycle(graph) in (["high", "low", "high"], ["low", "high", "low"])


def long_signatures(package: Path = PACKAGE) -> list[str]:
    """``file:line name (n)`` of every function with more than :data:`MAX_PARAMETERS` parameters."""
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            a = node.args
            names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
            n = len(names) - (names[:1] in (["self"], ["cls"])) + (a.vararg is not None) + (a.kwarg is not None)
            if n > MAX_PARAMETERS:
                found.append(f"{path.relative_to(package.parent)}:{node.lineno} {node.name} ({n})")
    return found


def test_no_function_takes_more_than_eight_parameters(tmp_path: Path) -> None:
    assert long_signatures() == [], "group these parameters into a config dataclass"
    pkg = tmp_path / "sae_unlearn"
    pkg.mkdir()
    (pkg / "m.py").write_text(
        "def ok(self, a, b, c, d, e, f, g, h): ...\ndef long(a, b, c, d, e, f, g, *, h, **k): ...\n"
    )
    assert long_signatures(pkg) == ["sae_unlearn/m.py:2 long (9)"]
