"""The main job: ``python -m sae_unlearn demo --out DIR``.

Builds (or loads from the cache) the ``secrets`` zoo model and its retain oracle, checks that
the model knows its facts and that the oracle does not know the forget set, captures
activations at every layer for forget and retain text, and writes ``DIR/report.json``, a
figure, and a short printed report. Later pipeline stages (SAEs, selection, subspaces,
unlearning, verification, export) extend the same job.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from sae_unlearn.capture import capture_activations
from sae_unlearn.data.secrets import SecretsCorpus
from sae_unlearn.evaluation import evaluate_knowledge
from sae_unlearn.models import load_model, resid_post, zoo_model_path
from sae_unlearn.models.zoo import ZOO
from sae_unlearn.utils import write_json_atomic
from sae_unlearn.viz import plot_norms_per_layer

logger = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    """Options of the demo job."""

    out: str = "demo_out"
    """Folder for report.json and figures (created if missing)."""
    model: str = "secrets"
    """Zoo model to run on."""
    device: str = "auto"
    """``auto`` (GPU when present), ``cpu`` or ``cuda``."""
    batch_size: int = 64
    """Texts per forward pass when capturing and answering."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        if self.model not in ZOO:
            raise ValueError(f"model={self.model!r} is not a zoo model; choose one of {sorted(ZOO)}.")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1.")


def run_demo(config: DemoConfig) -> dict:
    """Run the demo pipeline and return the report (also written to ``out/report.json``)."""
    t_start = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    timing: dict[str, float] = {}

    t = time.perf_counter()
    model_dir = zoo_model_path(config.model, oracle=False, progress=config.progress)
    oracle_dir = zoo_model_path(config.model, oracle=True, progress=config.progress)
    model = load_model(model_dir, device=config.device)
    oracle = load_model(oracle_dir, device=config.device)
    timing["models_s"] = time.perf_counter() - t

    if config.model == "secrets":
        corpus = SecretsCorpus()
        split = corpus.split()
        forget_texts, retain_texts = corpus.forget_texts(), corpus.retain_texts()
    else:
        from sae_unlearn.models.zoo import zoo_split

        split = zoo_split(config.model)
        forget_texts = [q.text for q in split.forget]
        retain_texts = [q.text for q in split.retain]

    t = time.perf_counter()
    report: dict = {"config": asdict(config)}
    for role, m, path in (("model", model, model_dir), ("oracle", oracle, oracle_dir)):
        forget = evaluate_knowledge(m, split.forget, batch_size=config.batch_size)
        retain = evaluate_knowledge(m, split.retain, batch_size=config.batch_size)
        report[role] = {
            "path": str(path),
            "forget_accuracy": forget.accuracy,
            "retain_accuracy": retain.accuracy,
            "forget_rouge_l_recall": forget.mean_rouge_l_recall,
            "retain_rouge_l_recall": retain.mean_rouge_l_recall,
            "n_forget_items": len(split.forget),
            "n_retain_items": len(split.retain),
            "examples": [
                {"prompt": q.prompt, "target": q.target, "answer": a.strip()}
                for q, a in list(zip(split.forget, forget.answers, strict=True))[:3]
            ],
        }
    timing["evaluation_s"] = time.perf_counter() - t

    t = time.perf_counter()
    hooks = [resid_post(layer) for layer in range(model.n_layers)]
    capture: dict = {"hooks": hooks}
    for role, texts in (("forget", forget_texts), ("retain", retain_texts)):
        store = capture_activations(model, texts, hooks, batch_size=config.batch_size, progress=config.progress)
        capture[role] = {
            "n_texts": len(texts),
            "n_tokens": store.n_tokens,
            "mean_norm": {h: store.mean_norm(h) for h in hooks},
        }
    timing["capture_s"] = time.perf_counter() - t
    report["capture"] = capture

    fig = plot_norms_per_layer(
        {i: capture["forget"]["mean_norm"][h] for i, h in enumerate(hooks)},
        {i: capture["retain"]["mean_norm"][h] for i, h in enumerate(hooks)},
        title=f"{config.model}: mean resid_post norm",
    )
    fig.savefig(out / "capture_norms.png", dpi=120)
    plt.close(fig)
    report["figures"] = {"capture_norms": str(out / "capture_norms.png")}

    timing["total_s"] = time.perf_counter() - t_start
    report["timing"] = timing
    write_json_atomic(out / "report.json", report)
    return report


def format_report(report: dict) -> str:
    """A short human-readable summary of a demo report."""
    m, o, c = report["model"], report["oracle"], report["capture"]
    lines = [
        f"sae-unlearn demo — zoo model {report['config']['model']!r}",
        f"  model : forget accuracy {m['forget_accuracy']:.3f}  retain accuracy {m['retain_accuracy']:.3f}",
        f"  oracle: forget accuracy {o['forget_accuracy']:.3f}  retain accuracy {o['retain_accuracy']:.3f}"
        "   (oracle never saw the forget set)",
        f"  capture: {c['forget']['n_tokens']} forget tokens, {c['retain']['n_tokens']} retain tokens",
        "  layer  mean norm forget  mean norm retain",
    ]
    for i, h in enumerate(c["hooks"]):
        lines.append(f"  {i:>5}  {c['forget']['mean_norm'][h]:>16.3f}  {c['retain']['mean_norm'][h]:>16.3f}")
    for ex in m["examples"]:
        lines.append(f"  e.g. {ex['prompt']!r} -> {ex['answer']!r} (target {ex['target']!r})")
    lines.append(f"  total {report['timing']['total_s']:.1f}s; report: {Path(report['config']['out']) / 'report.json'}")
    return "\n".join(lines)
