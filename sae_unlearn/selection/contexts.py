"""What does a latent fire on? Top-activating tokens in context, and latents firing on any text."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from jaxtyping import Bool, Float
from sae_lens import SAE
from torch import Tensor

from sae_unlearn.capture.capture import run_and_capture
from sae_unlearn.capture.store import ActivationStore
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.saes.inputs import capture_inputs, sae_encode


@dataclass
class TokenContext:
    """One token where a latent fired, with the text around it."""

    before: str
    token: str
    after: str
    activation: float
    seq_index: int
    position: int
    is_forget: bool

    def render(self) -> str:
        """``…before [[token]] after…``"""
        return f"{self.before}[[{self.token}]]{self.after}"

    def to_dict(self) -> dict:
        return asdict(self) | {"text": self.render()}


def top_activating_contexts(
    latent_acts: Float[Tensor, " n_tokens"],
    store: ActivationStore,
    tokenizer,
    forget_mask: Bool[Tensor, " n_tokens"] | None = None,
    n: int = 5,
    window: int = 8,
) -> list[TokenContext]:
    """The ``n`` rows where a latent is most active, each with up to ``window`` tokens either side."""
    token_ids, seq, pos = store.token_ids, store.seq_index, store.position
    top = torch.argsort(latent_acts, descending=True)[:n]
    out = []
    for row in top.tolist():
        act = float(latent_acts[row])
        if act <= 0:
            break
        rows = (seq == seq[row]).nonzero().squeeze(-1)
        rows = rows[torch.argsort(pos[rows])]
        here = int((rows == row).nonzero()[0, 0])
        ids = token_ids[rows]
        dec = lambda t: tokenizer.decode(t.tolist())  # noqa: E731
        out.append(
            TokenContext(
                before=dec(ids[max(0, here - window) : here]),
                token=dec(ids[here : here + 1]),
                after=dec(ids[here + 1 : here + 1 + window]),
                activation=act,
                seq_index=int(seq[row]),
                position=int(pos[row]),
                is_forget=bool(forget_mask[row]) if forget_mask is not None else False,
            )
        )
    return out


@torch.no_grad()
def latents_on_text(model: HookedModel, sae: SAE, hook: str, text: str, top: int = 5) -> list[dict]:
    """For each token of ``text``: the ``top`` latents of ``sae`` that fire on it, with activations
    (the text tokenized, and its activations prepared, as the SAE was trained: :mod:`sae_unlearn.saes.inputs`)."""
    inputs = capture_inputs(model, {hook: sae}, [text])
    ids = model.tokenize(text, max_length=inputs.max_length, bos=inputs.bos).input_ids
    act = run_and_capture(model, ids, [hook])[hook][0]
    z = sae_encode(sae, act, hook)[0].cpu()
    rows = []
    for p in range(ids.shape[1]):
        vals, idx = z[p].topk(min(top, z.shape[-1]))
        rows.append(
            {
                "position": p,
                "token": model.tokenizer.decode([int(ids[0, p])]),
                "latents": [(int(i), float(v)) for i, v in zip(idx, vals) if v > 0],
            }
        )
    return rows
