"""``python -m sae_unlearn verify MODEL_DIR``: verify a saved model against its retain oracle."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from sae_unlearn.atomic import FolderBusyError, output_lock, read_json
from sae_unlearn.evaluation.multiple_choice import load_mc_questions
from sae_unlearn.models.loading import _check_weights
from sae_unlearn.models.zoo import ZOO, zoo_model_path
from sae_unlearn.utils import field_docs
from sae_unlearn.verification.data import verification_data
from sae_unlearn.verification.report import VerificationReport, VerifyConfig, verify


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", help="Hugging Face folder of the model to verify (e.g. an exported model)")
    parser.add_argument("--oracle", help="retain oracle folder (default: the zoo oracle of --data)")
    parser.add_argument(
        "--data",
        help="facts to verify on: secrets, tofu-mini or tofu:forget01|05|10 "
        "(default: read from the model's unlearning_card.json or zoo_card.json)",
    )
    parser.add_argument("--tofu", help="TOFU folder (default: $SAE_UNLEARN_TOFU or ../shared/data/tofu)")
    parser.add_argument("--mc", help="multiple-choice questions (JSON/JSONL: question, choices, answer index)")
    parser.add_argument(
        "--out", default=None, help="folder for verification.json/.md and figures (default MODEL_DIR-verification)"
    )
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda")
    parser.add_argument(
        "--original",
        help="the model before unlearning (direction ablation's reference; default: the zoo model of --data, "
        "else the attack uses forget minus retain questions)",
    )
    parser.add_argument(
        "--relearn-steps", type=int, nargs="+", default=None, help="relearning step counts (default 0 10 50)"
    )
    parser.add_argument(
        "--relearn-lrs", type=float, nargs="+", default=None, help="relearning learning rates (default 1e-4 1e-3 1e-2)"
    )
    parser.add_argument("--skip", nargs="+", default=[], help="attacks not to run (names as in the report's config)")
    parser.add_argument("--margin", type=float, default=VerifyConfig.margin, help=_doc("margin"))
    parser.add_argument(
        "--forget-quality-threshold",
        type=float,
        default=VerifyConfig.forget_quality_threshold,
        help=_doc("forget_quality_threshold"),
    )
    parser.add_argument("--alpha", type=float, default=None, help="deprecated: use --forget-quality-threshold")
    parser.add_argument("--seed", type=int, default=VerifyConfig.seed)
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)


def _doc(name: str) -> str:
    return field_docs(VerifyConfig).get(name, "")


def _check_model_folder(parser: argparse.ArgumentParser, flag: str, folder: Path, fix: str) -> None:
    """A Hugging Face model folder with whole weights, or a parser error naming it (nothing loaded)."""
    if not folder.exists():
        parser.error(f"{flag} {folder} not found; {fix}.")
    if not folder.is_dir() or not (folder / "config.json").is_file():
        parser.error(f"{flag} {folder} is not a Hugging Face model folder (no config.json); {fix}.")
    try:
        _check_weights(folder)
    except OSError as e:
        parser.error(f"{flag}: {e}")


def _folder_arg(parser: argparse.ArgumentParser, flag: str, value: str | None, fix: str) -> Path | None:
    if value is None:
        return None
    folder = Path(value).expanduser().resolve()
    _check_model_folder(parser, flag, folder, fix)
    return folder


def _check_out(parser: argparse.ArgumentParser, out: Path, inputs: dict[str, Path | None]) -> None:
    """``--out`` is a folder (or new) outside every model folder read: verification never writes into a model."""
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file; pass a folder for verification.json and the figures.")
    for flag, folder in inputs.items():
        if folder is None:
            continue
        folder = Path(folder).resolve()
        if out.is_relative_to(folder):
            parser.error(
                f"--out {out} is inside {flag} {folder}; verification never writes into a model folder. "
                f"Pass --out outside it, e.g. {folder.with_name(folder.name + '-verification')}."
            )


def infer_data_name(model_dir: Path) -> str | None:
    """The data a model was unlearned on, from its unlearning card (or a zoo model's card)."""
    for card_name, key in (("unlearning_card.json", "data"), ("zoo_card.json", "name")):
        card = model_dir / card_name
        if card.is_file():
            value = read_json(card, "model card").get(key)
            if value:
                return str(value)
    return None


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> VerificationReport:
    """Check every argument first (no model is loaded or built before), then verify and save."""
    from sae_unlearn.models.loading import load_model

    threshold = args.forget_quality_threshold
    if args.alpha is not None:
        warnings.warn("--alpha is deprecated: use --forget-quality-threshold", DeprecationWarning, stacklevel=2)
        print("warning: --alpha is deprecated; use --forget-quality-threshold", file=sys.stderr)
        threshold = args.alpha
    try:
        relearn = {}
        if args.relearn_steps is not None:
            relearn["steps"] = tuple(args.relearn_steps)
        if args.relearn_lrs is not None:
            relearn["lrs"] = tuple(args.relearn_lrs)
        config = VerifyConfig(
            attacks={"relearn": relearn} if relearn else {},
            skip=tuple(args.skip),
            margin=args.margin,
            forget_quality_threshold=threshold,
            seed=args.seed,
        )
    except (ValueError, TypeError) as e:
        parser.error(str(e))
    model_dir = Path(args.model_dir).expanduser().resolve()  # `verify .` names the folder, not "."
    _check_model_folder(parser, "MODEL_DIR", model_dir, "pass the folder of the model to verify")
    oracle_dir = _folder_arg(parser, "--oracle", args.oracle, "pass the retain oracle's model folder")
    original_dir = _folder_arg(parser, "--original", args.original, "pass the model folder from before unlearning")
    out = Path(args.out).expanduser().resolve() if args.out else model_dir.with_name(model_dir.name + "-verification")
    _check_out(parser, out, {"MODEL_DIR": model_dir, "--oracle": oracle_dir, "--original": original_dir})
    if args.mc is not None and not Path(args.mc).is_file():
        parser.error(f"--mc {args.mc} not found; pass a JSON/JSONL file of multiple-choice questions.")
    try:
        name = args.data or infer_data_name(model_dir)
    except ValueError as e:
        parser.error(str(e))
    if name is None:
        parser.error(
            f"cannot tell which facts {model_dir} should have forgotten; pass --data secrets|tofu-mini|tofu:forget01."
        )
    if args.oracle is None and name not in ZOO:
        parser.error(f"--data {name!r} is not a zoo model, so there is no default oracle; pass --oracle DIR.")
    try:
        data = verification_data(name, tofu_source=args.tofu)
        if args.mc:
            data.mc_questions = load_mc_questions(args.mc)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    oracle_dir = oracle_dir or zoo_model_path(name, oracle=True, progress=args.progress)
    if original_dir is None and name in ZOO:
        original_dir = zoo_model_path(name, progress=args.progress)
    _check_out(parser, out, {"the oracle": oracle_dir, "the original model": original_dir})  # the zoo's, too
    created = not out.exists()
    try:
        with output_lock(out, what="verification"):
            model = load_model(model_dir, device=args.device)
            oracle = load_model(oracle_dir, device=args.device)
            original = load_model(original_dir, device=args.device) if original_dir else None
            report = verify(
                model, data, oracle, config, name=model_dir.name, progress=args.progress, reference=original
            )
            report.save(out)
    except FolderBusyError as e:
        parser.error(str(e))
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # nothing was written: leave nothing behind
        raise
    print(report.to_markdown())
    print(f"\nreport: {out / 'verification.json'}")
    return report
