import pytest

from sae_unlearn.data import QAPair, SplitError, UnlearningSplit, split_by_subject


def qa(subject: str, i: int) -> QAPair:
    return QAPair(prompt=f"Q: fact {i} of {subject}? A:", answer=f" v{i}.", subject=subject, target=f"v{i}")


def test_split_counts_subjects():
    s = UnlearningSplit("t", forget=[qa("a", 0), qa("a", 1)], retain=[qa("b", 0)])
    assert s.forget_subjects == ["a"] and s.retain_subjects == ["b"]
    assert "forget=2 items" in repr(s)


def test_empty_forget_set_is_a_clear_error():
    with pytest.raises(SplitError, match="forget set is empty"):
        UnlearningSplit("t", forget=[], retain=[qa("b", 0)])


def test_empty_retain_set_is_a_clear_error():
    with pytest.raises(SplitError, match="retain set is empty"):
        UnlearningSplit("t", forget=[qa("a", 0)], retain=[])


def test_overlap_names_the_item():
    with pytest.raises(SplitError, match=r"1 item\(s\) are in both.*fact 0 of a"):
        UnlearningSplit("t", forget=[qa("a", 0)], retain=[qa("a", 0), qa("b", 1)])


def test_split_by_subject_and_unknown_subject():
    items = [qa("a", 0), qa("b", 0), qa("c", 0)]
    s = split_by_subject(items, ["a"])
    assert [p.subject for p in s.forget] == ["a"] and len(s.retain) == 2
    with pytest.raises(SplitError, match=r"\['zed'\] not found"):
        split_by_subject(items, ["zed"])


def test_text_is_prompt_plus_answer():
    assert qa("a", 3).text == "Q: fact 3 of a? A: v3."
