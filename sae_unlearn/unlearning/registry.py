"""One registry of unlearning methods: notebooks, CLI and benchmarks look methods up by name.

Registration is explicit (no import side effects): a new method is added to ``METHODS`` here.
"""

from __future__ import annotations

from sae_unlearn.unlearning.base import UnlearningMethod
from sae_unlearn.unlearning.rmu import RMU
from sae_unlearn.unlearning.sspu import SSPU

METHODS: dict[str, type[UnlearningMethod]] = {"rmu": RMU, "sspu": SSPU}


def get_method(name: str) -> type[UnlearningMethod]:
    """The method class registered under ``name``."""
    if name not in METHODS:
        raise KeyError(f"unknown unlearning method {name!r}; registered: {sorted(METHODS)}.")
    return METHODS[name]
