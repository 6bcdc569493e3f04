"""The SSPU pipeline as reusable stages (used by the demo, the benchmarks and the notebooks).

data → knowledge metrics → capture + SAEs + selection + subspaces → unlearning (any registered
method, on a fresh copy of the model) → metrics after. Each stage is one function returning a
small dataclass, so a notebook can run, inspect and re-run any of them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Bool
from sae_lens import SAE
from torch import Tensor

from sae_unlearn.atomic import read_json
from sae_unlearn.capture import ActivationStore, capture_activations
from sae_unlearn.data.corpora import corpus_data
from sae_unlearn.data.splits import UnlearningSplit
from sae_unlearn.evaluation import answer_probability, evaluate_knowledge
from sae_unlearn.models import HookedModel, load_model, resid_post
from sae_unlearn.models.hooks import last_writer_layer
from sae_unlearn.models.zoo import ZOO
from sae_unlearn.saes import FittedSAEs, SAEFitConfig, fit_saes, load_saes, reconstruction_stats
from sae_unlearn.saes.inputs import CaptureInputs, capture_inputs, fold_norm_scaling_factor
from sae_unlearn.saes.loading import SAEMismatchError, check_sae_matches
from sae_unlearn.selection import SelectionResult, select_layer_and_latents
from sae_unlearn.selection.config import SAEStageConfig, stage_config
from sae_unlearn.selection.streaming import select_layer_and_latents_streaming
from sae_unlearn.subspaces import SubspacePair, build_subspaces
from sae_unlearn.unlearning import UnlearningMethod, UnlearningResult, get_method
from sae_unlearn.unlearning.base import EDIT_DEPTH
from sae_unlearn.unlearning.registry import why_method_cannot_run
from sae_unlearn.utils import check_forget_retain, check_keywords


@dataclass
class PipelineData:
    """What a zoo model is unlearned on and judged by."""

    name: str
    split: UnlearningSplit
    """Forget/retain facts (questions and answers) for evaluation."""
    forget_texts: list[str]
    """Text about the forget set (unlearning's forget corpus)."""
    retain_texts: list[str]
    """Text about everything else (unlearning's retain corpus)."""


def pipeline_data(name: str) -> PipelineData:
    """Forget/retain texts and facts of a zoo model."""
    if name not in ZOO:
        raise KeyError(f"unknown zoo model {name!r}; available: {sorted(ZOO)}")
    corpus = corpus_data(ZOO[name].corpus)  # the entry's corpus, from the one registry
    return PipelineData(name, corpus.split, corpus.forget_texts, corpus.retain_texts)


def knowledge_metrics(model: HookedModel, split: UnlearningSplit, batch_size: int = 64) -> dict[str, float]:
    """Forget/retain accuracy (exact target; ROUGE-L recall ≥ 0.5 for items without one), ROUGE-L
    recall and mean normalised answer probability."""
    out: dict[str, float] = {}
    for role, items in (("forget", split.forget), ("retain", split.retain)):
        k = evaluate_knowledge(model, items, batch_size=batch_size)
        out[f"{role}_accuracy"] = k.known_fraction
        out[f"{role}_rouge_l_recall"] = k.mean_rouge_l_recall
        probs = answer_probability(model, items, batch_size=batch_size)
        out[f"{role}_answer_prob"] = sum(probs) / len(probs)
    return out


@dataclass
class SAEStage:
    """Capture, SAEs, layer/latent selection and subspaces of one model."""

    store: ActivationStore | None
    """Every token's activation at every hook; ``None`` after streaming selection (nothing stored)."""
    forget_mask: Bool[Tensor, " n_tokens"] | None
    """Which rows of :attr:`store` are forget tokens; ``None`` with :attr:`store`."""
    fit: FittedSAEs
    selection: SelectionResult
    subspaces: SubspacePair
    positions: str = "all"
    """The tokens the selection scored: ``"all"``, or ``"answer"`` (the token before each fact's answer)."""


def sae_stage(
    model: HookedModel,
    data: PipelineData,
    out_dir: str | Path | None = None,
    config: SAEStageConfig | SAEFitConfig | None = None,
    saes: Mapping[str, SAE] | str | Path | None = None,
    *,
    progress: bool = True,
    **settings: Any,
) -> SAEStage:
    """SSPU stages 1-3: capture every layer once, fit SAEs, select layer and latents, build subspaces.

    ``config`` (:class:`~sae_unlearn.selection.config.SAEStageConfig`) holds the stage's settings;
    its fields may also be given by keyword (``n_latents=16, streaming=True``), updating ``config``
    or the defaults, and an :class:`~sae_unlearn.saes.SAEFitConfig` in its place (or
    ``fit_config=``) says how SAEs are fitted, as before. ``n_latents`` relevant and irrelevant
    latents are selected (``k`` is its deprecated name); every setting is checked, and forget and
    retain texts too (lists, non-empty, no text on both sides), before anything runs.

    The layer is chosen among those with the default edit upstream (``EDIT_DEPTH`` blocks up to
    and including it; :mod:`sae_unlearn.selection.layers` explains why); all are scored.

    With ``saes`` (``{hook: SAE}``, or anything :func:`~sae_unlearn.saes.load_saes` takes: a folder
    or ``"release:sae_id"``) nothing is fitted: only the SAEs' hooks are captured, each SAE is
    checked against the activations there (hook, width), and the layer is chosen among theirs.

    ``streaming=True`` (given SAEs only: fitting needs the stored capture) selects in one pass
    over the text that keeps no activations, only the SAEs' sparse codes in temporary files
    (:mod:`sae_unlearn.selection.streaming`): host memory does not grow with the number of tokens,
    the selection is the stored path's, and the stage's ``store`` and ``forget_mask`` are ``None``.
    ``max_length`` truncates texts to that many tokens. A hook whose SAE has no forget-specific
    latent is scored 0.5 and left out of the choice (``stage.selection.skipped``), on either path.

    ``positions`` says which tokens the latents and the layer are scored on. ``"all"`` (default):
    every token of the forget texts against every token of the retain texts; on the secrets model
    that finds the forget *people* (latents firing on their names). ``"answer"``: only the token
    where a fact is recalled, the last token of each forget fact's question (``data.split``)
    against the same token of each retain fact's question, which locates what is asked (a
    passcode, say) rather than whom it is about. The SAEs are fitted on every token either way.

    Given SAEs are fed what they were trained on, as their metadata records it
    (:mod:`sae_unlearn.saes.inputs`): BOS first or not, texts cut at their context size, residual
    activations centred per token for SAEs trained on TransformerLens's centred writing weights, an
    ``expected_average_only_in`` scaling factor estimated on these texts when none is folded in; a
    setting that cannot be honoured warns.
    """
    if "fit_config" in settings:  # the keyword before SAEStageConfig: how SAEs are fitted
        settings["fit"] = settings.pop("fit_config")
    if isinstance(config, SAEFitConfig):
        settings.setdefault("fit", config)
        config = None
    if isinstance(saes, int | float) and not isinstance(saes, bool):
        raise TypeError(
            f"saes={saes!r}: the fifth argument is the SAEs to use; pass the number of latents as n_latents=..."
        )
    cfg = stage_config(config, settings, 64, "sae_stage")
    check_forget_retain(data.forget_texts, data.retain_texts)
    if cfg.positions == "answer":
        check_forget_retain([q.prompt for q in data.split.forget], [q.prompt for q in data.split.retain])
    batch_size, max_length = cfg.batch_size, cfg.max_length
    given = None if saes is None else (dict(saes) if isinstance(saes, Mapping) else load_saes(saes))
    texts = data.forget_texts + data.retain_texts
    inputs = CaptureInputs(bos=None, max_length=max_length, specs={})
    if given is not None:
        hooks = model.validate_hooks(list(given))
        d_sae = min(int(s.cfg.d_sae) for s in given.values())
        inputs = capture_inputs(model, given, texts, max_length)
        given = _fold_norm_scaling(model, given, texts, inputs, batch_size)
    else:
        fit_config = cfg.fit or SAEFitConfig()
        hooks = [resid_post(layer) for layer in range(model.n_layers)]
        d_sae = fit_config.expansion_factor * model.d_model
    cfg.check_width(d_sae)
    if cfg.streaming:
        if given is None:
            raise ValueError(
                "streaming=True needs given SAEs (saes=...): fitting SAEs trains on the stored capture. "
                "Fit them once (streaming=False), then select with streaming=True and saes=fit.path."
            )
        return _streaming_stage(model, data, given, hooks, saes, cfg, progress)
    store = capture_activations(
        model, texts, hooks, batch_size=batch_size, max_length=inputs.max_length, progress=progress, bos=inputs.bos
    )
    forget_mask = store.seq_index < len(data.forget_texts)
    if given is not None:
        first = next(store.iter_shards())
        for h, sae in given.items():
            check_sae_matches(sae, h, int(first[h].shape[-1]))
        fit = FittedSAEs(
            saes=given,
            stats={h: reconstruction_stats(sae, store[h], hook=h) for h, sae in given.items()},
            config=None,
            path=None,
            pretrained=True,
            source=None if isinstance(saes, Mapping) else str(saes),
        )
    else:
        fit = fit_saes(
            store,
            hooks,
            fit_config,
            out_dir=out_dir,
            model_name=data.name,
            progress=progress,
            prepend_bos=model.prepends_bos,
        )
    editable = _editable(hooks)
    sel_store, sel_mask = store, forget_mask
    if cfg.positions == "answer":  # the token before each fact's answer, forget vs retain questions
        prompts = [q.prompt for q in data.split.forget] + [q.prompt for q in data.split.retain]
        asked = capture_activations(model, prompts, hooks, batch_size=batch_size, progress=False, bos=inputs.bos)
        sel_store = asked.select_rows(asked.last_token_rows())
        sel_mask = sel_store.seq_index < len(data.split.forget)
    at = cfg.replaced({"candidates": cfg.candidates or editable})
    result = select_layer_and_latents(
        fit.saes, sel_store, sel_mask, at, model_name=None if given is not None else data.name
    )
    sel = result.latents
    pair = build_subspaces(fit.saes[result.hook].W_dec, sel.relevant, sel.irrelevant)
    return SAEStage(
        store=store, forget_mask=forget_mask, fit=fit, selection=result, subspaces=pair, positions=cfg.positions
    )


NORM_SCALING_TEXTS = 256
"""Texts (spread over forget and retain) an ``expected_average_only_in`` scaling factor is estimated on."""


def _fold_norm_scaling(
    model: HookedModel, saes: dict[str, SAE], texts: list[str], inputs: CaptureInputs, batch_size: int
) -> dict[str, SAE]:
    """``saes`` with each missing ``expected_average_only_in`` scaling factor estimated on up to
    :data:`NORM_SCALING_TEXTS` of the stage's texts and folded into a copy (the stored and the
    streaming paths estimate it on the same texts)."""
    need = [h for h, s in inputs.specs.items() if s.needs_norm_scaling]
    if not need:
        return saes
    sample = texts[:: max(1, len(texts) // NORM_SCALING_TEXTS)][:NORM_SCALING_TEXTS]
    acts = capture_activations(
        model, sample, need, batch_size=batch_size, max_length=inputs.max_length, progress=False, bos=inputs.bos
    )
    return {h: fold_norm_scaling_factor(sae, acts[h], h) if h in need else sae for h, sae in saes.items()}


def _editable(hooks: list[str]) -> list[str] | None:
    """Hooks with the default edit upstream (the layer and the EDIT_DEPTH - 1 blocks before it)."""
    editable = [h for h in hooks if (layer := last_writer_layer(h)) is not None and layer >= EDIT_DEPTH - 1]
    if not editable:
        warnings.warn(
            f"no hook among {hooks} has {EDIT_DEPTH} blocks upstream to edit; choosing among all of them.",
            UserWarning,
            stacklevel=3,
        )
    return editable or None


def _streaming_stage(
    model: HookedModel,
    data: PipelineData,
    given: dict[str, SAE],
    hooks: list[str],
    source: object,
    cfg: SAEStageConfig,
    progress: bool,
) -> SAEStage:
    at = cfg.replaced({"candidates": cfg.candidates or _editable(hooks)})
    result = select_layer_and_latents_streaming(
        model, given, data.forget_texts, data.retain_texts, at, progress=progress
    )
    fit = FittedSAEs(
        saes=given,
        stats=result.sae_stats,
        config=None,
        path=None,
        pretrained=True,
        source=None if isinstance(source, Mapping) else str(source),
    )
    sel = result.latents
    pair = build_subspaces(given[result.hook].W_dec, sel.relevant, sel.irrelevant)
    return SAEStage(store=None, forget_mask=None, fit=fit, selection=result, subspaces=pair)


def check_stage(stage: SAEStage, d_model: int | None = None, source: str = "the model") -> None:
    """Fail before any training step when the stage's parts disagree: every selected latent is one of
    its SAE's (``< d_sae``), and with ``d_model`` every residual SAE reads ``d_model`` and the
    subspaces live in it. Raises :class:`~sae_unlearn.saes.loading.SAEMismatchError` naming the hook,
    both widths and the fix (a method would otherwise stop on a raw size mismatch)."""
    selections = getattr(stage.selection, "selections", None) or {stage.selection.hook: stage.selection.latents}
    for hook, sae in stage.fit.saes.items():
        d_in, d_sae = int(sae.cfg.d_in), int(sae.cfg.d_sae)
        if d_model is not None and "resid" in hook and d_in != d_model:
            raise SAEMismatchError(
                f"the stage's SAE at {hook!r} reads d_in={d_in}, but {source} has d_model={d_model} there: the "
                f"stage was built on another model. Run sae_stage on this model (or give it SAEs trained on this "
                f"model, d_in={d_model})."
            )
        sel = selections.get(hook)
        latents = [] if sel is None else [int(i) for i in torch.cat([sel.relevant, sel.irrelevant]).tolist()]
        if latents and max(latents) >= d_sae:
            raise SAEMismatchError(
                f"the stage's latents at {hook!r} go up to {max(latents)}, but its SAE there has d_sae={d_sae}: "
                "they were selected on another, wider SAE. Re-run sae_stage with this SAE, or give the method the "
                "SAE the latents were selected on."
            )
    dim = int(stage.subspaces.relevant.basis.shape[0])
    if d_model is not None and dim != d_model:
        raise SAEMismatchError(
            f"the stage's subspaces at {stage.selection.hook!r} live in {dim} dimensions, but {source} has "
            f"d_model={d_model}: they were built from an SAE of another model. Run sae_stage on this model."
        )


def _zoo_name(model_dir: str | Path) -> str | None:
    """The zoo entry a model folder is (its ``zoo_card.json``), if it is one."""
    card = Path(model_dir) / "zoo_card.json"
    if not card.is_file():
        return None
    name = read_json(card, "zoo card").get("name")
    return str(name) if name in ZOO else None


def load_method(
    method: str,
    model_dir: str | Path,
    stage: SAEStage,
    settings: dict | None = None,
    device: str = "auto",
    dtype: str | torch.dtype = "float32",
) -> tuple[HookedModel, UnlearningMethod]:
    """A fresh copy of the model from ``model_dir`` (in ``dtype``) and a registered method configured
    from the stage: the method's config defaults updated by ``settings``, at the selected layer's hook.

    The method and its settings are checked before the model is loaded: an unknown method or
    setting fails at once with the close match, a method that needs a model which can refuse
    (UniErase) is refused on a zoo model never trained to, and a stage whose latents are not its
    SAEs' fails (:func:`check_stage`); once loaded, the stage's SAEs and subspaces must be the
    model's width. Nothing trains before these checks.
    """
    if "hook" in (settings or {}):
        raise ValueError("settings['hook']: the hook is the selected layer's (stage.selection.hook); leave it out.")
    cls = get_method(method)
    if (name := _zoo_name(model_dir)) is not None and (why := why_method_cannot_run(method, name)):
        raise ValueError(f"method {why}. Nothing was loaded.")
    check_stage(stage)
    m = cls.from_stage(stage, {**(settings or {}), "hook": stage.selection.hook})
    model = load_model(model_dir, device=device, dtype=dtype)
    check_stage(stage, model.d_model, str(model_dir))
    return model, m


def unlearn(
    method: str,
    model_dir: str | Path,
    data: PipelineData,
    stage: SAEStage,
    settings: dict | None = None,
    *,
    progress: bool = True,
    on_step: Callable[[dict], None] | None = None,
    **load: Any,
) -> tuple[HookedModel, UnlearningResult]:
    """Load a fresh copy of the model from ``model_dir`` and unlearn with a registered method.

    Every method gets the same hook (the selected layer), parameters, data and budget. ``load``:
    how the copy is loaded, ``device`` (default ``"auto"``) and ``dtype`` (default ``"float32"``),
    as :func:`load_method` takes them.
    """
    check_keywords("unlearn", load, ("device", "dtype"))
    model, m = load_method(method, model_dir, stage, settings, load.get("device", "auto"), load.get("dtype", "float32"))
    result = m.apply(model, data.forget_texts, data.retain_texts, progress=progress, on_step=on_step)
    return model, result
