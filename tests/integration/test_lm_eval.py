"""lm-eval (EleutherAI's harness) on exported / zoo models and local multiple-choice files.

The shipped task YAMLs must score exactly as the toolkit's own multiple-choice scorer does: the
same accuracy and the same pick on every question, for the letter scoring (``sae_unlearn_mc``)
and the choice-text scoring (``sae_unlearn_mc_text``, per-token normalised picks).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import yaml

from sae_unlearn.data.secrets import QUESTIONS
from sae_unlearn.evaluation import answer_logprobs, load_mc_questions, multiple_choice_accuracy
from sae_unlearn.evaluation.lm_eval import (
    TASK_FILE_KEYS,
    lm_eval_task_dir,
    run_lm_eval,
    run_lm_eval_tasks,
)
from sae_unlearn.evaluation.multiple_choice import LETTERS, MCQuestion
from sae_unlearn.export import export_model
from sae_unlearn.models.zoo import zoo_model_path

pytestmark = pytest.mark.integration
pytest.importorskip("lm_eval", reason="needs lm-eval: pip install -e .[eval]")


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def mc_file(secrets_corpus, tmp_path_factory) -> Path:
    """40 questions about the 4 forget people and 4 retain people, 3-5 choices (answer position varies)."""
    rows = []
    people = secrets_corpus.forget_people + secrets_corpus.retain_people[:4]
    for p in people:
        for j, a in enumerate(("city", "employer", "job", "pet", "birth_year")):
            rng = random.Random(f"{p.name}|{a}")
            n = 3 + (len(rows) + j) % 3
            wrong = rng.sample(sorted(set(secrets_corpus.attribute_values(a)) - {p.value(a)}), n - 1)
            answer = rng.randrange(n)
            choices = wrong[:answer] + [p.value(a)] + wrong[answer:]
            rows.append({"question": QUESTIONS[a].format(name=p.name), "choices": choices, "answer": answer})
    return _write_jsonl(tmp_path_factory.mktemp("mc") / "secrets_mc.jsonl", rows)


@pytest.fixture(scope="module")
def exported_oracle(secrets_oracle, tmp_path_factory) -> Path:
    """The zoo's retain oracle (it never saw the forget people) exported as a plain HF folder."""
    out = tmp_path_factory.mktemp("export") / "oracle_export"
    export_model(secrets_oracle, out, {"method": "none", "note": "lm-eval test"})
    return out


def _toolkit_picks(model, questions: list[MCQuestion], scoring: str) -> list[int]:
    """The toolkit scorer's pick per question, from the same building blocks multiple_choice_accuracy uses."""
    prompts, answers = [], []
    for q in questions:
        for i, c in enumerate(q.choices):
            prompts.append(q.letter_prompt() if scoring == "letter" else q.question.strip())
            answers.append(f" {LETTERS[i]}" if scoring == "letter" else " " + c.strip())
    lps = answer_logprobs(model, prompts, answers)
    picks, pos = [], 0
    for q in questions:
        scores = lps[pos : pos + len(q.choices)]
        pos += len(q.choices)
        picks.append(max(range(len(scores)), key=scores.__getitem__))
    return picks


@pytest.mark.parametrize("which", ["export", "zoo"])
@pytest.mark.parametrize(("task", "scoring"), [("sae_unlearn_mc", "letter"), ("sae_unlearn_mc_text", "choice_text")])
def test_lm_eval_matches_toolkit_scorer(which, task, scoring, mc_file, exported_oracle, secrets_oracle, secrets_model):
    model, model_dir = (secrets_oracle, exported_oracle) if which == "export" else (secrets_model, None)
    model_dir = model_dir or zoo_model_path("secrets", progress=False)
    questions = load_mc_questions(mc_file)

    result = run_lm_eval(model_dir, mc_file, task=task, batch_size=16)
    toolkit_acc = multiple_choice_accuracy(model, questions, scoring=scoring)
    toolkit_picks = _toolkit_picks(model, questions, scoring)
    # per question, each scored alone by the public scorer: right or wrong
    toolkit_correct = [multiple_choice_accuracy(model, [q], scoring=scoring) == 1.0 for q in questions]

    assert result.answers == [q.answer for q in questions]
    assert result.prompts == [q.letter_prompt() if scoring == "letter" else q.question.strip() for q in questions]
    assert result.token_norm_picks == toolkit_picks
    assert [p == q.answer for p, q in zip(result.token_norm_picks, questions)] == toolkit_correct
    assert result.token_norm_accuracy == pytest.approx(toolkit_acc, abs=1e-12)
    if scoring == "letter":  # every letter is one token: lm-eval's own acc (summed log-prob) is the same pick
        assert all(n == [1] * len(n) for n in result.n_tokens)
        assert result.picks == toolkit_picks
        assert result.accuracy == pytest.approx(toolkit_acc, abs=1e-12)
    print(
        f"{which} {task}: lm-eval acc {result.accuracy:.4f} (metrics {result.metrics}), per-token "
        f"{result.token_norm_accuracy:.4f}; toolkit {scoring} {toolkit_acc:.4f}"
    )


