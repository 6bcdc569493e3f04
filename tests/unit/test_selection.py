import pytest
import torch
from jaxtyping import TypeCheckError

from sae_unlearn.selection import SCORERS, auroc, latent_stats, score_latents, select_latents


def planted(seed=0, d_sae=40, n=400):
    """Latents 0-4 fire only on forget rows; 5-9 only on retain rows; 10-19 on both; the rest never."""
    g = torch.Generator().manual_seed(seed)
    forget = torch.zeros(n, d_sae)
    retain = torch.zeros(n, d_sae)
    forget[:, :5] = torch.rand(n, 5, generator=g) * (torch.rand(n, 5, generator=g) < 0.3)
    retain[:, 5:10] = torch.rand(n, 5, generator=g) * (torch.rand(n, 5, generator=g) < 0.3)
    forget[:, 10:20] = torch.rand(n, 10, generator=g) * (torch.rand(n, 10, generator=g) < 0.5)
    retain[:, 10:20] = torch.rand(n, 10, generator=g) * (torch.rand(n, 10, generator=g) < 0.5)
    return forget, retain


@pytest.mark.parametrize("scorer", SCORERS)
def test_every_scorer_finds_the_planted_latents(scorer):
    stats = latent_stats(*planted())
    sel = select_latents(stats, k=5, scorer=scorer, hook="h")
    assert sorted(sel.relevant.tolist()) == [0, 1, 2, 3, 4]
    assert set(sel.irrelevant.tolist()) <= set(range(5, 20)) and not set(sel.irrelevant.tolist()) & set(range(20, 40))
    assert sorted(sel.irrelevant.tolist()) == [5, 6, 7, 8, 9]  # retain-only latents are least forget-related
    assert sel.relevant_scores[0] >= sel.relevant_scores[-1]
    fire = sel.firing_contrast()
    assert fire["freq_retain"] == 0 and fire["freq_forget"] > 0.2


def test_selection_is_deterministic_and_summarised():
    stats = latent_stats(*planted())
    a, b = select_latents(stats, k=8), select_latents(stats, k=8)
    assert torch.equal(a.relevant, b.relevant) and torch.equal(a.irrelevant, b.irrelevant)
    summary = a.summary()
    assert len(summary["relevant"]) == 8 and {"latent", "score", "freq_forget", "freq_retain"} <= set(
        summary["relevant"][0]
    )


def test_threshold_limits_the_selection():
    stats = latent_stats(*planted())
    sel = select_latents(stats, k=20, scorer="frequency_ratio", threshold=3.0)
    assert sorted(sel.relevant.tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="lower the threshold"):
        select_latents(stats, k=20, scorer="frequency_ratio", threshold=100.0)


def test_bad_inputs():
    f, r = planted()
    # our ValueError, or the run-time type checker's error on the Literal under test: both name the value
    with pytest.raises((ValueError, TypeCheckError), match="nope"):
        score_latents(latent_stats(f, r), "nope")
    with pytest.raises(ValueError, match="need forget and retain"):
        latent_stats(f[:0], r)
    with pytest.raises(ValueError, match="no latent of h fires on the forget data"):
        select_latents(latent_stats(torch.zeros(4, 40), r), hook="h")
    with pytest.raises(ValueError, match="k=0"):
        select_latents(latent_stats(f, r), k=0)


def test_auroc():
    assert auroc(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])) == 1.0
    assert auroc(torch.tensor([1.0]), torch.tensor([2.0])) == 0.0
    assert auroc(torch.tensor([1.0, 1.0]), torch.tensor([1.0])) == 0.5
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(500, generator=g), torch.randn(500, generator=g)
    brute = float(((x[:, None] > y[None]).double() + 0.5 * (x[:, None] == y[None]).double()).mean())
    assert auroc(x, y) == pytest.approx(brute)
