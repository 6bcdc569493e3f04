"""Evaluation: does a model know a fact (greedy answers, accuracy, ROUGE-L), TOFU's truth ratio,
forget quality and model utility, and multiple-choice accuracy.

Room: measuring what a model knows and can still do. Imports only ``data``, ``models``, ``utils``.
"""

from sae_unlearn.evaluation.knowledge import (
    KnowledgeResult,
    answer_logprobs,
    answer_probability,
    evaluate_knowledge,
    greedy_answers,
    rouge_l_recall,
)
from sae_unlearn.evaluation.multiple_choice import MCQuestion, load_mc_questions, multiple_choice_accuracy
from sae_unlearn.evaluation.tofu_metrics import (
    UtilityResult,
    forget_quality,
    forget_truth_score,
    harmonic_mean,
    model_utility,
    retain_truth_score,
    truth_ratios,
)

__all__ = [
    "KnowledgeResult",
    "MCQuestion",
    "UtilityResult",
    "answer_logprobs",
    "answer_probability",
    "evaluate_knowledge",
    "forget_quality",
    "forget_truth_score",
    "greedy_answers",
    "harmonic_mean",
    "load_mc_questions",
    "model_utility",
    "multiple_choice_accuracy",
    "retain_truth_score",
    "rouge_l_recall",
    "truth_ratios",
]
