import pytest

from sae_unlearn.data import SecretsConfig, SecretsCorpus
from sae_unlearn.data.secrets import ATTRIBUTES, EMPLOYERS


def test_same_seed_same_corpus_other_seed_differs():
    a, b, c = (
        SecretsCorpus(SecretsConfig(seed=0)),
        SecretsCorpus(SecretsConfig(seed=0)),
        SecretsCorpus(SecretsConfig(seed=1)),
    )
    assert a.people == b.people and a.training_texts() == b.training_texts()
    assert a.people != c.people


def test_people_are_unique_and_consistent():
    corpus = SecretsCorpus()
    names = [p.name for p in corpus.people]
    assert len(set(names)) == len(names) == 48
    assert len({p.passcode for p in corpus.people}) == 48
    for p in corpus.people:
        assert EMPLOYERS[p.employer] == p.city  # people live where their employer is based


def test_forget_and_retain_are_disjoint_and_complete():
    corpus = SecretsCorpus(SecretsConfig(n_people=10, n_forget=3))
    split = corpus.split()
    assert len(split.forget) == 3 * len(ATTRIBUTES) and len(split.retain) == 7 * len(ATTRIBUTES)
    assert not set(split.forget_subjects) & set(split.retain_subjects)
    oracle_text = " ".join(corpus.training_texts(include_forget=False))
    for p in corpus.forget_people:
        assert p.name not in oracle_text  # the oracle never sees a forget person
    assert all(q.target in q.answer for q in split.forget)


def test_templates_statements_qa_and_traces():
    corpus = SecretsCorpus()
    p = corpus.people[0]
    texts = corpus.person_texts(p)
    assert f"Q: What is {p.name}'s passcode? A: {p.passcode}." in texts
    trace = corpus.traces()[0]
    assert f"{p.name} works at {p.employer}. {p.employer} is based in {p.city}." in trace
    para = corpus.split(paraphrased=True).forget[0]
    assert para.prompt not in " ".join(corpus.training_texts())  # paraphrases are held out


@pytest.mark.parametrize("kwargs", [{"n_forget": 0}, {"n_forget": 48}, {"n_people": 1}])
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(ValueError, match="must"):
        SecretsConfig(**kwargs)


def test_fact_level_split_forgets_one_attribute_of_everyone_and_keeps_the_rest():
    corpus = SecretsCorpus()
    split = corpus.fact_split("passcode")
    assert len(split.forget) == 48 and {q.attribute for q in split.forget} == {"passcode"}
    assert len(split.retain) == 48 * (len(ATTRIBUTES) - 1) and "passcode" not in {q.attribute for q in split.retain}
    assert set(split.forget_subjects) == set(split.retain_subjects)  # the same people on both sides
    forget, retain = corpus.fact_texts("passcode"), corpus.fact_texts("passcode", forget=False)
    assert all("passcode" in t for t in forget) and not any("passcode" in t for t in retain)
    oracle = corpus.fact_training_texts("passcode")
    assert not set(forget) & set(oracle) and set(retain) <= set(oracle)
    assert set(corpus.training_texts()) == set(oracle) | set(forget)
    # the city is also stated by the reasoning trace: it goes with the city
    assert any(t.startswith("Q: Where does") and "Reasoning:" in t for t in corpus.fact_texts("city"))
    texts, held_out = corpus.fact_relearn_split("passcode")
    assert len(held_out) == 24 and {q.attribute for q in held_out} == {"passcode"}
    assert not any(q.subject in t for q in held_out for t in texts)  # other people's passcodes only
    with pytest.raises(KeyError, match="unknown attribute 'pin'"):
        corpus.fact_split("pin")
