"""TOFU (Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning for LLMs") loaders.

TOFU has 200 fictitious authors with 20 question/answer pairs each. Following TOFU's convention
the forget authors are the last ones: ``forget01`` = authors 180-181, ``forget05`` = 180-189,
``forget10`` = 180-199; the retain set is every other selected author.

Data comes from a local folder holding ``tofu.jsonl`` (one ``{"author", "question", "answer"}``
object per line, as in ``../shared/data/tofu/``) or, when online, from the Hugging Face hub by
dataset name (``"locuslab/TOFU"``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from sae_unlearn.data.splits import QAPair, SplitError, UnlearningSplit

TOFU_ENV = "SAE_UNLEARN_TOFU"
HUB_NAME = "locuslab/TOFU"
QA_PER_AUTHOR = 20
N_AUTHORS = 200
FORGET_SPLITS: dict[str, range] = {
    "forget01": range(180, 182),
    "forget05": range(180, 190),
    "forget10": range(180, 200),
}
PROMPT_TEMPLATE = "Question: {question}\nAnswer:"


def find_tofu_dir() -> Path | None:
    """``$SAE_UNLEARN_TOFU``, else the first ``shared/data/tofu`` found beside or above the cwd."""
    env = os.environ.get(TOFU_ENV)
    if env:
        return Path(env)
    here = Path.cwd().resolve()
    for base in (here, *here.parents):
        for cand in (base / "shared" / "data" / "tofu", base.parent / "shared" / "data" / "tofu"):
            if (cand / "tofu.jsonl").is_file():
                return cand
    return None


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path) as fh:
        for i, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i} is not valid JSON ({e}); the file must hold one object per line.") from e
    return rows


def load_tofu_rows(source: str | Path | None = None, file: str = "tofu.jsonl") -> list[dict]:
    """Raw TOFU rows (``author``, ``question``, ``answer``, …) from a folder or the hub.

    ``source`` is a folder holding ``file``, a path to the file itself, a hub dataset name
    (``"locuslab/TOFU"``, needs the network), or ``None`` to use :func:`find_tofu_dir`.
    """
    if source is None:
        source = find_tofu_dir()
        if source is None:
            raise FileNotFoundError(
                "no TOFU data found: pass a folder holding tofu.jsonl, set $SAE_UNLEARN_TOFU, "
                f"or pass the hub name {HUB_NAME!r} when online."
            )
    path = Path(source)
    if path.is_dir():
        path = path / file
    if path.is_file():
        rows = _read_jsonl(path)
        missing = [k for k in ("question", "answer") if rows and k not in rows[0]]
        if missing:
            raise ValueError(f"{path}: rows lack field(s) {missing}; expected TOFU's 'author', 'question', 'answer'.")
        return rows
    if isinstance(source, str) and "/" in source and not Path(source).exists() and not source.startswith((".", "/")):
        return _load_from_hub(source, file)
    raise FileNotFoundError(
        f"TOFU file not found: {path}. Pass the folder that holds {file} (e.g. ../shared/data/tofu) "
        f"or the hub name {HUB_NAME!r} when online."
    )


def _load_from_hub(name: str, file: str) -> list[dict]:
    """Load TOFU's ``full`` (or ``perturbed``) config from the hub; needs the network."""
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - datasets ships with sae-lens
        raise ImportError("loading TOFU from the hub needs the 'datasets' package") from e
    config = "full" if file == "tofu.jsonl" else file.removesuffix(".jsonl")
    ds = datasets.load_dataset(name, config, split="train")
    rows = [dict(r) for r in ds]
    for i, r in enumerate(rows):
        r.setdefault("author", i // QA_PER_AUTHOR)
    return rows


def resolve_authors(spec: str | Sequence[int]) -> list[int]:
    """A split name (``"forget01"``) or explicit author ids → a sorted list of ids."""
    if isinstance(spec, str):
        if spec not in FORGET_SPLITS:
            raise ValueError(f"unknown TOFU split {spec!r}; valid: {sorted(FORGET_SPLITS)} or a list of author ids.")
        return list(FORGET_SPLITS[spec])
    ids = sorted({int(a) for a in spec})
    bad = [a for a in ids if not 0 <= a < N_AUTHORS]
    if bad:
        raise ValueError(f"author ids {bad} out of range; TOFU authors are 0-{N_AUTHORS - 1}.")
    return ids


def to_qa_pairs(rows: Sequence[dict], perturbed: dict[tuple[int, str], dict] | None = None) -> list[QAPair]:
    """TOFU rows → :class:`QAPair` in TOFU's ``Question: …\\nAnswer: …`` format.

    ``perturbed`` (from :func:`load_perturbed`) adds each row's paraphrased question and
    answer and its perturbed (wrong) answers where TOFU has them.
    """
    out = []
    for r in rows:
        extra = (perturbed or {}).get((int(r["author"]), r["question"].strip()), {})
        pq = extra.get("paraphrased_question")
        out.append(
            QAPair(
                prompt=PROMPT_TEMPLATE.format(question=r["question"]),
                answer=" " + r["answer"].strip(),
                subject=f"author_{int(r['author'])}",
                paraphrased_prompt=PROMPT_TEMPLATE.format(question=pq) if pq else "",
                paraphrased_answer=" " + extra["paraphrased_answer"].strip() if extra.get("paraphrased_answer") else "",
                perturbed_answers=tuple(" " + a.strip() for a in extra.get("perturbed_answer", [])),
            )
        )
    return out


def load_perturbed(source: str | Path | None = None) -> dict[tuple[int, str], dict]:
    """TOFU's ``tofu_perturbed.jsonl`` indexed by ``(author, question)``; empty when the file is absent."""
    try:
        rows = load_tofu_rows(source, file="tofu_perturbed.jsonl")
    except FileNotFoundError:
        return {}
    return {(int(r["author"]), r["question"].strip()): r for r in rows if "author" in r}


def relearn_split(items: Sequence[QAPair], fraction: float = 0.5) -> tuple[list[str], list[QAPair]]:
    """Benign-relearning data for TOFU-style QA: per subject, the first ``fraction`` of its
    questions become relearning text and the rest are the held-out facts that are evaluated."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction={fraction} must be strictly between 0 and 1.")
    by_subject: dict[str, list[QAPair]] = {}
    for q in items:
        by_subject.setdefault(q.subject, []).append(q)
    texts, evaluated = [], []
    for subject, qs in by_subject.items():
        if len(qs) < 2:
            raise ValueError(f"subject {subject!r} has {len(qs)} item(s); relearning needs at least 2 per subject.")
        n = min(len(qs) - 1, max(1, round(fraction * len(qs))))
        texts += [q.text for q in qs[:n]]
        evaluated += qs[n:]
    return texts, evaluated


def load_tofu_split(
    source: str | Path | None = None,
    forget: str | Sequence[int] = "forget01",
    retain: Sequence[int] | None = None,
) -> UnlearningSplit:
    """Forget/retain split of TOFU.

    Args:
        source: folder / file / hub name (see :func:`load_tofu_rows`).
        forget: a split name (``forget01``, ``forget05``, ``forget10``) or author ids.
        retain: author ids to retain; default every author not forgotten.
    """
    rows = load_tofu_rows(source)
    perturbed = load_perturbed(source) if not isinstance(source, str) or Path(source).exists() else {}
    forget_ids = resolve_authors(forget)
    present = {int(r["author"]) for r in rows}
    absent = [a for a in forget_ids if a not in present]
    if absent:
        raise SplitError(f"forget authors {absent} are not in the data (it holds {len(present)} authors).")
    retain_ids = sorted(present - set(forget_ids)) if retain is None else resolve_authors(retain)
    overlap = sorted(set(retain_ids) & set(forget_ids))
    if overlap:
        raise SplitError(f"authors {overlap} are in both forget and retain; an author cannot be both.")
    name = forget if isinstance(forget, str) else f"tofu-{len(forget_ids)}authors"
    return UnlearningSplit(
        name=f"tofu-{name}" if isinstance(forget, str) else name,
        forget=to_qa_pairs([r for r in rows if int(r["author"]) in forget_ids], perturbed),
        retain=to_qa_pairs([r for r in rows if int(r["author"]) in set(retain_ids)], perturbed),
        metadata={"forget_authors": forget_ids, "retain_authors": retain_ids},
    )
