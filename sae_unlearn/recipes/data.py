"""A recipe's data: corpora and multiple-choice questions from local files or hub datasets, cut and
sampled by seed; what needs the hub; the output folder's check.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from sae_unlearn.data.corpora import corpus_data
from sae_unlearn.evaluation.multiple_choice import MCQuestion, load_mc_questions
from sae_unlearn.recipes.spec import MCSource, Recipe, RecipeError, TextSource


# ------------------------------------------------------------------------------------- data
def _split_text(text: str, max_chars: int) -> list[str]:
    """``text`` in pieces of at most ``max_chars`` characters, cut at whitespace where possible."""
    text = text.strip()
    if not max_chars or len(text) <= max_chars:
        return [text]
    pieces, start = [], 0
    while start < len(text):
        end = min(len(text), start + max_chars)
        if end < len(text):
            cut = text.rfind(" ", start, end)
            end = cut if cut > start else end
        pieces.append(text[start:end].strip())
        start = end
    return pieces


def _sample(items: list, n: int, seed: int) -> list:
    """``n`` items drawn with ``seed``, in their original order (all when ``n`` is 0 or more than there are)."""
    if not n or n >= len(items):
        return items
    keep = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in keep]


def load_texts(source: TextSource, seed: int = 0) -> list[str]:
    """The texts of a source, split, filtered and sampled as it says."""
    path = source.local()
    if path is None:
        rows: list = source.hub_rows()
    elif path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    elif path.suffix == ".json":
        rows = json.loads(path.read_text())
    else:
        rows = path.read_text().splitlines()
    texts = []
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            if source.field not in row:
                raise RecipeError(
                    f"{path or source.describe()}: row {i} has no {source.field!r} (keys {sorted(row)[:8]})."
                )
            row = row[source.field]
        if not isinstance(row, str):
            raise RecipeError(f"{path or source.describe()}: row {i} is {type(row).__name__}, not a text.")
        texts += [t for t in _split_text(row, source.max_chars) if len(t) >= max(1, source.min_chars)]
    if not texts:
        raise RecipeError(f"{path or source.describe()} gave no texts of at least {source.min_chars} characters.")
    return _sample(texts, source.max_texts, seed)


def load_questions(source: MCSource, seed: int = 0) -> list[MCQuestion]:
    """The questions of a source, sampled as it says."""
    path = source.local()
    if path is not None:
        questions = load_mc_questions(path)
    else:
        rows = source.hub_rows()
        questions = [MCQuestion(str(r["question"]), tuple(map(str, r["choices"])), int(r["answer"])) for r in rows]
    return _sample(questions, source.max_items, seed)


def _needs_hub(recipe: Recipe) -> list[str]:
    """What must come from the hub (nothing local stands in for it)."""
    needs = []
    if recipe.data.corpus:  # a corpus that reads data of its own (tofu-mini: the TOFU files) must find it
        try:
            corpus_data(recipe.data.corpus)
        except (OSError, ValueError) as e:
            raise RecipeError(f"[data] corpus = {recipe.data.corpus!r} cannot be read here: {e}") from None
    if not Path(recipe.model.source).expanduser().exists():
        needs.append(f"model {recipe.model.source} (or pass --model with a local copy)")
    if recipe.saes.release:
        needs.append(f"SAEs of {recipe.saes.release} (or pass --saes with a local folder)")
    elif not Path(recipe.saes.folder).expanduser().is_dir():
        raise RecipeError(f"SAE folder {recipe.saes.folder} not found; pass a folder of SAEs or registry ids.")
    sources = [recipe.data.forget, recipe.data.retain, recipe.eval.forget_mc, recipe.eval.control_mc]
    for s in sources:
        if s is not None and s.local() is None:
            if not s.hub:
                raise RecipeError(f"{s.path} not found and no hub dataset is named; create the file.")
            needs.append(f"dataset {s.describe()} (or save it as {s.path or 'a local file named by path'})")
    return needs


def _check_out_dir(out: Path, recipe: Recipe | None = None) -> None:
    """The output folder must be new, creatable, and outside the recipe's local inputs (the model
    folder and the SAE folder are read, never written)."""
    if recipe is not None:
        inputs = {"the model folder (model.source / --model)": recipe.model.source}
        if recipe.saes.folder:
            inputs["the SAE folder (saes.folder / --saes)"] = recipe.saes.folder
        where = out.expanduser().resolve()
        for what, source in inputs.items():
            folder = Path(source).expanduser()
            if folder.exists() and where.is_relative_to(folder.resolve()):
                raise RecipeError(
                    f"output folder {out} is inside {what} {folder.resolve()}; a recipe never writes into its "
                    "inputs. Choose an --out outside it, e.g. "
                    f"{folder.resolve().parent / (recipe.name + '-run')}."
                )
    if out.is_file():
        raise RecipeError(f"--out {out} is a file, not a folder; give a new folder (a recipe never overwrites).")
    if out.exists():
        raise RecipeError(f"output folder {out} already exists; choose another --out (a recipe never overwrites).")
    parent = next(p for p in out.absolute().parents if p.exists())
    if not os.access(parent, os.W_OK):
        raise RecipeError(f"cannot create {out}: {parent} is not writable; choose another --out.")
