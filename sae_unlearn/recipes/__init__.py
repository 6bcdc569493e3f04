"""Recipes: ready configs for published settings, each run with one command.

``python -m sae_unlearn recipe recipes/NAME.toml [--out DIR] [--check | --rehearse [--steps/--layers/--texts N]]``

A recipe (TOML, under ``recipes/``) names the model (hub id or local folder, with its architecture
and depth), pretrained SAEs (a sae-lens registry release and ``{hook: sae_id}``, or a folder), the
forget and retain corpora (the toolkit's ``secrets`` corpus, or texts from a local file or a hub
dataset), multiple-choice evaluations (WMDP-/MMLU-shaped), the method and its settings, an optional
``[teach]`` fine-tune (for a model that has never seen the forget facts) and, under ``[expected]``,
what a run costs.

:func:`load_recipe` is strict: an unknown key names its close match, every value is type-checked,
each registry ``release``/``sae_id`` pair is checked offline against sae-lens's bundled registry
(close matches named), and each hook must agree with its SAE id's layer. :func:`run_recipe` checks
the output folder, the data files and the hub's reachability before any heavy work, then loads the
model and SAEs, resolves the recipe on the loaded model (:func:`check_recipe`), teaches, evaluates,
runs the SAE stage, unlearns, evaluates again and writes the output folder atomically
(``report.json``, the recipe, the exported model): on any failure nothing is written.
``--check`` (``dry_run=True``) resolves hooks and parameter names on a tiny random model of the
declared architecture and depth (names depend only on those), offline, and writes nothing.
``--rehearse`` (:mod:`~sae_unlearn.recipes.rehearsal`) runs the same stages at the real model's full
shape with random weights, random SAEs in the real format and generated data, offline. Every run
measures each stage (``report.json``'s ``stages``: seconds, peak RSS, peak GPU memory, tokens/s;
:mod:`~sae_unlearn.recipes.measure`).

Relative paths in a recipe are relative to the directory the command runs from; the recipe's own
``out`` may not climb out of it (``../x``: write it absolute, or pass ``--out``). The output folder
is never inside the model or SAE folder, and a run holds its writer lock (the one
:func:`~sae_unlearn.atomic.output_lock` takes) from before loading to the final rename, so a second
run into the same folder stops at once. Each registry SAE id must be the SAE of its hook's site
(``blocks.8.hook_resid_pre``'s SAE keyed by ``blocks.8.hook_resid_post`` fails), and a
reasoning-trace method (R²MU) is refused: recipes unlearn plain models.

Room: the recipe files, their checks, runs and rehearsals; a top floor (imports the stages and
``pipeline``, ``export``).
"""

from sae_unlearn.recipes.cli import add_arguments, run
from sae_unlearn.recipes.data import load_questions, load_texts
from sae_unlearn.recipes.rehearsal import RehearsalConfig, rehearse
from sae_unlearn.recipes.run import check_recipe, run_recipe, teach, twin_model
from sae_unlearn.recipes.spec import (
    DataSource,
    DataSpec,
    EvalSpec,
    Expected,
    MCSource,
    ModelSpec,
    Recipe,
    RecipeError,
    SAESpec,
    SelectionSpec,
    TextSource,
    load_recipe,
    with_overrides,
)

__all__ = [
    "DataSource",
    "DataSpec",
    "EvalSpec",
    "Expected",
    "MCSource",
    "ModelSpec",
    "Recipe",
    "RecipeError",
    "RehearsalConfig",
    "SAESpec",
    "SelectionSpec",
    "TextSource",
    "add_arguments",
    "check_recipe",
    "load_questions",
    "load_recipe",
    "load_texts",
    "rehearse",
    "run",
    "run_recipe",
    "teach",
    "twin_model",
    "with_overrides",
]
