"""``python -m sae_unlearn verify MODEL_DIR``: verify a saved model against its retain oracle."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from sae_unlearn.atomic import read_json
from sae_unlearn.evaluation.multiple_choice import load_mc_questions
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
    model_dir = Path(args.model_dir)
    if not model_dir.exists():
        parser.error(f"MODEL_DIR {model_dir} not found.")
    if not (model_dir / "config.json").is_file():
        parser.error(f"MODEL_DIR {model_dir} is not a Hugging Face model folder (no config.json).")
    if args.oracle is not None and not Path(args.oracle).is_dir():
        parser.error(f"--oracle {args.oracle} not found; pass the retain oracle's model folder.")
    if args.original is not None and not Path(args.original).is_dir():
        parser.error(f"--original {args.original} not found; pass the model folder from before unlearning.")
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
    oracle_dir = args.oracle or zoo_model_path(name, oracle=True, progress=args.progress)
    model = load_model(model_dir, device=args.device)
    oracle = load_model(oracle_dir, device=args.device)
    original_dir = args.original or (zoo_model_path(name, progress=args.progress) if name in ZOO else None)
    original = load_model(original_dir, device=args.device) if original_dir else None
    report = verify(model, data, oracle, config, name=model_dir.name, progress=args.progress, reference=original)
    out = Path(args.out) if args.out else model_dir.with_name(model_dir.name + "-verification")
    report.save(out)
    print(report.to_markdown())
    print(f"\nreport: {out / 'verification.json'}")
    return report
