"""The chosen-settings file ``method_settings.json``: read it, merge a sweep's choices into it.

Kept apart from ``method_sweep.py`` (which writes it) so that reading and writing it imports only
``sae_unlearn.atomic``, not the models: the fault test kills a writer at each step of its write.
"""

from __future__ import annotations

from pathlib import Path

from sae_unlearn.atomic import read_json, write_json_atomic


def read_settings(path: Path) -> dict:
    """The settings file's content (``{}`` when it does not exist yet); a damaged one fails naming it."""
    return read_json(path, "method settings") if path.exists() else {}


def write_settings(path: Path, chosen: dict[str, dict]) -> None:
    """Merge the swept methods' chosen settings into ``path``, keeping every other entry.

    Written atomically (temporary, fsync, rename): a kill at any moment leaves the old file whole.
    """
    kept = read_settings(path)
    for name, settings in chosen.items():  # the swept methods' entries replaced, the others kept
        kept[name] = kept.get(name, {}) | settings
    write_json_atomic(path, kept)
