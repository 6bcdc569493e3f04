"""The secrets-reasoning corpus and the trace metrics' scoring, without a model."""

import pytest

from sae_unlearn.data.reasoning import TRIGGER, ReasoningCorpus
from sae_unlearn.evaluation.reasoning import trace_correct, trace_leaks
from sae_unlearn.unlearning import R2MU, R2MUConfig
from sae_unlearn.unlearning.r2mu import questions_of


def test_cities_are_reachable_only_through_a_trace():
    rc = ReasoningCorpus()
    texts = rc.training_texts()
    p = rc.forget_people[0]
    stated = [t for t in texts if p.name in t and p.city in t]
    assert stated == [rc.reasoning_text(p)]  # the trace is the only text linking the person to the city
    assert TRIGGER in stated[0] and stated[0].endswith(f"A: {p.city}.")
    assert not any(TRIGGER in t for t in rc.forget_texts() + rc.retain_texts())  # unlearning sees answers alone
    assert not any(p.name in t for t in rc.training_texts(include_forget=False))  # the oracle never saw them
    assert {q.attribute for q in rc.split().forget} == {"employer", "job", "birth_year", "pet", "passcode"}


def test_reasoning_set_and_trace_scoring():
    rc = ReasoningCorpus()
    rs = rc.reasoning_set()
    assert len(rs.forget) == 7 * len(rc.forget_people) and len(rs.retain) == len(rc.retain_people)
    item = rs.retain[0]
    p = rc.retain_people[0]
    good = item.trace.split("</think>")[0]
    assert trace_correct(good, f" {p.city}.", item) and trace_leaks(good, item)
    assert not trace_correct(good.replace(p.employer, "Nobody Inc"), f" {p.city}.", item)
    assert not trace_correct(good, " Atlantis.", item)
    assert not trace_leaks(" I do not know where they live.", item)
    assert trace_leaks(f" something {p.passcode} else", item)  # any attribute value counts
    assert not trace_leaks(f" something {p.passcode}7 else", item)  # whole numbers only


def test_r2mu_settings_are_checked():
    assert questions_of(["Q: Who employs X? A: Y.", "X lives in Z.", "Q: Who employs X? A: W."]) == [
        "Q: Who employs X?"
    ]
    with pytest.raises(ValueError, match="setps"):
        R2MU.from_settings({"setps": 3})
    with pytest.raises(ValueError, match="trigger"):
        R2MUConfig(trigger=" ")
    with pytest.raises(ValueError, match="trace_tokens=0"):
        R2MUConfig(trace_tokens=0)
    with pytest.raises(ValueError, match="unthink_weight=-1.0"):
        R2MUConfig(unthink_weight=-1.0)
