"""The corpus registry (:mod:`sae_unlearn.data.corpora`): every registered corpus gives what each
stage reads, consistently; an unknown name fails naming the registered ones."""

from __future__ import annotations

import pytest

from sae_unlearn.data.corpora import CORPORA, corpus_data


# tofu-mini reads the TOFU data: skipped with a reason where it is absent (the ``tofu`` marker)
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.tofu) if n.startswith("tofu") else n for n in sorted(CORPORA)]
)
def test_every_registered_corpus_gives_facts_texts_and_relearning_material(name):
    c = corpus_data(name)
    assert c.split.forget and c.split.retain and c.forget_texts and c.retain_texts
    assert not set(c.forget_texts) & set(c.retain_texts), "a text on both sides is neither forgotten nor kept"
    forget_facts = {q.text for q in c.split.forget}
    assert c.relearn_eval and {q.text for q in c.relearn_eval} <= forget_facts
    assert not {q.text for q in c.relearn_eval} & set(c.relearn_texts), "relearning must not state what it measures"
    assert (c.reasoning is not None) == (name == "secrets-reasoning")


def test_an_unknown_corpus_names_the_registered_ones():
    with pytest.raises(ValueError, match=r"unknown corpus 'secret'; did you mean 'secrets'\? Registered: secrets, "):
        corpus_data("secret")


def test_a_recipe_names_its_corpus_from_the_registry():
    from sae_unlearn.recipes.spec import DataSpec

    assert DataSpec(corpus="secrets-passcodes").corpus == "secrets-passcodes"
    with pytest.raises(ValueError, match=r"corpus='secretz' is not registered \(did you mean 'secrets'\?\)"):
        DataSpec(corpus="secretz")
