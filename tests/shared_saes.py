"""SAEs shared across test runs on one machine, the way the tests share the zoo's built models."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from sae_unlearn.atomic import atomic_directory, read_json
from sae_unlearn.saes.training import FIT_MANIFEST
from sae_unlearn.utils import cache_dir


@contextlib.contextmanager
def shared_saes(name: str, out: Path) -> Iterator[Path]:
    """Around a run that fits SAEs into ``out/saes`` (the demo, ``sae_stage(..., out)``): seed that
    folder with the SAEs an earlier run under the same ``name`` fitted on this machine, so that the
    run loads them instead of fitting, as it does for any folder holding a finished fit with the same
    key (:func:`~sae_unlearn.saes.fit_saes`: the same settings, model and activations; another key is
    fitted afresh). Afterwards the run's SAEs are shared if they are new (a first run, or a new key).
    Fitting itself is tested by the first run on a machine and by test_sae_pipeline.py."""
    shared = cache_dir() / "runs" / name / "saes"
    if (shared / FIT_MANIFEST).is_file():
        shutil.copytree(shared, out / "saes")
    yield shared
    key = read_json(out / "saes" / FIT_MANIFEST, "SAE fit manifest")["key"]
    if (shared / FIT_MANIFEST).is_file() and read_json(shared / FIT_MANIFEST, "SAE fit manifest")["key"] == key:
        return
    shared.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(shared, overwrite=True) as tmp:
        shutil.copytree(out / "saes", tmp, dirs_exist_ok=True)
