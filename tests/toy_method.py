"""A method plugged in from outside the package: a test file defines and registers it, and the
pipeline, the monitor widget and the demo run it like a built-in one (test_methods.py, test_demo.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from sae_unlearn.unlearning import METHODS, GradientMethod, register
from sae_unlearn.unlearning.gradient import mean_token_nll

NAME = "toy_last_token"


class ForgetLastToken(GradientMethod):
    """Toy: lower the likelihood of each forget text's last token only; keep retain NLL."""

    description = "unlikely last tokens (a toy)"

    def step_loss(self, run, forget, forget_index, retain, retain_index):
        ids, mask = forget.input_ids, forget.attention_mask
        logits = run.model.logits(ids, mask)
        last = mask.sum(-1) - 1
        rows = torch.arange(ids.shape[0])
        logp = torch.log_softmax(logits[rows, last - 1].float(), -1)[rows, ids[rows, last]]
        forget_loss = logp.mean()
        retain_loss = mean_token_nll(run.model, retain)
        return {"loss": forget_loss + retain_loss, "forget_loss": forget_loss, "retain_loss": retain_loss}


@contextmanager
def toy_method_registered() -> Iterator[str]:
    """Register the toy method for the block's duration (as a user's own file would); yields its name."""
    register(NAME)(ForgetLastToken)
    try:
        yield NAME
    finally:
        METHODS.pop(NAME, None)
