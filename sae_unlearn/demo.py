"""The main job: ``python -m sae_unlearn demo --out DIR``.

Runs the SSPU pipeline end to end on the ``secrets`` zoo model: builds (or loads from the cache)
the model and its retain oracle and checks what each knows; captures activations at every layer
for forget and retain text (one pass), fits one SAE per layer (sae-lens trainer), selects the
layer and the latents tied to the forget set, and builds the relevant/irrelevant subspaces;
unlearns with SSPU and with the RMU baseline (same budget, each on a fresh copy); exports the
SSPU model as a Hugging Face folder with its unlearning card; verifies both unlearned models
against the retain oracle (metrics, attacks, verdict; reports under ``DIR/verification/``); and
writes ``DIR/report.json``, figures and a short printed report.

One demo at a time writes ``DIR``: a second one into the same folder fails at once
(:class:`~sae_unlearn.atomic.FolderBusyError`). ``report.json`` is written last and a previous
run's is removed first, so a folder never holds a report that describes another run's files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sae_lens import SAE

from sae_unlearn.atomic import output_lock, read_json, write_json_atomic
from sae_unlearn.capture.capture import run_and_capture
from sae_unlearn.export import export_model
from sae_unlearn.models import HookedModel, load_model, zoo_model_path
from sae_unlearn.models.zoo import ZOO
from sae_unlearn.pipeline import knowledge_metrics, pipeline_data, sae_stage, unlearn
from sae_unlearn.saes import SAEFitConfig, ce_loss_recovered, check_pretrained_id, encode_batched, load_saes
from sae_unlearn.saes.loading import check_sae_matches
from sae_unlearn.selection import SAEStageConfig, top_activating_contexts
from sae_unlearn.selection.latents import Scorer
from sae_unlearn.unlearning import METHODS, TrainConfig, get_method, method_label, settings_for
from sae_unlearn.unlearning.registry import why_method_cannot_run
from sae_unlearn.utils import (
    DictConfig,
    cache_dir,
    renamed_keyword,
    resolve_device,
    resolve_dtype,
    run_environment,
)
from sae_unlearn.verification import VerifyConfig, measure, verification_data, verify
from sae_unlearn.viz import plot_latent_firing, plot_layer_scores, plot_norms_per_layer, plot_principal_angles
from sae_unlearn.viz.figure import save_png

logger = logging.getLogger(__name__)


@dataclass
class DemoConfig(DictConfig):
    """Options of the demo job (all checked before any work starts)."""

    out: str = "demo_out"
    """Folder for report.json and figures (created if missing)."""
    model: str = "secrets"
    """Zoo model to run on."""
    device: str = "auto"
    """``auto`` (GPU when present), ``cpu`` or ``cuda``."""
    dtype: str = "float32"
    """Model dtype: float32, bfloat16 or float16 (SAEs and the trained matrices' master copies stay float32)."""
    batch_size: int = 64
    """Texts per forward pass when capturing and answering."""
    n_latents: int = 64
    """Relevant and irrelevant latents to select."""
    scorer: Scorer = "squared_mean_ratio"
    """Latent scorer: frequency_ratio, mean_diff or squared_mean_ratio."""
    sae_training_samples: int = 200_000
    """Tokens each SAE is trained on."""
    steps: int = TrainConfig.steps
    """Unlearning optimiser steps (every method alike)."""
    methods: list[str] = field(default_factory=lambda: ["rmu", "sspu"])
    """Registered unlearning methods to run, each on a fresh copy (must include rmu and sspu: the
    demo exports SSPU and times every method against RMU)."""
    progress: bool = True
    """Show progress bars."""
    verify_grid: bool = False
    """--verify-grid: relearn with the literature's grid (3 learning rates x 3 seeds x full/LoRA, worst
    case; about 100 s more on 2 CPU cores). The default is one full fine-tuning run at lr 1e-3, a
    quicker and weaker attack that the printed report names."""
    saes: str = ""
    """Pretrained SAEs to use instead of fitting: a folder (fit_saes output, sae-lens SAE folders,
    Gemma Scope params.npz) or release:sae_id from sae-lens's registry (online)."""
    k: int | None = None
    """Deprecated name of ``n_latents``."""

    def __post_init__(self) -> None:
        if self.k is not None:
            self.n_latents, self.k = renamed_keyword("k", "n_latents", self.k, self.n_latents, 64, stacklevel=4), None
        super().__post_init__()
        if self.model not in ZOO:
            raise ValueError(f"model={self.model!r} is not a zoo model; choose one of {sorted(ZOO)}.")
        stage = self.stage_config()  # n_latents, scorer, batch size: checked by the stage's config
        out = Path(self.out).expanduser()
        if out.exists() and not out.is_dir():
            raise ValueError(f"out={self.out!r} is a file; choose a folder.")
        zoo_root = (cache_dir() / "zoo").resolve()
        resolved = out.resolve()
        if resolved == zoo_root or zoo_root in resolved.parents or resolved in zoo_root.parents:
            raise ValueError(
                f"out={self.out!r} is, contains or lies inside the zoo's model cache {zoo_root}, whose models the "
                "demo reads and must not change; choose a folder outside it."
            )
        resolve_dtype(self.dtype, resolve_device(self.device))
        if self.saes:  # checked against the SAEs' width once they are loaded
            if not Path(self.saes).expanduser().is_dir():
                if ":" not in self.saes:
                    raise ValueError(f"saes={self.saes!r} is neither a folder nor release:sae_id.")
                check_pretrained_id(*self.saes.split(":", 1))
        else:
            stage.check_width(self.sae_fit_config().expansion_factor * ZOO[self.model].arch.d_model)
        if isinstance(self.methods, str):
            raise TypeError(f"methods={self.methods!r} is one string; pass a list, e.g. methods=[{self.methods!r}].")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"methods {unknown} are not registered; choose from {sorted(METHODS)}.")
        for name in self.methods:
            shared = settings_for(name, self.unlearning_settings())  # weight-free methods take no steps
            get_method(name).from_settings({**shared, "hook": "blocks.0.hook_resid_post"})
        cannot = [why for m in self.methods if (why := why_method_cannot_run(m, self.model))]
        if cannot:
            raise ValueError(
                f"model={self.model!r}: method " + "; method ".join(cannot) + ". Drop it or change --model."
            )
        missing = [m for m in ("rmu", "sspu") if m not in self.methods]
        if missing or len(set(self.methods)) != len(self.methods):
            raise ValueError(
                f"methods={self.methods!r} must list each method once and include {missing or ['rmu', 'sspu']} "
                "(the demo exports SSPU and times every method against RMU)."
            )

    def sae_fit_config(self) -> SAEFitConfig:
        """The SAE settings of the demo."""
        return SAEFitConfig(training_samples=self.sae_training_samples, device=self.device)

    def stage_config(self) -> SAEStageConfig:
        """The demo's SAE stage (:func:`~sae_unlearn.pipeline.sae_stage`): fitted SAEs unless ``saes``."""
        fit = None if self.saes else self.sae_fit_config()
        return SAEStageConfig(n_latents=self.n_latents, scorer=self.scorer, batch_size=self.batch_size, fit=fit)

    def unlearning_settings(self) -> dict:
        """The settings every method gets over its config's defaults (the hook is added once selected)."""
        return {"steps": self.steps}

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.pop("k")
        return d


