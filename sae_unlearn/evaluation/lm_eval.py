"""Evaluate an exported model with EleutherAI's lm-evaluation-harness on local question files.

lm-eval (``pip install -e .[eval]``) is the tool behind the published WMDP, MMLU, RMU and SSPU
numbers. This module ships task YAMLs (the folder :func:`lm_eval_task_dir`) that read local
multiple-choice files, so a model written by :func:`sae_unlearn.export.export_model` (or any HF
folder) is scored offline, in the harness's own format:

- ``sae_unlearn_mc`` (file key ``mc_file``): the letter prompt with 2-10 choices; scores as
  ``multiple_choice_accuracy(..., scoring="letter")``.
- ``sae_unlearn_mc_text`` (``mc_file``): the choice texts after the question, as
  ``scoring="choice_text"`` (see :attr:`LmEvalResult.token_norm_accuracy`).
- ``local_wmdp_bio`` / ``local_wmdp_chem`` / ``local_wmdp_cyber`` (``wmdp_bio_file``, ...):
  lm-eval's ``wmdp_*`` tasks (4 choices and WMDP's description line); the group ``local_wmdp``
  runs all three.
- ``local_mmlu`` (``mmlu_file``): lm-eval's zero-shot ``mmlu`` format (4 choices, the per-subject
  description line when the rows carry MMLU's ``subject``).

A question file is what :func:`~sae_unlearn.evaluation.multiple_choice.load_mc_questions` reads
(JSON list or JSON Lines of ``{"question", "choices", "answer": int}``). The file reaches the task
through lm-eval's metadata (the documented way to parametrise a ``custom_dataset`` task), e.g.::

    lm_eval --model hf --model_args pretrained=/path/to/export --device cpu \\
        --include_path "$(python -m sae_unlearn.evaluation.lm_eval)" \\
        --tasks sae_unlearn_mc --metadata '{"mc_file": "/abs/path/questions.jsonl"}'

or in Python :func:`run_lm_eval`. Nothing here imports lm-eval until it is called.

Scoring, compared with the toolkit (both tokenize with the tokenizer's defaults, BOS included where
it adds one, and take the tokens of ``prompt + continuation`` after the prompt's as the continuation):

- Letter tasks: identical prompts and continuations (``" A"``, ``" B"``, …); lm-eval's ``acc``
  takes the highest *summed* log-probability, the toolkit the highest *mean per token*; they agree
  whenever every letter is the same number of tokens (one, in every common tokenizer).
- ``sae_unlearn_mc_text``: identical prompts and continuations; lm-eval's ``acc`` is unnormalised,
  ``acc_norm`` divides by the choice's length in characters and ``acc_bytes`` by its UTF-8 bytes;
  the toolkit divides by the number of tokens. :func:`run_lm_eval` recomputes that per-token pick
  from the logged log-likelihoods (``token_norm_picks``).
- ``local_wmdp_*`` / ``local_mmlu`` add the benchmark's description line before the question, so
  they match the published numbers' format, not the toolkit's description-less letter prompt.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sae_unlearn.evaluation.multiple_choice import load_mc_questions

#: Task name -> the metadata key naming its question file.
TASK_FILE_KEYS: dict[str, str] = {
    "sae_unlearn_mc": "mc_file",
    "sae_unlearn_mc_text": "mc_file",
    "local_wmdp_bio": "wmdp_bio_file",
    "local_wmdp_chem": "wmdp_chem_file",
    "local_wmdp_cyber": "wmdp_cyber_file",
    "local_mmlu": "mmlu_file",
}
#: Groups of the tasks above.
TASK_GROUPS: dict[str, tuple[str, ...]] = {"local_wmdp": ("local_wmdp_bio", "local_wmdp_chem", "local_wmdp_cyber")}
_EVAL_HINT = "install lm-eval with `pip install -e .[eval]` (or `pip install 'lm-eval>=0.4.5'`)."


def lm_eval_task_dir() -> Path:
    """The folder of task YAMLs to give lm-eval as ``--include_path`` / ``TaskManager(include_path=...)``."""
    return Path(__file__).resolve().parent / "lm_eval_tasks"


def local_mc_rows(path: str | Path, n_choices: int | None = None) -> list[dict[str, Any]]:
    """Rows ``{"question", "choices", "answer", "subject"}`` of a question file, validated as the toolkit does.

    ``subject`` is the row's own (MMLU rows have one) or ``""``. ``n_choices`` demands that many
    choices in every row (the WMDP/MMLU prompts list exactly four).
    """
    questions = load_mc_questions(path)  # FileNotFoundError / ValueError with the row at fault
    text = Path(path).read_text()
    raw = json.loads(text) if text.lstrip().startswith("[") else [json.loads(l) for l in text.splitlines() if l.strip()]
    rows = []
    for i, (q, r) in enumerate(zip(questions, raw, strict=True)):
        if n_choices is not None and len(q.choices) != n_choices:
            raise ValueError(
                f"{path}: row {i} has {len(q.choices)} choices; this task's prompt lists exactly {n_choices} "
                "(use the task sae_unlearn_mc for other counts)."
            )
        subject = r.get("subject") if isinstance(r, dict) else None
        rows.append(
            {
                "question": q.question,
                "choices": list(q.choices),
                "answer": q.answer,
                "subject": subject if isinstance(subject, str) else "",
            }
        )
    return rows


def local_mc_dataset(file_key: str, metadata: Mapping[str, Any], n_choices: int | None = None) -> Any:
    """A ``datasets.DatasetDict`` with one ``test`` split from the file ``metadata[file_key]``
    (what the task YAMLs' ``custom_dataset`` returns)."""
    import datasets

    path = metadata.get(file_key)
    if not path:
        raise ValueError(
            f"no question file for this task: pass its path as metadata, on the command line "
            f'--metadata \'{{"{file_key}": "/abs/path/questions.jsonl"}}\', in Python '
            f"run_lm_eval(...) or TaskManager(metadata={{{file_key!r}: path}})."
        )
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(local_mc_rows(path, n_choices))})