def test_benchmark_shaped_tasks_use_lm_evals_wmdp_and_mmlu_prompts(mc_file, tmp_path):
    q = load_mc_questions(mc_file)[0]
    row = {"question": q.question, "choices": ["Oslo", "Lisbon", "Turin", "Cork"], "answer": 1}
    four = _write_jsonl(tmp_path / "four.jsonl", [row, {**row, "answer": 2}])
    mmlu = _write_jsonl(tmp_path / "mmlu.jsonl", [{**row, "subject": "high_school_biology"}, row])
    out = run_lm_eval_tasks(
        zoo_model_path("secrets", progress=False),
        {"local_mmlu": mmlu, "local_wmdp": {f"local_wmdp_{k}": four for k in ("bio", "chem", "cyber")}},
    )
    body = f"{q.question.strip()}\nA. Oslo\nB. Lisbon\nC. Turin\nD. Cork\nAnswer:"
    assert out["local_mmlu"].prompts == [
        "The following are multiple choice questions (with answers) about high school biology.\n\n" + body,
        body,
    ]
    assert out["local_wmdp_cyber"].prompts[0] == (
        "The following are multiple choice questions (with answers) about cybersecurity.\n\n" + body
    )
    assert set(out) == {"local_mmlu", "local_wmdp_bio", "local_wmdp_chem", "local_wmdp_cyber"}
    assert all(len(r.picks) == 2 and r.answers == [1, 2] for k, r in out.items() if k.startswith("local_wmdp"))


def test_shipped_yamls_are_the_documented_tasks():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(lm_eval_task_dir()), include_defaults=False)
    assert set(TASK_FILE_KEYS) | {"local_wmdp"} <= set(manager.all_tasks)
    for task, key in TASK_FILE_KEYS.items():
        cfg = yaml.load((lm_eval_task_dir() / f"{task}.yaml").read_text(), Loader=yaml.BaseLoader)
        assert cfg["dataset_kwargs"]["file_key"] == key


def test_bad_inputs_fail_early_with_a_clear_message(mc_file, tmp_path, monkeypatch):
    zoo = zoo_model_path("secrets", progress=False)
    with pytest.raises(FileNotFoundError, match="multiple-choice file .* not found"):
        run_lm_eval(zoo, tmp_path / "missing.jsonl")
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"question": "Q?", "choices": ["a", "b"], "answer": 2}])
    with pytest.raises(ValueError, match="answer index 2 is out of range"):
        run_lm_eval(zoo, bad)
    with pytest.raises(ValueError, match="exactly 4"):
        run_lm_eval(zoo, mc_file, task="local_wmdp_cyber")  # some rows have 3 or 5 choices
    with pytest.raises(ValueError, match="unknown task 'wmdp_cyber'"):
        run_lm_eval(zoo, mc_file, task="wmdp_cyber")
    (tmp_path / "not_a_model").mkdir()
    (tmp_path / "not_a_model" / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="not a Hugging Face model folder.*notes.txt"):
        run_lm_eval(tmp_path / "not_a_model", mc_file)
    with pytest.raises(FileNotFoundError, match="model folder .* not found"):
        run_lm_eval(tmp_path / "nowhere", mc_file)
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # as if lm-eval were not installed
    with pytest.raises(ImportError, match=r"pip install -e \.\[eval\]"):
        run_lm_eval(zoo, mc_file)
