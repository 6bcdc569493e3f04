"""Every notebook is a jupytext pair: a percent script (``tutorials/01_models_and_capture.py``, the
source people edit, review and lint) beside its ``.ipynb`` (what Jupyter opens and nbmake runs).

The pairs must agree cell by cell (type, source, tags), and the committed ``.ipynb`` must carry no
outputs. A failure names the files; ``make notebooks`` (``jupytext --sync`` over the pairs, then
the outputs cleared) fixes it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jupytext
import nbformat

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_DIRS = ("tutorials", "notebooks", "tests/browser")
PAIRING = "formats: ipynb,py:percent"
"""The line of a script's jupytext header that pairs it with its notebook."""
FIX = "make notebooks   (jupytext --sync over every pair, then the outputs cleared)"


def paired_scripts(root: Path) -> list[Path]:
    """The percent scripts under ``root``'s notebook folders whose jupytext header pairs them with an ``.ipynb``."""
    scripts = []
    for folder in NOTEBOOK_DIRS:
        for script in sorted((root / folder).glob("*.py")):
            header = script.read_text(encoding="utf-8").split("# ---", 2)
            if len(header) == 3 and PAIRING in header[1]:
                scripts.append(script)
    return scripts


def unpaired_notebooks(root: Path) -> list[Path]:
    """The ``.ipynb`` files under ``root``'s notebook folders with no paired script beside them."""
    paired = set(paired_scripts(root))
    return [
        nb
        for folder in NOTEBOOK_DIRS
        for nb in sorted((root / folder).glob("*.ipynb"))
        if nb.with_suffix(".py") not in paired
    ]


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def _difference(script_cell: tuple[str, str, list[str]], notebook_cell: tuple[str, str, list[str]]) -> str:
    """How two cells differ, in a few words (the first differing source line, not the whole cell)."""
    (s_type, s_src, s_tags), (n_type, n_src, n_tags) = script_cell, notebook_cell
    if s_type != n_type:
        return f"differs in its type: script {s_type}, notebook {n_type}"
    if s_tags != n_tags:
        return f"differs in its tags: script {s_tags}, notebook {n_tags}"
    s_lines, n_lines = s_src.splitlines(), n_src.splitlines()
    k = next((k for k, (a, b) in enumerate(zip(s_lines, n_lines)) if a != b), min(len(s_lines), len(n_lines)))

    def line(lines: list[str]) -> str:
        return json.dumps(lines[k] if k < len(lines) else "<end of cell>", ensure_ascii=False)

    return f"differs in its source at line {k + 1}: script {line(s_lines)}, notebook {line(n_lines)}"


def pair_problems(script: Path) -> list[str]:
    """What keeps ``script`` and its ``.ipynb`` from being in sync (nothing when they are)."""
    notebook = script.with_suffix(".ipynb")
    if not notebook.is_file():
        return [f"{notebook.name} is missing"]
    want = _cells(jupytext.read(script))
    nb = nbformat.read(notebook, as_version=4)
    have = _cells(nb)
    problems = []
    if len(want) != len(have):
        problems.append(f"the script has {len(want)} cells, the notebook {len(have)}")
    for i, (w, h) in enumerate(zip(want, have)):
        if w != h:
            problems.append(f"cell {i} {_difference(w, h)}")
            break  # the first difference says enough; later cells usually follow from it
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
            problems.append(f"cell {i} of {notebook.name} carries outputs or an execution count")
    if nb.metadata.get("kernelspec", {}).get("name") != "python3":
        problems.append(f"{notebook.name} does not run on the python3 kernel")
    return problems


def sync_report(root: Path) -> str:
    """Every problem with the notebook pairs under ``root``, with the fix; empty when all are in sync."""
    lines = []
    for script in paired_scripts(root):
        lines += [f"{script.relative_to(root)}: {p}" for p in pair_problems(script)]
    lines += [f"{nb.relative_to(root)}: no paired percent script beside it" for nb in unpaired_notebooks(root)]
    if not lines:
        return ""
    return "notebooks out of sync with their scripts:\n  " + "\n  ".join(lines) + f"\nfix: {FIX}"


def test_every_notebook_is_in_sync_with_its_script():
    scripts = paired_scripts(REPO)
    assert len(scripts) >= 8, f"expected the tutorials, studies and the browser page as pairs, found {scripts}"
    report = sync_report(REPO)
    assert report == "", report


def test_the_check_fails_on_an_edited_pair(tmp_path):
    """The check can fail: copy a real pair, break it in each way, and see each one reported."""
    folder = tmp_path / "tutorials"
    folder.mkdir()
    script = folder / "01_models_and_capture.py"
    notebook = script.with_suffix(".ipynb")
    shutil.copy(REPO / "tutorials" / script.name, script)
    shutil.copy(REPO / "tutorials" / notebook.name, notebook)
    assert sync_report(tmp_path) == ""

    text = script.read_text(encoding="utf-8")
    script.write_text(text.replace("N_SHOW = 6", "N_SHOW = 7"), encoding="utf-8")
    report = sync_report(tmp_path)
    where = "tutorials/01_models_and_capture.py: cell 1 differs in its source at line 3"
    assert f'{where}: script "N_SHOW = 7", notebook "N_SHOW = 6"' in report
    assert report.endswith(f"fix: {FIX}")
    script.write_text(text, encoding="utf-8")

    original = notebook.read_text(encoding="utf-8")
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[1].metadata.pop("tags")  # the parameters tag lost on the notebook side
    nb.cells[2].execution_count = 1
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="ran\n")]
    nbformat.write(nb, notebook)
    report = sync_report(tmp_path)
    assert "cell 1 differs in its tags" in report and "cell 2 of 01_models_and_capture.ipynb carries outputs" in report
    notebook.write_text(original, encoding="utf-8")

    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("added in Jupyter, never synced"))
    nbformat.write(nb, notebook)
    assert "the script has 12 cells, the notebook 13" in sync_report(tmp_path)

    notebook.unlink()
    assert "01_models_and_capture.ipynb is missing" in sync_report(tmp_path)
    shutil.copy(REPO / "tutorials" / notebook.name, folder / "orphan.ipynb")
    assert "tutorials/orphan.ipynb: no paired percent script beside it" in sync_report(tmp_path)
