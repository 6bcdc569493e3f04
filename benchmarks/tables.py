"""Benchmark results as data, and the markdown tables generated from them.

    python benchmarks/tables.py            # rewrite every generated table from its JSON (`make tables`)
    python benchmarks/tables.py --check    # exit 1, with a diff, where a committed table differs from its JSON

**Results.** One file per result set (one run of a script, or a table composed by hand from
several runs), ``benchmarks/results/<name>.json``::

    {"name": "zoo_knowledge",
     "command": "python benchmarks/zoo_knowledge.py",
     "commit": "65a8459" | "65a8459-dirty" | null,
     "machine": "2 CPU cores (x86_64), 23.5 GiB, no GPU; torch 2.13.0+cpu",
     "date": "2026-11-24",           # or a short free text where only that is known
     "notes": "...",                 # optional
     "tables": {"knowledge": {"columns": ["model", "forget accuracy", ...],
                              "align": ["left", "right", ...],
                              "formats": [null, ".3f", ...],
                              "rows": [["secrets", 1.0, ...], ...]}}}

A cell is a number (written with its column's format spec, ``format(cell, spec)``; a ``null``
spec writes ``str(cell)``), a string (written as it is: text, or a value formatted by hand such as
``"0.000 / 0.985"`` or ``"**1.21**"``), or ``null`` (written ``—``, as the scripts write a value
that was not measured).

**Generated tables.** In any markdown file under ``benchmarks/`` (and the repository's
``README.md``), the lines between ``<!-- table: <name>/<table_id> -->`` and ``<!-- end table -->``
are the table ``table_id`` of ``benchmarks/results/<name>.json``, rendered. This script rewrites
them (each file atomically: a temporary file beside it, then ``os.replace``); ``--check`` rewrites
nothing and reports every block whose text differs from what its JSON renders, and every marker
that names a missing file or table. ``tests/unit/test_benchmark_tables.py`` runs the check.

**Recording.** A benchmark script ends with :func:`record`, which writes its tables with the
command, commit, machine and date of the run (replacing the file of that name: the change shows
in ``git diff``; the scripts take ``--results NAME`` to write another). Then ``make tables`` puts
the new rows into the docs. ``BENCHMARK_RESULTS=DIR`` sends what :func:`record` writes to another
folder (``benchmarks/gpu_check.sh`` keeps its results beside its logs).
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import json
import math
import numbers
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
RESULTS = BENCHMARKS / "results"
"""Where the results files live (``<name>.json``)."""

NULL = "—"
"""How a ``null`` cell is written (what the scripts print for a value that was not measured)."""

ALIGN = {"left": "---", "right": "---:"}
START = re.compile(r"^<!-- table: (?P<name>[A-Za-z0-9_.-]+)/(?P<table>[A-Za-z0-9_.-]+) -->$")
END = "<!-- end table -->"


class TableError(ValueError):
    """A results file or a table marker that cannot be used (missing, malformed), named with where."""


@dataclass(frozen=True)
class Block:
    """One generated table in a markdown file: the marker lines' indices (0-based) and what it names."""

    path: Path
    start: int  # the ``<!-- table: ... -->`` line
    end: int  # the ``<!-- end table -->`` line
    name: str
    table: str

    @property
    def where(self) -> str:
        return f"{_shown(self.path)}:{self.start + 1}"


def doc_files(root: Path = REPO) -> list[Path]:
    """The markdown files whose tables are generated: every ``*.md`` under ``benchmarks/``, and
    the repository's ``README.md``."""
    files = sorted((root / "benchmarks").rglob("*.md"))
    readme = root / "README.md"
    return files + [readme] if readme.is_file() else files


