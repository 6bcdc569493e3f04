import pytest

from sae_unlearn.evaluation.knowledge import first_sentence, rouge_l_recall, states_target


def test_states_target_looks_at_the_first_sentence_only():
    assert states_target(" Lisbon. Q: Where does X live? A: Oslo.", "Lisbon")
    assert not states_target(" Oslo. Q: Where does X live? A: Lisbon.", "Lisbon")
    assert states_target(" 1965.", "1965") and not states_target(" 19650.", "1965")
    assert not states_target(" anything", "")


def test_first_sentence_keeps_decimals():
    assert first_sentence(" 3.5 kg. Next") == " 3.5 kg."


def test_rouge_l_recall():
    assert rouge_l_recall("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    assert rouge_l_recall("the cat", "the cat sat on the mat") == pytest.approx(2 / 6)
    assert rouge_l_recall("", "the cat") == 0.0
