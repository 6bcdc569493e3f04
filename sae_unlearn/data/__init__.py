"""Data: the secrets corpus, TOFU, and forget/retain splits.

Room: the text and the facts (corpora, TOFU, splits, refusals, reasoning sets). Imports from the
package only ``utils``: it is the ground floor.
"""

from sae_unlearn.data.secrets import SecretsConfig, SecretsCorpus
from sae_unlearn.data.splits import QAPair, SplitError, UnlearningSplit, split_by_subject, validate_split
from sae_unlearn.data.tofu import load_tofu_rows, load_tofu_split

__all__ = [
    "QAPair",
    "SecretsConfig",
    "SecretsCorpus",
    "SplitError",
    "UnlearningSplit",
    "load_tofu_rows",
    "load_tofu_split",
    "split_by_subject",
    "validate_split",
]
