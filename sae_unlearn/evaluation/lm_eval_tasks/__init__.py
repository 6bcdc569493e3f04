"""lm-evaluation-harness task YAMLs for local multiple-choice files (pass this folder as ``--include_path``).

Usage, formats and how they score: :mod:`sae_unlearn.evaluation.lm_eval`.
"""