@dataclass(eq=False)  # Mapping's equality: equal to a dict with the same sections
class DemoReport(Mapping):
    """What the demo measured, section by section: ``out/report.json`` (:meth:`to_dict`). A
    read-only mapping of its sections, so it reads like the dict it is saved as
    (``report["unlearning"]["sspu"]["forget_accuracy"]``, ``"export" in report``, ``report.get``)."""

    config: dict
    """The :class:`DemoConfig` that ran."""
    environment: dict
    """Versions, device and threads (:func:`~sae_unlearn.utils.run_environment`)."""
    model: dict
    """The original model: its folder, item counts, knowledge metrics and three example answers."""
    oracle: dict
    """The retain oracle, measured the same way."""
    capture: dict
    """The hooks captured and the mean activation norm per hook, forget and retain."""
    sae: dict
    """Per hook: L0, explained variance, dead latents, CE loss recovered, where the SAE is."""
    selection: dict
    """The layer, every layer's score, the relevant and irrelevant latents (with top contexts)."""
    subspace: dict
    """Ranks, orthogonality error and principal angles of the relevant and irrelevant subspaces."""
    unlearning: dict
    """The shared settings, then per method: knowledge metrics, seconds, step time over RMU's."""
    export: dict
    """The exported SSPU model: its folder and the reload check."""
    verification: dict
    """The verification config, then per method its summary, reasons and full report's path."""
    figures: dict
    """Figure name → PNG path."""
    timing: dict
    """Seconds per stage and in all."""

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __getitem__(self, section: str) -> Any:
        if section not in _SECTIONS:
            raise KeyError(f"{section!r}: the demo report's sections are {', '.join(_SECTIONS)}.")
        return getattr(self, section)

    def __iter__(self) -> Iterator[str]:
        return iter(_SECTIONS)

    def __len__(self) -> int:
        return len(_SECTIONS)

    @classmethod
    def load(cls, path: str | Path) -> DemoReport:
        """A saved ``report.json`` (or the folder holding it); ``ValueError`` names a section it
        lacks or does not know (a report of another version)."""
        path = Path(path)
        path = path / "report.json" if path.is_dir() else path
        saved = read_json(path, "demo report")
        missing, unknown = [s for s in _SECTIONS if s not in saved], [s for s in saved if s not in _SECTIONS]
        if missing or unknown:
            raise ValueError(
                f"{path} is not a demo report of this version: missing sections {missing}, unknown {unknown}."
            )
        return cls(**saved)