@dataclass(frozen=True)
class LmEvalResult:
    """One task's lm-eval scores and, with ``log_samples``, its per-question picks."""

    task: str
    accuracy: float
    """lm-eval's ``acc``: the choice with the highest summed log-probability."""
    stderr: float | None
    """lm-eval's ``acc_stderr`` (``None`` when it reports none)."""
    metrics: dict[str, float]
    """Every metric lm-eval reported for the task (``acc``, ``acc_norm``, …, ``*_stderr``)."""
    picks: list[int] = field(default_factory=list)
    """Per question (file order): index of the picked choice under ``acc``."""
    answers: list[int] = field(default_factory=list)
    """Per question: the correct choice's index."""
    loglikelihoods: list[list[float]] = field(default_factory=list)
    """Per question, per choice: lm-eval's summed log-probability of the continuation."""
    n_tokens: list[list[int]] = field(default_factory=list)
    """Per question, per choice: how many tokens the continuation has (lm-eval's own split)."""
    prompts: list[str] = field(default_factory=list)
    """Per question: the exact context lm-eval scored the choices after."""

    @property
    def token_norm_picks(self) -> list[int]:
        """Per question: the pick by mean log-probability per token (the toolkit's normalisation)."""
        return [
            max(range(len(lls)), key=lambda i: lls[i] / max(1, ns[i]))
            for lls, ns in zip(self.loglikelihoods, self.n_tokens, strict=True)
        ]

    @property
    def token_norm_accuracy(self) -> float:
        """Accuracy of :attr:`token_norm_picks` (equals ``multiple_choice_accuracy``'s
        ``"choice_text"`` on ``sae_unlearn_mc_text`` and its ``"letter"`` on ``sae_unlearn_mc``)."""
        if not self.answers:
            raise ValueError("no per-question results; run with log_samples=True.")
        picks = self.token_norm_picks
        return sum(p == a for p, a in zip(picks, self.answers, strict=True)) / len(picks)


def _check_model_dir(model_dir: str | Path) -> Path:
    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"model folder {path} not found; give a Hugging Face model folder, e.g. one written by "
            "sae_unlearn.export.export_model or sae_unlearn.zoo_model_path('secrets')."
        )
    if not (path / "config.json").is_file():
        listing = sorted(p.name for p in path.iterdir())[:6]
        raise ValueError(
            f"{path} is not a Hugging Face model folder (no config.json; it holds {listing}); give a folder "
            "written by save_pretrained / sae_unlearn.export.export_model."
        )
    return path.resolve()


def _import_lm_eval() -> tuple[Any, Any, Any]:
    """``(lm_eval, HFLM, TaskManager)``, imported on first use (lm-eval ships no type information)."""
    try:
        lm_eval = importlib.import_module("lm_eval")
        hflm = importlib.import_module("lm_eval.models.huggingface").HFLM
        task_manager = importlib.import_module("lm_eval.tasks").TaskManager
    except ImportError as e:
        raise ImportError(f"lm-eval is not installed ({e}); {_EVAL_HINT}") from e
    return lm_eval, hflm, task_manager


