"""The ``custom_dataset`` loader the task YAMLs in this folder name (``!function local_data.load_local_mc``).

lm-eval calls it with the run's metadata (``--metadata '{"mc_file": "/path/q.jsonl"}'`` on the command
line, ``TaskManager(metadata=...)`` in Python) and the task's ``dataset_kwargs``; ``file_key`` says
which metadata entry holds the task's question file.
"""

from __future__ import annotations

from typing import Any

from sae_unlearn.evaluation.lm_eval import local_mc_dataset


def load_local_mc(file_key: str, n_choices: int | None = None, **metadata: Any) -> Any:
    """The question file named by ``metadata[file_key]`` as a ``DatasetDict`` with one ``test`` split."""
    return local_mc_dataset(file_key, metadata, n_choices=n_choices)
