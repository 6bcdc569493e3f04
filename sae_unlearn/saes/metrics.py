"""SAE quality: L0, explained variance, dead latents, and CE loss recovered when spliced in.

- *L0*: mean number of active latents per token.
- *Explained variance*: ``1 - Σ‖x - x̂‖² / Σ‖x - x̄‖²`` over tokens (x̄ the mean activation).
- *Dead fraction*: share of latents that never fire on the given activations.
- *CE loss recovered*: with the SAE's reconstruction spliced in at its hook, how much of the
  gap between the clean next-token loss and the loss with the site zero-ablated is recovered:
  ``(CE_zero - CE_sae) / (CE_zero - CE_clean)`` (1 = as good as the model, 0 = as bad as ablation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from jaxtyping import Float
from sae_lens import SAE
from torch import Tensor

from sae_unlearn.models.loading import HookedModel
from sae_unlearn.saes.inputs import check_sae_inputs, sae_encode
from sae_unlearn.saes.splice import ablated, spliced


@dataclass
class SAEStats:
    """Reconstruction statistics of one SAE on a set of activations."""

    l0: float
    explained_variance: float
    dead_fraction: float
    mse: float
    n_tokens: int

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def encode_batched(
    sae: SAE, acts: Float[Tensor, "n d_in"], batch_size: int = 4096, hook: str | None = None
) -> Float[Tensor, "n d_sae"]:
    """``sae.encode`` over rows in batches, the rows prepared as the SAE was trained on them
    (:func:`~sae_unlearn.saes.inputs.prepare_sae_input`: its device and dtype, centred where its
    metadata asks; ``hook``: the site, default its ``hook_name``); result on the CPU."""
    return torch.cat(
        [sae_encode(sae, acts[i : i + batch_size], hook)[0].cpu() for i in range(0, acts.shape[0], batch_size)]
    )


@dataclass
class ReconstructionSums:
    """Running float64 sums behind :class:`SAEStats`, folded batch by batch (``O(d_in + d_sae)``
    memory): squared error, active latents, input sum and squared norm, latents ever fired."""

    d_in: int
    d_sae: int
    n: int = 0
    sse: float = 0.0
    active: float = 0.0
    x_sum: Tensor = field(init=False)
    x_sq: float = 0.0
    ever_fired: Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.x_sum = torch.zeros(self.d_in, dtype=torch.float64)
        self.ever_fired = torch.zeros(self.d_sae, dtype=torch.bool)

    def add(self, x: Float[Tensor, "n d_in"], z: Float[Tensor, "n d_sae"], x_hat: Float[Tensor, "n d_in"]) -> None:
        """Fold in one batch: inputs ``x``, their codes ``z`` and reconstructions ``x_hat``."""
        xd = x.detach().to("cpu", torch.float64)
        self.n += int(x.shape[0])
        self.sse += float((xd - x_hat.detach().to("cpu", torch.float64)).pow(2).sum())
        self.active += float((z != 0).sum())
        self.x_sum += xd.sum(0)
        self.x_sq += float(xd.pow(2).sum())
        self.ever_fired |= (z != 0).any(0).cpu()

    def stats(self) -> SAEStats:
        # total variance about the mean: sum ||x||^2 - n ||mean||^2 (float64 sums)
        tot = self.x_sq - float(self.x_sum.pow(2).sum()) / max(self.n, 1)
        return SAEStats(
            l0=self.active / self.n,
            explained_variance=1.0 - self.sse / max(tot, 1e-12),
            dead_fraction=1.0 - float(self.ever_fired.float().mean()),
            mse=self.sse / (self.n * self.d_in),
            n_tokens=self.n,
        )


@torch.no_grad()
def reconstruction_stats(
    sae: SAE, acts: Float[Tensor, "n d_in"], batch_size: int = 4096, hook: str | None = None
) -> SAEStats:
    """L0, explained variance, dead fraction and MSE of ``sae`` on the plain model's activations
    ``acts`` at ``hook`` (default: its ``hook_name``), measured in the SAE's own input space: the
    rows prepared as it was trained on them (:func:`~sae_unlearn.saes.inputs.prepare_sae_input`)."""
    if acts.shape[0] == 0:
        raise ValueError("no activations given.")
    if acts.shape[-1] != sae.cfg.d_in:
        raise ValueError(f"activations have width {acts.shape[-1]} but the SAE expects d_in={sae.cfg.d_in}.")
    sums = ReconstructionSums(int(sae.cfg.d_in), int(sae.cfg.d_sae))
    for i in range(0, acts.shape[0], batch_size):
        z, x = sae_encode(sae, acts[i : i + batch_size], hook)
        sums.add(x, z, sae.decode(z))
    return sums.stats()


@torch.no_grad()
def _mean_ce(model: HookedModel, texts: Sequence[str], batch_size: int) -> float:
    total, count = 0.0, 0
    for i in range(0, len(texts), batch_size):
        batch = model.tokenize(list(texts[i : i + batch_size])).to(model.device)
        logits = model.logits(batch.input_ids)
        ce = F.cross_entropy(logits[:, :-1].flatten(0, 1), batch.input_ids[:, 1:].flatten(), reduction="none")
        mask = batch.attention_mask[:, 1:].flatten().bool()
        total += float(ce[mask].sum())
        count += int(mask.sum())
    return total / max(1, count)


@torch.no_grad()
def ce_loss_recovered(
    model: HookedModel, saes: Mapping[str, SAE], texts: Sequence[str], batch_size: int = 64
) -> dict[str, dict[str, float]]:
    """Per hook: clean CE, CE with the SAE spliced in, CE with the site zero-ablated, and recovered."""
    if len(texts) == 0:
        raise ValueError("no texts given for the CE evaluation.")
    clean = _mean_ce(model, texts, batch_size)
    out = {}
    for hook, sae in saes.items():
        check_sae_inputs(model, sae, hook)
        with spliced(model, {hook: sae}):
            with_sae = _mean_ce(model, texts, batch_size)
        with ablated(model, [hook]):
            zero = _mean_ce(model, texts, batch_size)
        out[hook] = {
            "ce_clean": clean,
            "ce_with_sae": with_sae,
            "ce_zero_ablation": zero,
            "ce_loss_recovered": (zero - with_sae) / (zero - clean) if zero != clean else float("nan"),
        }
    return out
