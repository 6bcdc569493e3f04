import pytest
import torch
from jaxtyping import TypeCheckError

from sae_unlearn.selection import SCORERS, auroc, auroc_interval, latent_stats, score_latents, select_latents
from sae_unlearn.selection.layers import weighted_auroc


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
    sel = select_latents(stats, n_latents=5, scorer=scorer, hook="h")
    assert sorted(sel.relevant.tolist()) == [0, 1, 2, 3, 4]
    assert set(sel.irrelevant.tolist()) <= set(range(5, 20)) and not set(sel.irrelevant.tolist()) & set(range(20, 40))
    assert sorted(sel.irrelevant.tolist()) == [5, 6, 7, 8, 9]  # retain-only latents are least forget-related
    assert sel.relevant_scores[0] >= sel.relevant_scores[-1]
    fire = sel.firing_contrast()
    assert fire["freq_retain"] == 0 and fire["freq_forget"] > 0.2


def test_selection_is_deterministic_and_summarised():
    stats = latent_stats(*planted())
    a, b = select_latents(stats, n_latents=8), select_latents(stats, n_latents=8)
    assert torch.equal(a.relevant, b.relevant) and torch.equal(a.irrelevant, b.irrelevant)
    summary = a.summary()
    assert len(summary["relevant"]) == 8 and {"latent", "score", "freq_forget", "freq_retain"} <= set(
        summary["relevant"][0]
    )


def test_threshold_limits_the_selection():
    stats = latent_stats(*planted())
    with pytest.warns(UserWarning, match="only 10 latents of the SAE are forget-specific"):
        sel = select_latents(stats, n_latents=20, scorer="frequency_ratio", threshold=3.0)
    assert sorted(sel.relevant.tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="lower the threshold"), pytest.warns(UserWarning, match="only 10 latents"):
        select_latents(stats, n_latents=20, scorer="frequency_ratio", threshold=100.0)


def test_bad_inputs():
    f, r = planted()
    # our ValueError, or the run-time type checker's error on the Literal under test: both name the value
    with pytest.raises((ValueError, TypeCheckError), match="nope"):
        score_latents(latent_stats(f, r), "nope")
    with pytest.raises(ValueError, match="need forget and retain"):
        latent_stats(f[:0], r)
    with pytest.raises(ValueError, match="no latent of h fires on the forget data"):
        select_latents(latent_stats(torch.zeros(4, 40), r), hook="h")
    with pytest.raises(ValueError, match="n_latents=0 must be an int >= 1"):
        select_latents(latent_stats(f, r), n_latents=0)


def test_auroc():
    assert auroc(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])) == 1.0
    assert auroc(torch.tensor([1.0]), torch.tensor([2.0])) == 0.0
    assert auroc(torch.tensor([1.0, 1.0]), torch.tensor([1.0])) == 0.5
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(500, generator=g), torch.randn(500, generator=g)
    brute = float(((x[:, None] > y[None]).double() + 0.5 * (x[:, None] == y[None]).double()).mean())
    assert auroc(x, y) == pytest.approx(brute)


def test_weighted_auroc_equals_auroc_of_the_repeated_scores():
    g = torch.Generator().manual_seed(1)
    pos = torch.randint(0, 6, (30,), generator=g).float()  # few distinct values: many ties
    neg = torch.randint(0, 5, (40,), generator=g).float()
    wp = torch.randint(0, 4, (8, 30), generator=g).double()
    wn = torch.randint(0, 4, (8, 40), generator=g).double()
    got = weighted_auroc(pos, neg, wp, wn)
    for r in range(8):
        want = auroc(pos.repeat_interleave(wp[r].long()), neg.repeat_interleave(wn[r].long()))
        assert float(got[r]) == pytest.approx(want, abs=1e-12)
    ones = weighted_auroc(pos, neg, torch.ones(1, 30, dtype=torch.float64), torch.ones(1, 40, dtype=torch.float64))
    assert float(ones[0]) == pytest.approx(auroc(pos, neg), abs=1e-12)
    with pytest.raises(ValueError, match="positive total"):
        weighted_auroc(pos, neg, torch.zeros(1, 30, dtype=torch.float64), torch.ones(1, 40, dtype=torch.float64))


def test_auroc_interval_is_seeded_and_brackets_the_score():
    g = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(40, generator=g) + 1.0, torch.randn(200, generator=g)
    low, high = auroc_interval(pos, neg)
    assert (low, high) == auroc_interval(pos, neg)  # same seed, same interval
    assert auroc_interval(pos, neg, seed=1) != (low, high)
    assert 0.5 < low < auroc(pos, neg) < high < 1.0
    assert 0.05 < high - low < 0.4  # 40 positives: the score is known to about +-0.08, not to 0.004
    narrow = auroc_interval(pos, neg, level=0.5)
    assert low < narrow[0] < narrow[1] < high