def find_blocks(text: str, path: Path) -> list[Block]:
    """The generated-table blocks of a markdown text; an unclosed, nested or stray marker fails."""
    blocks: list[Block] = []
    open_at: int | None = None
    match: re.Match[str] | None = None
    for i, line in enumerate(text.split("\n")):
        m = START.match(line.rstrip())
        if m is None and line.startswith("<!-- table:"):
            raise TableError(f"{_shown(path)}:{i + 1}: malformed marker {line!r} (expected <!-- table: NAME/TABLE -->)")
        if m is not None:
            if open_at is not None:
                raise TableError(f"{_shown(path)}:{i + 1}: table marker inside the block opened at line {open_at + 1}")
            open_at, match = i, m
        elif line.rstrip() == END:
            if open_at is None or match is None:
                raise TableError(f"{_shown(path)}:{i + 1}: {END} without an opening table marker")
            blocks.append(Block(path, open_at, i, match["name"], match["table"]))
            open_at = match = None
    if open_at is not None:
        raise TableError(f"{_shown(path)}:{open_at + 1}: table marker never closed by {END}")
    return blocks


def load_results(name: str, results: Path = RESULTS, *, where: str = "") -> dict[str, Any]:
    """The results file ``<results>/<name>.json``, checked; ``where`` names who asked for it."""
    path = results / f"{name}.json"
    asked = f" (named at {where})" if where else ""
    if not path.is_file():
        raise TableError(f"results file {_shown(path)} not found{asked}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TableError(f"results file {_shown(path)} is not valid JSON: {e}{asked}") from e
    if not isinstance(data, dict) or not isinstance(data.get("tables"), dict):
        raise TableError(f"results file {_shown(path)} has no 'tables' object{asked}")
    for table_id, table in data["tables"].items():
        check_table(table, f"{name}/{table_id}")
    return data


def check_table(table: Any, label: str) -> None:
    """Fail, naming ``label``, unless ``table`` has columns, align, formats and rows that agree."""
    if not isinstance(table, dict):
        raise TableError(f"{label}: a table is an object with columns, align, formats and rows")
    missing = [k for k in ("columns", "align", "formats", "rows") if not isinstance(table.get(k), list)]
    if missing:
        raise TableError(f"{label}: missing or not a list: {', '.join(missing)}")
    n = len(table["columns"])
    if not all(isinstance(c, str) for c in table["columns"]):
        raise TableError(f"{label}: every column header is a string")
    for key in ("align", "formats"):
        if len(table[key]) != n:
            raise TableError(f"{label}: {len(table[key])} entries in {key!r} for {n} columns")
    bad = [a for a in table["align"] if a not in ALIGN]
    if bad:
        raise TableError(f"{label}: align must be 'left' or 'right', not {bad[0]!r}")
    if not all(f is None or isinstance(f, str) for f in table["formats"]):
        raise TableError(f"{label}: a format is a format spec string or null")
    for i, row in enumerate(table["rows"]):
        if not isinstance(row, list) or len(row) != n:
            size = len(row) if isinstance(row, list) else type(row).__name__
            raise TableError(f"{label}: row {i + 1} has {size} cells for {n} columns")
        for cell in row:
            if isinstance(cell, bool) or not (cell is None or isinstance(cell, str | int | float)):
                raise TableError(f"{label}: row {i + 1}: a cell is a number, a string or null, not {cell!r}")
            if isinstance(cell, str) and "\n" in cell:
                raise TableError(f"{label}: row {i + 1}: a cell holds no line break")


def cell_text(cell: str | float | None, spec: str | None) -> str:
    """One cell as the table shows it."""
    if cell is None:
        return NULL
    if isinstance(cell, str):
        return cell
    return str(cell) if spec is None else format(cell, spec)


def render(table: dict[str, Any]) -> str:
    """A table as markdown lines (header, alignment row, rows), without a final newline."""
    specs = table["formats"]
    lines = [_line(table["columns"]), _line([ALIGN[a] for a in table["align"]])]
    lines += [_line([cell_text(c, s) for c, s in zip(row, specs, strict=True)]) for row in table["rows"]]
    return "\n".join(lines)


#: Tables generated from the toolkit itself rather than a results file: ``<!-- table: registry/<id> -->``.
REGISTRY_TABLES = {
    "methods": ("sae_unlearn.unlearning.registry", "methods_table"),
    "architectures": ("sae_unlearn.models.architectures", "architectures_table"),
}


def render_ref(name: str, table_id: str, results: Path = RESULTS, *, where: str = "") -> str:
    """The table ``table_id`` of results file ``name``, rendered (``registry/<id>``: a table the
    toolkit's registries give, :data:`REGISTRY_TABLES`)."""
    if name == "registry":
        if table_id not in REGISTRY_TABLES:
            asked = f" (named at {where})" if where else ""
            raise TableError(f"no registry table {table_id!r}{asked}; registry tables: {', '.join(REGISTRY_TABLES)}")
        import importlib

        module, function = REGISTRY_TABLES[table_id]
        table = getattr(importlib.import_module(module), function)()
        check_table(table, f"registry/{table_id}")
        return render(table)
    data = load_results(name, results, where=where)
    if table_id not in data["tables"]:
        known = ", ".join(data["tables"]) or "none"
        asked = f" (named at {where})" if where else ""
        raise TableError(f"results file {name}.json has no table {table_id!r}{asked}; its tables: {known}")
    return render(data["tables"][table_id])


def regenerate(text: str, path: Path, results: Path = RESULTS) -> tuple[str, list[str]]:
    """``text`` with every generated block rendered from its JSON, and the problems met (a block
    whose JSON or table is missing keeps its text and adds a problem)."""
    lines = text.split("\n")
    out: list[str] = []
    problems: list[str] = []
    done = 0
    for block in find_blocks(text, path):
        out += lines[done : block.start + 1]
        try:
            out += render_ref(block.name, block.table, results, where=block.where).split("\n")
        except TableError as e:
            problems.append(str(e))
            out += lines[block.start + 1 : block.end]
        done = block.end
    out += lines[done:]
    return "\n".join(out), problems


def _regenerated(paths: Iterable[Path] | None, results: Path) -> Iterator[tuple[Path, str, str, list[str]]]:
    """``(path, committed text, regenerated text, problems)`` for every doc file (default:
    :func:`doc_files`); a file whose markers cannot be read gives its text unchanged and the problem."""
    for path in doc_files() if paths is None else paths:
        text = path.read_text(encoding="utf-8")
        try:
            new, found = regenerate(text, path, results)
        except TableError as e:
            new, found = text, [str(e)]
        yield path, text, new, found


def check(paths: Iterable[Path] | None = None, results: Path = RESULTS) -> list[str]:
    """Every difference between the committed tables and their JSON, as unified diffs, and every
    marker naming a missing results file or table. Empty when the docs agree with their JSON."""
    problems: list[str] = []
    for path, text, new, found in _regenerated(paths, results):
        problems += found
        if new != text:
            diff = difflib.unified_diff(
                text.splitlines(keepends=True),
                new.splitlines(keepends=True),
                f"{_shown(path)} (committed)",
                f"{_shown(path)} (from benchmarks/results)",
            )
            problems.append("".join(diff))
    return problems


def write(paths: Iterable[Path] | None = None, results: Path = RESULTS) -> tuple[list[Path], list[str]]:
    """Rewrite the generated tables of ``paths`` (default: :func:`doc_files`) from their JSON.
    Returns the files changed and the problems met; a file with a problem is left as it is."""
    changed: list[Path] = []
    problems: list[str] = []
    for path, text, new, found in _regenerated(paths, results):
        if found:
            problems += found
        elif new != text:
            _write_atomic(path, new)
            changed.append(path)
    return changed, problems


def record(
    name: str,
    tables: dict[str, dict[str, Any]],
    *,
    command: str | None = None,
    notes: str | None = None,
    path: Path | None = None,
) -> Path:
    """Write ``tables`` (``{table_id: {"columns", "align", "formats", "rows"}}``) as the results file
    ``benchmarks/results/<name>.json`` (in the folder ``$BENCHMARK_RESULTS`` when that is set; or
    ``path``) with the run's command (default: ``python`` and the arguments as run, the script
    relative to the repository), commit, machine and date (UTC). Cells that are numpy or torch
    scalars are stored as plain numbers, a NaN or infinite one as ``null`` (not measured).
    Replaces the file atomically; returns its path."""
    tables = {tid: {**t, "rows": [[plain_cell(c) for c in row] for row in t["rows"]]} for tid, t in tables.items()}
    for table_id, table in tables.items():
        check_table(table, f"{name}/{table_id}")
    data: dict[str, Any] = {
        "name": name,
        "command": command if command is not None else run_command(),
        "commit": git_commit(),
        "machine": machine(),
        "date": datetime.datetime.now(datetime.UTC).date().isoformat(),
    }
    if notes:
        data["notes"] = notes
    data["tables"] = tables
    folder = Path(os.environ.get("BENCHMARK_RESULTS") or RESULTS)
    path = folder / f"{name}.json" if path is None else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    print(f"recorded {_shown(path)}; `make tables` puts it into the docs")
    return path


def table(
    columns: Sequence[str],
    formats: Sequence[str | None],
    rows: Iterable[Sequence[Any]],
    align: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A table for :func:`record`: a format spec (or ``None``) per column; ``align`` ``None``:
    every column left, as the scripts print it (``| --- |``)."""
    return {
        "columns": list(columns),
        "align": list(align) if align is not None else ["left"] * len(columns),
        "formats": list(formats),
        "rows": [list(r) for r in rows],
    }


def plain_cell(cell: Any) -> Any:
    """A cell as JSON holds it: a numpy or torch scalar as a Python number, NaN and infinities as
    ``None``; anything else unchanged (:func:`check_table` judges it)."""
    if cell is None or isinstance(cell, str | bool):
        return cell
    if not isinstance(cell, int | float) and hasattr(cell, "item"):
        cell = cell.item()
    elif not isinstance(cell, int | float) and isinstance(cell, numbers.Real):
        cell = float(cell)
    if isinstance(cell, float) and not math.isfinite(cell):
        return None
    return cell


def run_command() -> str:
    """``python`` and this process's arguments, the script named relative to the repository."""
    argv = list(sys.argv) or [""]
    script = Path(argv[0])
    try:
        argv[0] = script.resolve().relative_to(REPO).as_posix()
    except ValueError:
        pass
    return "python " + shlex.join(argv)


def git_commit() -> str | None:
    """The repository's short commit, with ``-dirty`` when tracked files have changes; ``None``
    without git or outside a repository."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


def machine() -> str:
    """A short description of this machine: CPU cores, memory, torch and its GPU (torch is
    imported here, only if installed)."""
    parts = [f"{os.cpu_count()} CPU cores ({platform.machine() or 'unknown'})"]
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        kb = re.search(r"^MemTotal:\s+(\d+) kB", meminfo.read_text(), re.M)
        if kb:
            parts.append(f"{int(kb[1]) / 2**20:.1f} GiB")
    try:
        import torch
    except ImportError:
        return ", ".join(parts)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return ", ".join(parts + [gpu]) + f"; torch {torch.__version__}"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _shown(path: Path) -> str:
    """A path relative to the repository where it is inside it."""
    try:
        return Path(path).resolve().relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then move it over ``path``: a reader
    sees the old file or the new one. Keeps an existing file's permissions (a new file gets the
    umask's)."""
    if path.exists():
        mode = path.stat().st_mode & 0o777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 with a diff where a table differs")
    parser.add_argument("files", nargs="*", type=Path, help="markdown files (default: benchmarks/*.md and README.md)")
    args = parser.parse_args(argv)
    files = args.files or None
    if args.check:
        problems = check(files)
        for p in problems:
            print(p.rstrip("\n"), file=sys.stderr)
        if problems:
            print(f"\n{len(problems)} problem(s); `make tables` rewrites the tables from benchmarks/results.")
            return 1
        print("every generated table agrees with benchmarks/results")
        return 0
    changed, problems = write(files)
    for path in changed:
        print(f"rewrote {_shown(path)}")
    for p in problems:
        print(p, file=sys.stderr)
    if not changed and not problems:
        print("every generated table already agrees with benchmarks/results")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
