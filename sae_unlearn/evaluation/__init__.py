"""Evaluation: does a model know a fact (greedy answers, exact accuracy, ROUGE-L recall)."""

from sae_unlearn.evaluation.knowledge import (
    KnowledgeResult,
    answer_probability,
    evaluate_knowledge,
    greedy_answers,
    rouge_l_recall,
)

__all__ = ["KnowledgeResult", "answer_probability", "evaluate_knowledge", "greedy_answers", "rouge_l_recall"]