def run_lm_eval_tasks(
    model_dir: str | Path,
    data_files: Mapping[str, str | Path],
    batch_size: int | str = 16,
    device: str = "cpu",
    limit: int | float | None = None,
    log_samples: bool = True,
    model_args: Mapping[str, Any] | None = None,
) -> dict[str, LmEvalResult]:
    """Run several of this package's lm-eval tasks (``{task or group: question file}``) on one model.

    Args:
        model_dir: a Hugging Face model folder (an export, a zoo model); loaded by lm-eval's ``HFLM``
            from disk, never from the hub.
        data_files: task name (see :data:`TASK_FILE_KEYS`) or group (``local_wmdp``, whose value is a
            mapping ``{"local_wmdp_bio": file, ...}``) to its question file.
        batch_size: lm-eval's batch size (an int, or ``"auto"``).
        device: torch device for the model.
        limit: score only the first ``limit`` questions (a fraction when below 1) of each task.
        log_samples: keep per-question picks (:attr:`LmEvalResult.picks`, ...).
        model_args: extra ``HFLM`` arguments (``dtype``, ``max_length``, ``add_bos_token``, ...).

    Returns:
        ``{task: LmEvalResult}`` for every task run.
    """
    files: dict[str, Path] = {}
    for task, value in data_files.items():
        if task in TASK_GROUPS:
            if not isinstance(value, Mapping):
                raise TypeError(f"{task} is a group: give {{task: file}} for {list(TASK_GROUPS[task])}, not one file.")
            if missing := sorted(set(TASK_GROUPS[task]) - set(value)):
                raise ValueError(f"group {task} needs a file for each of its tasks; missing {missing}.")
            files.update({t: Path(value[t]) for t in TASK_GROUPS[task]})
        elif task in TASK_FILE_KEYS:
            if isinstance(value, Mapping):
                raise TypeError(f"{task} takes one question file, not a mapping.")
            files[task] = Path(value)
        else:
            raise ValueError(f"unknown task {task!r}; choose from {sorted(TASK_FILE_KEYS) + sorted(TASK_GROUPS)}.")
    if not files:
        raise ValueError("no tasks given; pass {task: question file}.")
    metadata: dict[str, str] = {}
    for task, path in files.items():
        local_mc_rows(path, 4 if task.startswith("local_") else None)  # fail here, before loading the model
        key = TASK_FILE_KEYS[task]
        if metadata.get(key, str(path.resolve())) != str(path.resolve()):
            raise ValueError(f"tasks sharing the file key {key!r} were given different files; run them separately.")
        metadata[key] = str(path.resolve())
    model_path = _check_model_dir(model_dir)
    lm_eval, HFLM, TaskManager = _import_lm_eval()
    lm = HFLM(pretrained=str(model_path), device=device, batch_size=batch_size, **dict(model_args or {}))
    manager = TaskManager(include_path=str(lm_eval_task_dir()), include_defaults=False, metadata=metadata)
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=list(files),
        task_manager=manager,
        limit=limit,
        log_samples=log_samples,
        # leave the caller's random / numpy / torch generators alone (nothing here samples)
        random_seed=None,
        numpy_random_seed=None,
        torch_random_seed=None,
    )
    if out is None:  # only non-zero ranks of a distributed run get None
        raise RuntimeError("lm-eval returned no results (a non-zero rank of a distributed run?).")
    results: dict[str, LmEvalResult] = {}
    for task in files:
        raw = out["results"][task]
        metrics = {k.split(",")[0]: float(v) for k, v in raw.items() if "," in k and isinstance(v, (int, float))}
        stderr = metrics.get("acc_stderr")
        picks: list[int] = []
        answers: list[int] = []
        lls: list[list[float]] = []
        n_tokens: list[list[int]] = []
        prompts: list[str] = []
        for s in sorted(out.get("samples", {}).get(task, []), key=lambda s: s["doc_id"]):
            args: Sequence[tuple[str, str]] = s["arguments"]
            ll = [float(r[0]) for r in s["filtered_resps"]]
            lls.append(ll)
            picks.append(max(range(len(ll)), key=ll.__getitem__))
            answers.append(int(s["target"]))
            n_tokens.append([len(lm._encode_pair(ctx, cont)[1]) for ctx, cont in args])
            prompts.append(args[0][0])
        results[task] = LmEvalResult(
            task=task,
            accuracy=metrics["acc"],
            stderr=None if stderr is None or stderr != stderr else stderr,  # NaN (one question) -> None
            metrics=metrics,
            picks=picks,
            answers=answers,
            loglikelihoods=lls,
            n_tokens=n_tokens,
            prompts=prompts,
        )
    return results


def run_lm_eval(
    model_dir: str | Path,
    data_file: str | Path,
    task: str = "sae_unlearn_mc",
    batch_size: int | str = 16,
    device: str = "cpu",
    limit: int | float | None = None,
    log_samples: bool = True,
    model_args: Mapping[str, Any] | None = None,
) -> LmEvalResult:
    """lm-eval's accuracy of the model in ``model_dir`` on one local question file.

    ``task`` is one of :data:`TASK_FILE_KEYS` (default ``sae_unlearn_mc``: the toolkit's letter
    scoring). The file is validated with :func:`load_mc_questions` before the model loads. See
    :func:`run_lm_eval_tasks` for the other arguments.

    Example::

        from sae_unlearn.evaluation.lm_eval import run_lm_eval
        r = run_lm_eval("runs/sspu_model", "wmdp-cyber.jsonl", task="local_wmdp_cyber")
        print(r.accuracy, r.stderr)
    """
    if task not in TASK_FILE_KEYS:
        raise ValueError(f"unknown task {task!r}; choose from {sorted(TASK_FILE_KEYS)} (groups: run_lm_eval_tasks).")
    return run_lm_eval_tasks(model_dir, {task: data_file}, batch_size, device, limit, log_samples, model_args)[task]


if __name__ == "__main__":  # `python -m sae_unlearn.evaluation.lm_eval`: the folder for lm_eval --include_path
    print(lm_eval_task_dir())
