import json

import pytest

from sae_unlearn.data import SplitError, load_tofu_rows, load_tofu_split
from sae_unlearn.data.tofu import resolve_authors


def write_rows(path, authors, per_author=2):
    with open(path, "w") as fh:
        for a in authors:
            for i in range(per_author):
                fh.write(json.dumps({"author": a, "question": f"Q{a}.{i}?", "answer": f"A{a}.{i}"}) + "\n")


def test_local_folder_split(tmp_path):
    write_rows(tmp_path / "tofu.jsonl", [0, 1, 2, 180, 181])
    s = load_tofu_split(tmp_path, forget="forget01")
    assert s.metadata["forget_authors"] == [180, 181] and s.metadata["retain_authors"] == [0, 1, 2]
    assert len(s.forget) == 4 and len(s.retain) == 6
    assert s.forget[0].prompt == "Question: Q180.0?\nAnswer:" and s.forget[0].answer == " A180.0"


def test_missing_file_names_the_path_and_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"tofu.jsonl.*Pass the folder"):
        load_tofu_rows(tmp_path)


def test_bad_json_names_the_line(tmp_path):
    (tmp_path / "tofu.jsonl").write_text('{"author": 0, "question": "q", "answer": "a"}\nnot json\n')
    with pytest.raises(ValueError, match=r"tofu.jsonl:2"):
        load_tofu_rows(tmp_path)


def test_empty_forget_and_overlap_errors(tmp_path):
    write_rows(tmp_path / "tofu.jsonl", [0, 1, 180, 181])
    with pytest.raises(SplitError, match=r"forget authors \[5\] are not in the data"):
        load_tofu_split(tmp_path, forget=[5])
    with pytest.raises(SplitError, match=r"authors \[180\] are in both"):
        load_tofu_split(tmp_path, forget=[180], retain=[0, 180])
    with pytest.raises(SplitError, match="retain set is empty"):
        load_tofu_split(tmp_path, forget=[0, 1, 180, 181])


def test_split_names_and_bad_ids():
    assert resolve_authors("forget05") == list(range(180, 190))
    with pytest.raises(ValueError, match="unknown TOFU split 'forget02'"):
        resolve_authors("forget02")
    with pytest.raises(ValueError, match="out of range"):
        resolve_authors([250])


@pytest.mark.tofu
def test_real_tofu_forget01():
    s = load_tofu_split(forget="forget01")
    assert len(s.forget) == 40 and len(s.retain) == 3960
    assert s.forget_subjects == ["author_180", "author_181"]


@pytest.mark.tofu
def test_real_tofu_perturbed_answers():
    s = load_tofu_split(forget="forget01")
    assert all(len(q.perturbed_answers) >= 3 and q.paraphrased_answer for q in s.forget)
