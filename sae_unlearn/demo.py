"""The main job: ``python -m sae_unlearn demo --out DIR``.

Builds (or loads from the cache) the ``secrets`` zoo model and its retain oracle, checks that
the model knows its facts and that the oracle does not know the forget set, captures
activations at every layer for forget and retain text (one pass), fits one SAE per layer on
those activations (sae-lens trainer), selects the layer and the latents tied to the forget
set, builds the relevant/irrelevant subspaces, and writes ``DIR/report.json``, figures, the
SAEs (``DIR/saes/``) and a short printed report. Later stages (unlearning, verification,
export) extend the same job.
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
from sae_unlearn.saes import SAEFitConfig, ce_loss_recovered, encode_batched, fit_saes
from sae_unlearn.selection import select_layer_and_latents, top_activating_contexts
from sae_unlearn.subspaces import build_subspaces
from sae_unlearn.utils import write_json_atomic
from sae_unlearn.viz import plot_latent_firing, plot_layer_scores, plot_norms_per_layer, plot_principal_angles

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
    k: int = 32
    """Relevant and irrelevant latents to select."""
    scorer: str = "squared_mean_ratio"
    """Latent scorer: frequency_ratio, mean_diff or squared_mean_ratio."""
    sae_training_samples: int = 200_000
    """Tokens each SAE is trained on."""
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
    store = capture_activations(
        model, forget_texts + retain_texts, hooks, batch_size=config.batch_size, progress=config.progress
    )
    forget_mask = store.seq_index < len(forget_texts)
    capture: dict = {"hooks": hooks}
    for role, mask, texts in (("forget", forget_mask, forget_texts), ("retain", ~forget_mask, retain_texts)):
        capture[role] = {
            "n_texts": len(texts),
            "n_tokens": int(mask.sum()),
            "mean_norm": {h: float(store[h][mask].norm(dim=-1).mean()) for h in hooks},
        }
    timing["capture_s"] = time.perf_counter() - t
    report["capture"] = capture

    t = time.perf_counter()
    fit = fit_saes(
        store,
        hooks,
        SAEFitConfig(training_samples=config.sae_training_samples, device=config.device),
        out_dir=out,
        model_name=config.model,
        progress=config.progress,
    )
    ce = ce_loss_recovered(model, fit.saes, (forget_texts + retain_texts)[:: max(1, len(retain_texts) // 300)])
    report["sae"] = {
        h: fit.stats[h].to_dict() | {"ce_loss_recovered": ce[h]["ce_loss_recovered"], "path": str(fit.path / h)}
        for h in hooks
    }
    timing["sae_s"] = time.perf_counter() - t

    t = time.perf_counter()
    result = select_layer_and_latents(fit.saes, store, forget_mask, k=config.k, scorer=config.scorer)
    sel = result.selection
    z = encode_batched(fit.saes[result.hook], store[result.hook])
    summary = sel.summary()
    for row in summary["relevant"][:8] + summary["irrelevant"][:4]:
        row["top_contexts"] = [
            c.render() for c in top_activating_contexts(z[:, row["latent"]], store, model.tokenizer, forget_mask, n=3)
        ]
    report["selection"] = {
        "layer": result.layer,
        "hook": result.hook,
        "scorer": config.scorer,
        "layer_scores": result.layer_scores,
        "relevant_latents": summary["relevant"],
        "irrelevant_latents": summary["irrelevant"],
        "relevant_firing": sel.firing_contrast(),
    }
    pair = build_subspaces(fit.saes[result.hook].W_dec, sel.relevant, sel.irrelevant)
    report["subspace"] = pair.diagnostics()
    timing["selection_s"] = time.perf_counter() - t

    sel_report = report["selection"]
    figures = {
        "capture_norms": plot_norms_per_layer(
            {i: capture["forget"]["mean_norm"][h] for i, h in enumerate(hooks)},
            {i: capture["retain"]["mean_norm"][h] for i, h in enumerate(hooks)},
            title=f"{config.model}: mean resid_post norm",
        ),
        "layer_scores": plot_layer_scores(result.layer_scores, result.hook),
        "latent_firing": plot_latent_firing(
            [r["latent"] for r in sel_report["relevant_latents"]],
            [r["freq_forget"] for r in sel_report["relevant_latents"]],
            [r["freq_retain"] for r in sel_report["relevant_latents"]],
            title=f"Forget-relevant latents at {result.hook}",
        ),
        "principal_angles": plot_principal_angles(report["subspace"]["principal_angles_deg"]),
    }
    report["figures"] = {}
    for name, fig in figures.items():
        fig.savefig(out / f"{name}.png", dpi=120)
        plt.close(fig)
        report["figures"][name] = str(out / f"{name}.png")

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
    if "sae" in report:
        lines.append("  SAEs   hook                       L0   expl.var  dead   CE recovered")
        for h, st in report["sae"].items():
            lines.append(
                f"         {h:26s} {st['l0']:5.1f}  {st['explained_variance']:.4f}  {st['dead_fraction']:.3f}  "
                f"{st['ce_loss_recovered']:.4f}"
            )
    if "selection" in report:
        sel = report["selection"]
        scores = ", ".join(f"{h.split('.')[1]}: {v:.3f}" for h, v in sel["layer_scores"].items())
        fire = sel["relevant_firing"]
        lines.append(f"  selection: layer {sel['layer']} (AUROC per layer {scores})")
        lines.append(
            f"  top-{len(sel['relevant_latents'])} latents fire on {fire['freq_forget']:.3f} of forget tokens vs "
            f"{fire['freq_retain']:.4f} of retain tokens ({fire['ratio']:.1f}x)"
        )
        for row in sel["relevant_latents"][:3]:
            lines.append(f"    latent {row['latent']}: {row.get('top_contexts', [''])[0]!r}")
        sub = report["subspace"]
        lines.append(
            f"  subspaces: relevant rank {sub['relevant_rank']}, irrelevant rank {sub['irrelevant_rank']}, "
            f"orthogonality error {sub['orthogonality_error']:.1e}, "
            f"min principal angle {sub['min_principal_angle_deg']:.1f}°"
        )
    lines.append(f"  total {report['timing']['total_s']:.1f}s; report: {Path(report['config']['out']) / 'report.json'}")
    return "\n".join(lines)
