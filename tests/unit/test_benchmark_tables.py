"""The tables in benchmarks/*.md are generated from benchmarks/results/*.json (benchmarks/tables.py):
the committed docs agree with their JSON, and the generator and its check do what they say."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_tables():
    """benchmarks/tables.py as a module (benchmarks/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("benchmark_tables", REPO / "benchmarks" / "tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


tables = _load_tables()

TINY = {
    "name": "tiny",
    "command": "python benchmarks/tiny.py",
    "commit": None,
    "machine": "a test",
    "date": "2026-01-01",
    "tables": {
        "t": {
            "columns": ["model", "acc", "tokens", "note"],
            "align": ["left", "right", "right", "left"],
            "formats": [None, ".3f", ",.0f", None],
            "rows": [["a", 0.5, 1234, "0.000 / 0.985"], ["b", None, 5.0, ""]],
        }
    },
}
RENDERED = """| model | acc | tokens | note |
| --- | ---: | ---: | --- |
| a | 0.500 | 1,234 | 0.000 / 0.985 |
| b | — | 5 |  |"""


def _setup(tmp_path: Path, marker: str = "tiny/t", body: str = "stale\n") -> tuple[Path, Path]:
    """A results folder holding tiny.json and a page with one generated block."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "tiny.json").write_text(json.dumps(TINY, indent=1) + "\n")
    page = tmp_path / "page.md"
    page.write_text(f"# Page\n\n<!-- table: {marker} -->\n{body}<!-- end table -->\n\nAfter.\n")
    return results, page


def test_committed_tables_agree_with_their_results():
    problems = tables.check()
    assert not problems, "\n".join(problems) + "\n`make tables` rewrites the tables from benchmarks/results."


def test_every_results_file_is_named_after_itself():
    for path in tables.RESULTS.glob("*.json"):
        assert tables.load_results(path.stem)["name"] == path.stem


def test_a_table_is_rendered_from_its_json(tmp_path):
    results, page = _setup(tmp_path)
    changed, problems = tables.write([page], results)
    assert problems == [] and changed == [page]
    assert page.read_text() == f"# Page\n\n<!-- table: tiny/t -->\n{RENDERED}\n<!-- end table -->\n\nAfter.\n"
    assert tables.check([page], results) == []
    assert tables.write([page], results) == ([], [])  # nothing left to rewrite


def test_a_changed_cell_is_reported_with_a_diff(tmp_path):
    results, page = _setup(tmp_path, body=RENDERED.replace("0.500", "0.501") + "\n")
    before = page.read_text()
    [problem] = tables.check([page], results)
    assert "-| a | 0.501 | 1,234 | 0.000 / 0.985 |" in problem
    assert "+| a | 0.500 | 1,234 | 0.000 / 0.985 |" in problem
    assert "page.md (committed)" in problem
    assert page.read_text() == before  # the check writes nothing
    # and the other way round: a value changed in the JSON
    data = json.loads((results / "tiny.json").read_text())
    data["tables"]["t"]["rows"][1][2] = 6
    (results / "tiny.json").write_text(json.dumps(data))
    page.write_text(page.read_text().replace("0.501", "0.500"))
    [problem] = tables.check([page], results)
    assert "-| b | — | 5 |  |" in problem and "+| b | — | 6 |  |" in problem


def test_a_missing_results_file_is_named(tmp_path):
    results, page = _setup(tmp_path, marker="nowhere/t")
    [problem] = tables.check([page], results)
    assert "nowhere.json not found" in problem and "page.md:3" in problem
    before = page.read_text()
    changed, problems = tables.write([page], results)
    assert changed == [] and problems == [problem] and page.read_text() == before
    assert tables.main(["--check", str(page)]) == 1  # the real results folder has no 'nowhere' either


def test_a_missing_table_id_is_named(tmp_path):
    results, page = _setup(tmp_path, marker="tiny/nope")
    [problem] = tables.check([page], results)
    assert "tiny.json has no table 'nope'" in problem and "its tables: t" in problem and "page.md:3" in problem


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- table: tiny/t -->\nrow\n", "never closed"),
        ("<!-- table: tiny/t -->\n<!-- table: tiny/t -->\n<!-- end table -->\n", "inside the block opened at line 1"),
        ("text\n<!-- end table -->\n", "without an opening table marker"),
        ("<!-- table: tiny -->\n<!-- end table -->\n", "malformed marker"),
    ],
)
def test_broken_markers_are_named(tmp_path, text, message):
    results, page = _setup(tmp_path)
    page.write_text(text)
    [problem] = tables.check([page], results)
    assert message in problem and "page.md" in problem


def test_a_table_that_does_not_add_up_is_refused():
    table = json.loads(json.dumps(TINY["tables"]["t"]))
    table["rows"][0].pop()
    with pytest.raises(tables.TableError, match=r"tiny/t: row 1 has 3 cells for 4 columns"):
        tables.check_table(table, "tiny/t")
    with pytest.raises(tables.TableError, match="align must be 'left' or 'right'"):
        tables.check_table({**TINY["tables"]["t"], "align": ["left", "centre", "left", "left"]}, "tiny/t")


def test_record_writes_the_run_beside_its_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "machine", lambda: "a test machine")
    monkeypatch.setattr(sys, "argv", [str(REPO / "benchmarks" / "zoo_knowledge.py"), "secrets", "a b"])
    assert tables.run_command() == "python benchmarks/zoo_knowledge.py secrets 'a b'"
    row = tables.table(["model", "acc"], [None, ".3f"], [["a", 0.5]])
    path = tables.record("tiny", {"t": row}, path=tmp_path / "results" / "tiny.json")
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    assert list(data) == ["name", "command", "commit", "machine", "date", "tables"]
    assert data["name"] == "tiny" and data["command"] == "python benchmarks/zoo_knowledge.py secrets 'a b'"
    assert data["machine"] == "a test machine" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", data["date"])
    assert data["commit"] is None or re.fullmatch(r"[0-9a-f]{4,40}(-dirty)?", data["commit"])
    assert data["tables"] == {"t": {"columns": ["model", "acc"], "align": ["left", "left"], "formats": [None, ".3f"],
                                    "rows": [["a", 0.5]]}}  # fmt: skip
    assert text.startswith('{\n "name": "tiny",\n') and text.endswith("}\n")
    assert [p.name for p in path.parent.iterdir()] == ["tiny.json"]  # no temporary file left behind
    with pytest.raises(tables.TableError, match="row 1 has 1 cells"):
        tables.record("tiny", {"t": {**row, "rows": [["a"]]}}, path=path)
    assert json.loads(path.read_text()) == data  # a bad table leaves the file as it was


def test_record_stores_scalars_as_plain_numbers(tmp_path, monkeypatch):
    """A numpy or torch scalar is stored as a number; NaN (nothing measured) as null."""

    class Scalar:
        def item(self) -> float:
            return 0.25

    monkeypatch.setattr(tables, "machine", lambda: "a test machine")
    monkeypatch.setenv("BENCHMARK_RESULTS", str(tmp_path))
    row = [Scalar(), float("nan"), -0.0]
    path = tables.record("tiny", {"t": tables.table(["a", "b", "c"], [".3f", ".3f", "+.3f"], [row])},
                         command="python x.py")  # fmt: skip
    assert path == tmp_path / "tiny.json"
    data = json.loads(path.read_text())
    assert data["command"] == "python x.py" and data["tables"]["t"]["rows"] == [[0.25, None, -0.0]]
    assert tables.render(data["tables"]["t"]).split("\n")[-1] == "| 0.250 | — | -0.000 |"


def test_machine_names_the_cores():
    assert re.match(r"\d+ CPU cores \(", tables.machine())


def test_the_readme_lists_every_registered_method_and_a_new_one_needs_its_row():
    from sae_unlearn.unlearning import METHODS, GradientMethod, register

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in METHODS:
        assert f"| `{name}` |" in readme, f"{name} has no row in README.md's methods table (run make tables)"

    @register("a_method_from_this_test")
    class _New(GradientMethod):
        description = "registered here"

    try:
        problems = tables.check([REPO / "README.md"])
        assert problems and "+| `a_method_from_this_test` | A_METHOD_FROM_THIS_TEST | registered here |" in problems[0]
    finally:
        METHODS.pop("a_method_from_this_test")
    with pytest.raises(tables.TableError, match="no registry table 'nope'"):
        tables.render_ref("registry", "nope")