_SECTIONS = tuple(f.name for f in fields(DemoReport))


def run_demo(config: DemoConfig) -> DemoReport:
    """Run the demo pipeline and return the report (also written to ``out/report.json``)."""
    t_start = time.perf_counter()
    out = Path(config.out).expanduser()

    # one demo at a time writes a folder: a second one fails here, before any work
    with output_lock(out, "demo"):
        return _run_demo(config, out, t_start)


def _run_demo(config: DemoConfig, out: Path, t_start: float) -> DemoReport:
    timing: dict[str, float] = {}
    report: dict = {"config": config.to_dict(), "environment": run_environment()}
    # report.json is written last: drop a previous run's now, so the folder never holds a report
    # that describes another run's model, SAEs or figures (each is replaced as this run goes)
    (out / "report.json").unlink(missing_ok=True)

    t = time.perf_counter()
    model_dir = zoo_model_path(config.model, oracle=False, progress=config.progress)
    oracle_dir = zoo_model_path(config.model, oracle=True, progress=config.progress)
    model = load_model(model_dir, device=config.device, dtype=config.dtype)
    # given SAEs are checked against the model (hooks, widths) before anything is written
    saes = _checked_saes(model, config.saes) if config.saes else None
    oracle = load_model(oracle_dir, device=config.device, dtype=config.dtype)
    data = pipeline_data(config.model)
    timing["models_s"] = time.perf_counter() - t

    t = time.perf_counter()
    before = knowledge_metrics(model, data.split, config.batch_size)
    for role, path, metrics in (
        ("model", model_dir, before),
        ("oracle", oracle_dir, knowledge_metrics(oracle, data.split, config.batch_size)),
    ):
        report[role] = {
            "path": str(path),
            "n_forget_items": len(data.split.forget),
            "n_retain_items": len(data.split.retain),
        }
        report[role].update(metrics)
    report["model"]["examples"] = _examples(model, data)
    timing["evaluation_s"] = time.perf_counter() - t

    t = time.perf_counter()
    stage = sae_stage(model, data, out, config.stage_config(), saes, progress=config.progress)
    if saes is not None:
        stage.fit.source = config.saes
    timing["capture_and_sae_s"] = time.perf_counter() - t
    report["capture"] = _capture_report(stage, data)
    texts = data.forget_texts + data.retain_texts
    ce = ce_loss_recovered(model, stage.fit.saes, texts[:: max(1, len(texts) // 300)])
    saes_dir = stage.fit.path
    report["sae"] = {
        h: stage.fit.stats[h].to_dict()
        | {
            "ce_loss_recovered": ce[h]["ce_loss_recovered"],
            "path": str(saes_dir / h) if saes_dir is not None else stage.fit.source,
            "pretrained": stage.fit.pretrained,
        }
        for h in stage.fit.hooks
    }
    report["selection"] = _selection_report(stage, model, config)
    report["subspace"] = stage.subspaces.diagnostics()

    t = time.perf_counter()
    settings = config.unlearning_settings()
    report["unlearning"] = {"settings": {**settings, "hook": stage.selection.hook}}
    unlearned = {}
    for method in config.methods:
        m, result = unlearn(
            method,
            model_dir,
            data,
            stage,
            settings_for(method, settings),
            device=config.device,
            progress=config.progress,
            dtype=config.dtype,
        )
        metrics = knowledge_metrics(m, data.split, config.batch_size)
        report["unlearning"][method] = metrics | {
            "seconds": result.seconds,
            "mean_step_seconds": result.mean_step_seconds,
            "steering_coef": result.steering_coef,
            "stopped_early": result.stopped_early,
            "final_losses": result.history[-1] if result.history else {},
            **{k: v for k, v in result.extra.items() if not isinstance(v, dict)},
        }
        unlearned[method] = (m, result, metrics)
    rmu_t = report["unlearning"]["rmu"]["mean_step_seconds"]
    for method in config.methods:
        t_m = report["unlearning"][method]["mean_step_seconds"]  # 0 for weight-free methods: no steps
        report["unlearning"][method]["step_time_over_rmu"] = t_m / rmu_t if rmu_t and t_m else None
    report["unlearning"]["sspu_over_rmu_step_time"] = report["unlearning"]["sspu"]["step_time_over_rmu"]
    timing["unlearning_s"] = time.perf_counter() - t

    t = time.perf_counter()
    m, result, after = unlearned["sspu"]
    card = export_model(
        m,
        out / "sspu_model",
        {
            "method": "sspu",
            "data": config.model,
            "hook": stage.selection.hook,
            "layer": stage.selection.layer,
            "latents": {
                "relevant": [int(i) for i in stage.selection.latents.relevant],
                "irrelevant": [int(i) for i in stage.selection.latents.irrelevant],
                "scorer": config.scorer,
            },
            "subspace": report["subspace"] | {"principal_angles_deg": None},
            "hyperparameters": result.config,
            "seed": result.config["seed"],
            "updated_parameters": result.params,
            "out_of_subspace_residual": result.extra["out_of_subspace_residual"],
            "metrics": {"before": before, "after": after},
        },
        overwrite=True,
    )
    report["export"] = {
        "path": card["path"],
        "max_logit_diff": card["max_logit_diff"],
        "reload_weights_identical": card["reload_weights_identical"],
        "plain_transformers_max_logit_diff": card["plain_transformers_max_logit_diff"],
        "card": str(out / "sspu_model" / "UNLEARNING_CARD.md"),
    }
    timing["export_s"] = time.perf_counter() - t

    t = time.perf_counter()
    report["verification"] = _verification(oracle, {k: v[0] for k, v in unlearned.items()}, out, config, model)
    timing["verification_s"] = time.perf_counter() - t

    report["figures"] = _figures(out, report, stage, config)
    timing["total_s"] = time.perf_counter() - t_start
    report["timing"] = timing
    demo_report = DemoReport(**report)
    write_json_atomic(out / "report.json", demo_report.to_dict())
    return demo_report


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def verify_config(config: DemoConfig) -> VerifyConfig:
    """The demo's verification settings: every attack at its defaults, relearning as one full
    fine-tuning run at lr 1e-3 unless ``config.verify_grid`` asks for the whole grid."""
    quick = {"relearn": {"lrs": (1e-3,), "seeds": (0,), "modes": ("full",)}}
    return VerifyConfig(batch_size=config.batch_size, attacks={} if config.verify_grid else quick)


def _verification(oracle, models: dict, out: Path, config: DemoConfig, original: HookedModel) -> dict:
    """Verify each unlearned model against the oracle (measured once); save the full reports.
    ``original`` (the model before unlearning) gives direction ablation its reference."""
    vdata = verification_data(config.model)
    vconfig = verify_config(config)
    oracle_m = measure(oracle, vdata, vconfig, reference=original)
    section: dict = {"config": vconfig.to_dict()}
    for method, model in models.items():
        report = verify(model, vdata, oracle_m, vconfig, name=method_label(method), reference=original)
        path = report.save(out / "verification" / method)
        section[method] = report.summary() | {"reasons": report.reasons, "report": str(path)}
    return section


def _checked_saes(model: HookedModel, source: str) -> dict[str, SAE]:
    """Load the given SAEs and check each against the model's activations at its hook (one short
    forward pass), so a wrong SAE fails before the demo writes or computes anything."""
    saes = load_saes(source, device=str(model.device))
    hooks = model.validate_hooks(list(saes))
    acts = run_and_capture(model, model.tokenize(["a"]).input_ids, hooks)
    for h, sae in saes.items():
        check_sae_matches(sae, h, int(acts[h].shape[-1]), model_name=None)
    return saes


def _examples(model, data) -> list[dict]:
    from sae_unlearn.evaluation import greedy_answers

    items = data.split.forget[:3]
    answers = greedy_answers(model, [q.prompt for q in items], max_new_tokens=12)
    return [{"prompt": q.prompt, "target": q.target, "answer": a.strip()} for q, a in zip(items, answers, strict=True)]


def _capture_report(stage, data) -> dict:
    hooks = stage.fit.hooks
    capture: dict = {"hooks": hooks}
    for role, mask, texts in (
        ("forget", stage.forget_mask, data.forget_texts),
        ("retain", ~stage.forget_mask, data.retain_texts),
    ):
        capture[role] = {
            "n_texts": len(texts),
            "n_tokens": int(mask.sum()),
            "mean_norm": {h: float(stage.store[h][mask].norm(dim=-1).mean()) for h in hooks},
        }
    return capture


def _selection_report(stage, model, config) -> dict:
    result = stage.selection
    z = encode_batched(stage.fit.saes[result.hook], stage.store[result.hook], hook=result.hook)
    summary = result.latents.summary()
    for row in summary["relevant"][:8] + summary["irrelevant"][:4]:
        row["top_contexts"] = [
            c.render()
            for c in top_activating_contexts(z[:, row["latent"]], stage.store, model.tokenizer, stage.forget_mask, n=3)
        ]
    return {
        "layer": result.layer,
        "hook": result.hook,
        "scorer": config.scorer,
        "layer_scores": result.layer_scores,
        "layer_score_intervals": {h: list(iv) for h, iv in result.layer_score_intervals.items()},
        "relevant_latents": summary["relevant"],
        "irrelevant_latents": summary["irrelevant"],
        "relevant_firing": result.latents.firing_contrast(),
    }


def _figures(out: Path, report: dict, stage, config) -> dict[str, str]:
    hooks, cap, sel = report["capture"]["hooks"], report["capture"], report["selection"]
    figures = {
        "capture_norms": plot_norms_per_layer(
            {i: cap["forget"]["mean_norm"][h] for i, h in enumerate(hooks)},
            {i: cap["retain"]["mean_norm"][h] for i, h in enumerate(hooks)},
            title=f"{config.model}: mean resid_post norm",
        ),
        "layer_scores": plot_layer_scores(
            stage.selection.layer_scores, stage.selection.hook, intervals=stage.selection.layer_score_intervals
        ),
        "latent_firing": plot_latent_firing(
            [r["latent"] for r in sel["relevant_latents"]],
            [r["freq_forget"] for r in sel["relevant_latents"]],
            [r["freq_retain"] for r in sel["relevant_latents"]],
            title=f"Forget-relevant latents at {stage.selection.hook}",
        ),
        "principal_angles": plot_principal_angles(report["subspace"]["principal_angles_deg"]),
    }
    paths = {}
    for name, fig in figures.items():
        paths[name] = str(save_png(fig, out / f"{name}.png", dpi=120))
    return paths


def format_report(report: DemoReport | dict) -> str:
    """A short human-readable summary of a demo report (or of its saved dict)."""
    if isinstance(report, DemoReport):
        report = report.to_dict()
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
    if "unlearning" in report:
        u = report["unlearning"]
        lines.append("  unlearning        forget acc  retain acc  forget P(ans)  retain P(ans)")
        methods = report["config"].get("methods", ["rmu", "sspu"])
        rows = [("original", report["model"]), ("retain oracle", report["oracle"])]
        rows += [(method_label(m), u[m]) for m in methods]
        for name, r in rows:
            lines.append(
                f"  {name:16s} {r['forget_accuracy']:10.3f}  {r['retain_accuracy']:10.3f}  "
                f"{r['forget_answer_prob']:13.3f}  {r['retain_answer_prob']:13.3f}"
            )
        lines.append(
            f"  SSPU out-of-subspace residual {u['sspu']['out_of_subspace_residual']:.1e}; "
            f"step time SSPU/RMU {u['sspu_over_rmu_step_time']:.2f}"
        )
        lines.append(
            f"  exported SSPU model: {report['export']['path']} "
            f"(max logit diff after reload {report['export']['max_logit_diff']:.1e}; "
            f"plain transformers vs the bridge {report['export']['plain_transformers_max_logit_diff']:.1e})"
        )
    if "verification" in report:
        grid = report["config"].get("verify_grid", True)
        lines.append(
            "  relearning attack: "
            + (
                "the grid (3 learning rates x 3 seeds x full/LoRA, worst case)"
                if grid
                else "one full fine-tuning run at lr 1e-3 (quick; --verify-grid runs the 18-run grid)"
            )
        )
        lines.append(
            "  verification      verdict        forget quality  relearn acc  probe acc  int4 acc  dir-ablation  "
            "degenerate  distinguisher"
        )
        for method in report["config"].get("methods", ["rmu", "sspu"]):
            v = report["verification"][method]
            probe = "n/a" if v["probe_accuracy"] is None else f"{v['probe_accuracy']:.3f}"
            lines.append(
                f"  {method_label(method):16s} {v['verdict']:14s} {v['forget_quality']:14.3g}  "
                f"{v['relearn_forget_accuracy']:11.3f}  {probe:>9s}  "
                f"{v['quantization'].get('int4', float('nan')):8.3f}  "
                f"{_fmt(v['direction_ablation_max']):>12s}  {_fmt(v['degenerate_share']):>10s}  "
                f"{_fmt(v['distinguisher_accuracy']):>13s}"
            )
            lines.append(f"    evidence: {v['evidence']}")
            if "trace_leak_rate" in v:  # a reasoning model: what its traces still say
                lines.append(
                    f"    trace leak {v['trace_leak_rate']:.3f} (oracle {v['oracle_trace_leak_rate']:.3f}); "
                    f"retain traces correct {v['retain_trace_correct']:.3f}"
                )
            lines.append(f"    {v['reasons'][-1]}")
    lines.append(f"  total {report['timing']['total_s']:.1f}s; report: {Path(report['config']['out']) / 'report.json'}")
    return "\n".join(lines)