def test_auroc_interval_shrinks_with_more_texts_and_is_exact_when_separated():
    g = torch.Generator().manual_seed(0)
    small = auroc_interval(torch.randn(20, generator=g) + 1, torch.randn(20, generator=g))
    large = auroc_interval(torch.randn(2000, generator=g) + 1, torch.randn(2000, generator=g))
    assert large[1] - large[0] < (small[1] - small[0]) / 4
    assert large[0] < 0.76 < large[1]  # the population AUROC of N(1,1) vs N(0,1) is Phi(1/sqrt 2) = 0.760
    assert auroc_interval(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])) == (1.0, 1.0)


def test_auroc_interval_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one positive"):
        auroc_interval(torch.tensor([]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="n_boot"):
        auroc_interval(torch.tensor([1.0]), torch.tensor([0.0]), n_boot=0)
    with pytest.raises(ValueError, match="level"):
        auroc_interval(torch.tensor([1.0]), torch.tensor([0.0]), level=1.0)


def test_choose_layer_takes_the_deepest_layer_tied_with_the_best(no_runtime_typecheck):
    from sae_unlearn.selection import choose_layer

    h = [f"blocks.{l}.hook_resid_post" for l in range(4)]
    # the zoo's GPT-2 twin: layer 0 scores best, layer 2's interval reaches it, layer 3's does not
    scores = {h[0]: 0.975, h[1]: 0.962, h[2]: 0.956, h[3]: 0.943}
    intervals = {h[0]: (0.965, 0.984), h[1]: (0.950, 0.972), h[2]: (0.943, 0.968), h[3]: (0.929, 0.957)}
    assert choose_layer(scores, intervals) == h[2]
    assert choose_layer(scores, intervals, "best") == h[0]
    # nothing tied: the best layer
    narrow = {k: (v - 0.001, v + 0.001) for k, v in scores.items()}
    assert choose_layer(scores, narrow) == h[0]
    # an exact tie under "best": the earlier layer
    assert choose_layer({h[2]: 1.0, h[3]: 1.0}, {h[2]: (1.0, 1.0), h[3]: (1.0, 1.0)}, "best") == h[2]
    with pytest.raises(ValueError, match="layer_rule='top'"):
        choose_layer(scores, intervals, "top")
    # only candidates may be chosen (the pipeline passes the layers with the whole edit upstream)
    assert choose_layer(scores, intervals, candidates=[h[2], h[3]]) == h[3]  # 2 and 3 tie with each other
    assert choose_layer(scores, narrow, candidates=[h[2], h[3]]) == h[2]
    with pytest.raises(ValueError, match="none of the candidate hooks"):
        choose_layer(scores, intervals, candidates=["blocks.9.hook_resid_post"])


def test_latent_sums_folded_in_batches_equal_the_whole_statistics():
    from sae_unlearn.selection import LatentSums, latent_stats, stats_from_sums

    g = torch.Generator().manual_seed(0)
    f, r = torch.relu(torch.randn(50, 12, generator=g)), torch.relu(torch.randn(70, 12, generator=g) - 0.5)
    whole = latent_stats(f, r)
    sides = LatentSums.zeros(12), LatentSums.zeros(12)
    for chunk in f.split([7, 30, 13]):
        sides[0].add(chunk)
    for chunk in r.split([1, 69]):
        sides[1].add(chunk)
    folded = stats_from_sums(*sides)
    assert folded.n_forget == 50 and folded.n_retain == 70
    for name in ("freq_forget", "freq_retain", "mean_forget", "mean_retain", "sq_mean_forget", "sq_mean_retain"):
        torch.testing.assert_close(getattr(folded, name), getattr(whole, name), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="activations have 5 latents but the sums hold 12"):
        sides[0].add(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="need forget and retain activations; got 0 forget"):
        stats_from_sums(LatentSums.zeros(12), sides[1])


def test_sparse_codes_fold_to_the_dense_sums():
    from sae_unlearn.selection import LatentSums

    g = torch.Generator().manual_seed(2)
    z = torch.relu(torch.randn(60, 20, generator=g) - 1.0)
    dense, sparse = LatentSums.zeros(20), LatentSums.zeros(20)
    dense.add(z)
    row, latent = z.nonzero(as_tuple=True)
    sparse.add_codes(60, latent, z[row, latent])
    assert sparse.n == 60
    for name in ("fired", "total", "squares"):
        torch.testing.assert_close(getattr(sparse, name), getattr(dense, name), rtol=1e-12, atol=1e-12)
    with pytest.raises((ValueError, TypeCheckError), match="nnz"):  # ours names the shapes, the type checker nnz
        sparse.add_codes(1, latent[:2], z[row, latent][:3])


@pytest.mark.parametrize(("d_sae", "dtype"), [(50, torch.float32), (40_000, torch.bfloat16)])
def test_the_code_spill_gives_the_dense_evidence_bit_for_bit(tmp_path, d_sae, dtype):
    from sae_unlearn.selection.codes import CodeSpill

    g = torch.Generator().manual_seed(3)
    spill = CodeSpill(tmp_path / "codes.bin", d_sae, dtype)
    relevant = torch.randperm(d_sae, generator=g)[:7]
    want = torch.full((9,), float("-inf"))
    # batches cut texts anywhere; text 4 has no token; a batch with no code at all
    seqs = [torch.tensor([0, 0, 0, 1, 1]), torch.tensor([1, 2, 2, 3]), torch.tensor([5, 5]), torch.tensor([6, 7, 8, 8])]
    for i, seq in enumerate(seqs):
        z = torch.relu(torch.randn(len(seq), d_sae, generator=g) - 2.5).to(dtype)
        if i == 2:
            z.zero_()
        row, latent = z.nonzero(as_tuple=True)
        spill.add(seq, row, latent, z[row, latent])
        want = want.scatter_reduce(0, seq, z[:, relevant].sum(-1).float(), reduce="amax")
    got = spill.text_evidence(relevant, 9)
    assert spill.nbytes == (tmp_path / "codes.bin").stat().st_size
    assert torch.equal(got, want) and got[4] == float("-inf")
    assert torch.equal(spill.text_evidence(relevant, 9), want)  # read back again: the same
    with pytest.raises(RuntimeError, match="finished"):
        spill.add(seqs[0], row, latent, z[row, latent])


def _sums(forget: torch.Tensor, retain: torch.Tensor):
    from sae_unlearn.selection import LatentSums

    sides = LatentSums.zeros(forget.shape[1]), LatentSums.zeros(forget.shape[1])
    sides[0].add(forget)
    sides[1].add(retain)
    return sides


def test_a_hook_without_forget_latents_is_skipped_not_fatal():
    from sae_unlearn.selection.layers import result_from_evidence, select_per_hook

    f, r = planted()
    live, dead, flat = "blocks.2.hook_resid_post", "blocks.3.hook_resid_post", "blocks.1.hook_resid_post"
    sums = {flat: _sums(r, r), live: _sums(f, r), dead: _sums(torch.zeros_like(f), r)}
    with pytest.warns(UserWarning) as record:
        selections, skipped = select_per_hook(sums, 5, "squared_mean_ratio", None)
    messages = [str(w.message) for w in record]
    assert any(dead in m and "no latent fires on the forget data" in m for m in messages)
    assert any(flat in m and "more active on forget than on retain" in m for m in messages)
    assert set(skipped) == {dead, flat}
    assert len(selections[live].relevant) == 5
    assert len(selections[dead].relevant) == 0 and len(selections[dead].irrelevant) == 0
    assert selections[dead].summary()["relevant"] == []
    # the deepest hook scores chance and is left out, although deepest_tied would take it
    ev = {live: (torch.tensor([0.2, 0.3]), torch.tensor([0.25, 0.1]))}
    result = result_from_evidence(ev, selections, skipped=skipped)
    assert result.hook == live and result.latents is selections[live]
    assert result.layer_scores[dead] == 0.5 and result.layer_score_intervals[dead] == (0.5, 0.5)
    assert list(result.layer_scores) == [flat, live, dead] and result.skipped == skipped
    # every candidate without forget latents: one error naming them all
    with pytest.raises(ValueError, match=f"no candidate hook.*{flat}.*{dead}"):
        select_per_hook(sums, 5, "squared_mean_ratio", None, candidates=[flat, dead])
    with pytest.raises(ValueError, match="no hook has a forget-specific SAE latent"):
        select_per_hook({dead: sums[dead]}, 5, "squared_mean_ratio", None)
    # a single SAE still raises, as the subclass of ValueError it always was
    from sae_unlearn.selection import NoForgetLatentsError, latent_stats

    with pytest.raises(NoForgetLatentsError, match=f"no latent of {dead} fires"):
        select_latents(latent_stats(torch.zeros_like(f), r), hook=dead)
