"""The ``recipe`` command: run, ``--check`` or ``--rehearse`` a recipe."""

from __future__ import annotations

import argparse
import json
import sys

from sae_unlearn.atomic import FolderBusyError
from sae_unlearn.recipes.rehearsal import RehearsalConfig, rehearse
from sae_unlearn.recipes.run import run_recipe
from sae_unlearn.recipes.spec import RecipeError, load_recipe, with_overrides

_CUTS = ("steps", "layers", "texts")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe file (the ready ones: recipes/*.toml)")
    parser.add_argument("--out", help="output folder, must not exist (default: the recipe's out)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check: the recipe, output folder, local data, and its hooks and parameter names on a tiny "
        "random model of its architecture (offline); writes nothing",
    )
    parser.add_argument(
        "--rehearse",
        action="store_true",
        help="run every stage at the real model's full shape with random weights, random SAEs in the real "
        "format and generated data, offline (sae_unlearn.recipes.rehearsal); report.json has each stage's "
        "seconds and peak memory",
    )
    docs = {
        "steps": "with --rehearse: cap the method's steps and [teach] (whole epochs) at N",
        "layers": "with --rehearse: keep the first N blocks (SAE hooks of later blocks are dropped)",
        "texts": "with --rehearse: N forget and N retain texts (and facts), N questions per set",
    }
    for name in _CUTS:
        parser.add_argument(f"--{name}", type=int, metavar="N", help=docs[name])
    parser.add_argument("--model", help="a local copy of the model (or another hub id) instead of the recipe's")
    parser.add_argument("--saes", help="a folder of SAEs instead of the recipe's registry ids")
    parser.add_argument("--device", help="auto, cpu or cuda (default: the recipe's)")
    parser.add_argument("--dtype", help="float32, bfloat16 or float16 (default: the recipe's [model] dtype)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)


def _rehearsal_config(args: argparse.Namespace) -> RehearsalConfig | None:
    cuts = {name: getattr(args, name) for name in _CUTS if getattr(args, name) is not None}
    if not args.rehearse:
        if cuts:
            raise RecipeError(f"--{next(iter(cuts))} cuts a rehearsal; add --rehearse (a real run is never cut).")
        return None
    if args.check:
        raise RecipeError(
            "--check and --rehearse: choose one (--check builds a tiny model, --rehearse the real shape)."
        )
    if args.model or args.saes:
        raise RecipeError("--rehearse builds its own random model and SAEs; leave out --model and --saes.")
    try:
        return RehearsalConfig(**cuts)
    except (TypeError, ValueError) as e:
        raise RecipeError(str(e)) from None


def run(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    """Run, ``--check`` or ``--rehearse`` a recipe from the command line; bad input fails before any work."""
    try:
        rehearsal = _rehearsal_config(args)
        recipe = with_overrides(load_recipe(args.recipe), args.model, args.saes, args.device, args.dtype)
        if not args.check:
            what = "rehearsal" if rehearsal else "recipe"
            print(f"{what} {recipe.name!r}: writing {recipe.out_dir(args.out)}", file=sys.stderr)
        if rehearsal is not None:
            result = rehearse(recipe, args.out, rehearsal, progress=args.progress)
        else:
            result = run_recipe(recipe, args.out, dry_run=args.check, progress=args.progress)
    except (RecipeError, FileNotFoundError, FileExistsError, ConnectionError, FolderBusyError) as e:
        if parser is not None:
            parser.error(str(e))
        print(f"error: {e}")
        return 2
    if args.check:
        print(json.dumps(result, indent=2))
        print(f"recipe {recipe.name!r} is ready to run ({result['checked_on']}).")
    else:
        keys = ("before", "after", "selection", "stages", "export")
        print(json.dumps({k: result[k] for k in keys}, indent=2))
    return 0
