"""Command line: ``python -m sae_unlearn {demo,verify,recipe,zoo} ...``.

- ``demo --out DIR``: the main job (see :mod:`sae_unlearn.demo`).
- ``verify MODEL_DIR [--oracle DIR] [--data NAME]``: is the knowledge removed, suppressed or
  not forgotten (see :mod:`sae_unlearn.verification`); writes ``verification.json`` and figures.
- ``recipe RECIPE.toml [--out DIR] [--check]``: a ready recipe for a published setting
  (``recipes/``; see :mod:`sae_unlearn.recipes`); ``--check`` validates it offline, writing nothing.
- ``zoo build [NAME ...]``: build and cache zoo models and their oracles; ``zoo list``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from sae_unlearn.atomic import FolderBusyError
from sae_unlearn.demo import DemoConfig, format_report, run_demo
from sae_unlearn.utils import field_docs


def _add_dataclass_args(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--flag`` per dataclass field; the field's docstring is taken from the class source."""
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        if str(f.type) == "list[str]":
            parser.add_argument(flag, nargs="+", default=f.default_factory(), help=docs.get(f.name))  # type: ignore[operator]
        elif f.type in (bool, "bool"):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=docs.get(f.name))
        else:
            typ = {"int": int, "float": float, "str": str}.get(str(f.type).removesuffix(" | None"), str)
            parser.add_argument(flag, type=typ, default=f.default, help=docs.get(f.name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sae_unlearn", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the main pipeline on the bundled secrets model")
    _add_dataclass_args(demo, DemoConfig)
    from sae_unlearn.verification import cli as verify_cli

    verify = sub.add_parser("verify", help="verify an unlearned model against its retain oracle (attacks, verdict)")
    verify_cli.add_arguments(verify)
    from sae_unlearn import recipes

    recipe = sub.add_parser("recipe", help="run (or --check) a ready recipe for a published setting: recipes/*.toml")
    recipes.add_arguments(recipe)
    zoo = sub.add_parser("zoo", help="build or list the bundled zoo models")
    zoo.add_argument("action", choices=["build", "list"])
    zoo.add_argument("names", nargs="*", help="zoo models to build (default: all)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress messages")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )

    if args.command == "demo":
        kwargs = {f.name: getattr(args, f.name) for f in dataclasses.fields(DemoConfig)}
        if args.k is not None:
            print("warning: --k is deprecated; use --n-latents", file=sys.stderr)
        try:
            config = DemoConfig(**kwargs)  # every option is checked here, before any work
        except (ValueError, TypeError) as e:
            parser.error(str(e))
        try:
            report = run_demo(config)
        except FolderBusyError as e:  # another demo writes --out: nothing was done
            demo.exit(2, f"{demo.prog}: error: {e}\n")
        print(format_report(report))
        return 0
    if args.command == "verify":
        verify_cli.run(args, verify)
        return 0
    if args.command == "recipe":
        return recipes.run(args, recipe)
    from sae_unlearn.models.zoo import ZOO, zoo_model_path

    if args.action == "list":
        for name, spec in ZOO.items():
            print(f"{name:12s} {spec.description}")
        return 0
    names = args.names or list(ZOO)
    unknown = [n for n in names if n not in ZOO]
    if unknown:
        parser.error(f"unknown zoo model(s) {unknown}; available: {sorted(ZOO)}")
    for name in names:
        for oracle in (False, True):
            print(zoo_model_path(name, oracle=oracle))
    return 0


if __name__ == "__main__":
    sys.exit(main())
