"""Fit one sparse autoencoder per hook point with sae-lens's own SAE and trainer classes.

SSPU (Wang et al. 2025) starts from SAEs on the model's activations. Here the activations come
from the toolkit's capture (:func:`sae_unlearn.capture.capture_activations`, one forward pass for
all hooks), so the very same rows later serve layer and latent selection. All SAEs are trained
in lockstep by ``sae_lens.training.multi_sae_trainer.MultiSAETrainer`` from one shared stream of
``{hook: batch}`` (rows aligned across hooks), each with its own ``SAETrainer`` (optimizer, lr
schedule, dead-latent tracking). Checkpoints are written during training; a checkpoint counts
only once complete (every SAE written and flushed, its weights finite, then a ``checkpoint.json``
marker written atomically), so an interrupted fit, even one killed while writing a checkpoint,
resumes from the newest complete one and ends with the same weights. A fit whose weights turn
non-finite (a diverging learning rate) stops with an error naming the hook and the step instead
of saving a broken SAE. The result is saved in sae-lens's disk format
(``sae_lens.SAE.load_from_disk(path / hook)`` loads each SAE).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, cast

import torch
from sae_lens import SAE, JumpReLUTrainingSAE, StandardTrainingSAE, TopKTrainingSAE
from sae_lens.training import multi_sae_trainer
from sae_lens.training.multi_sae_trainer import MultiSAETrainer
from tqdm.auto import tqdm

from sae_unlearn.atomic import atomic_directory, cache_fill_lock, fsync_tree, read_json, write_json_atomic
from sae_unlearn.capture.store import ActivationStore
from sae_unlearn.saes.config import SAEFitConfig
from sae_unlearn.saes.metrics import SAEStats, reconstruction_stats
from sae_unlearn.utils import check_keywords, resolve_device, run_environment, seeded, stable_hash

logger = logging.getLogger(__name__)

FIT_MANIFEST = "fit.json"
CHECKPOINT_MARKER = "checkpoint.json"
"""Written last into a checkpoint folder: only folders holding it count as checkpoints."""
_TRAINING_CLASSES = {"topk": TopKTrainingSAE, "standard": StandardTrainingSAE, "jumprelu": JumpReLUTrainingSAE}


@dataclass
class FittedSAEs:
    """SAEs fitted per hook, with their quality statistics."""

    saes: dict[str, SAE]
    """Inference SAEs (as loaded back from disk when saved), keyed by hook name."""
    stats: dict[str, SAEStats]
    """L0, explained variance and dead fraction of each SAE on the training activations."""
    config: SAEFitConfig | None
    """How they were fitted (``None`` for pretrained SAEs)."""
    path: Path | None
    """Folder holding one sae-lens SAE folder per hook, or ``None`` when not saved."""
    history: list[dict] = field(default_factory=list)
    """Training log rows ``{"step", "hook", "l0", "explained_variance", "mse"}`` recorded every
    ``config.log_every`` steps on a fixed sample of the store (saved in ``fit.json``, restored on load)."""
    from_cache: bool = False
    """``True`` when :func:`fit_saes` loaded a finished fit instead of training."""
    pretrained: bool = False
    """``True`` for SAEs given to the SAE stage instead of fitted (:mod:`sae_unlearn.saes.pretrained`)."""
    source: str | None = None
    """Where pretrained SAEs came from (a folder or ``release:sae_id``)."""

    @property
    def hooks(self) -> list[str]:
        return list(self.saes)


def _fit_key(
    config: SAEFitConfig, hooks: Sequence[str], store: ActivationStore, model_name: str, prepend_bos: bool = True
) -> str:
    first = next(store.iter_shards())
    probe = [float(first[h][:64].double().sum()) for h in hooks]
    cfg = {k: v for k, v in config.to_dict().items() if k != "log_every"}  # monitoring: not the fit's identity
    return stable_hash(
        {
            "cfg": cfg,
            "hooks": list(hooks),
            "n": store.n_tokens,
            "model": model_name,
            "probe": probe,
        }
        | ({} if prepend_bos else {"prepend_bos": False})  # (absent when True: earlier fits keep their keys)
    )


def _complete_checkpoints(root: Path, hooks: Sequence[str]) -> list[Path]:
    """Complete checkpoints under ``root``, newest first; incomplete ones (a kill while writing) are removed."""
    complete = []
    for p in sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: -int(p.name)):
        if (p / CHECKPOINT_MARKER).is_file() and all((p / h).is_dir() for h in hooks):
            complete.append(p)
        else:
            logger.warning("removing incomplete SAE checkpoint %s (interrupted while it was written)", p)
            shutil.rmtree(p, ignore_errors=True)
    return complete


def _check_finite(saes: dict[str, SAE], step: int, config: SAEFitConfig) -> None:
    """Raise ``FloatingPointError`` naming the hook and the step if any SAE weight is not finite."""
    for hook, sae in saes.items():
        for name, p in sae.named_parameters():
            if not bool(torch.isfinite(p).all()):
                raise FloatingPointError(
                    f"the SAE at {hook!r} has non-finite weights ({name}) after {step} steps: the fit diverged. "
                    f"Lower SAEFitConfig.lr (now {config.lr}) or check the activations; nothing was saved."
                )


def _mark_checkpoint(saes: dict[str, SAE], history: list[dict], config: SAEFitConfig, path: Path | None) -> None:
    """sae-lens's ``save_checkpoint_fn``: flush the checkpoint's files, check it, then mark it complete."""
    if path is None:
        return
    step = int(path.name) // config.batch_size if path.name.isdigit() else -1
    _check_finite(saes, step, config)
    fsync_tree(path)
    write_json_atomic(path / CHECKPOINT_MARKER, {"n_training_samples": int(path.name), "history": history})


@contextlib.contextmanager
def _sae_lens_progress(progress: bool) -> Iterator[None]:
    """sae-lens's own training bar, turned off for the block when ``progress=False`` (restored after)."""
    original = multi_sae_trainer.tqdm
    multi_sae_trainer.tqdm = functools.partial(tqdm, disable=not progress)
    try:
        yield
    finally:
        multi_sae_trainer.tqdm = original


def fit_saes(
    store: ActivationStore,
    hooks: Sequence[str] | None = None,
    config: SAEFitConfig | None = None,
    out_dir: str | Path | None = None,
    *,
    model_name: str = "",
    progress: bool = True,
    on_log: Callable[[dict], None] | None = None,
    **options: Any,
) -> FittedSAEs:
    """Fit one SAE per hook on the activations in ``store`` (sae-lens ``MultiSAETrainer``).

    Args:
        store: captured activations (rows aligned across hooks).
        hooks: which hooks to fit (default: every hook in the store).
        config: SAE architecture and training settings.
        out_dir: where to save (``out_dir/saes/<hook>/``) and checkpoint
            (``out_dir/sae_checkpoints/``). A finished fit with the same config and data is
            loaded instead of retrained; an interrupted one resumes from its newest complete
            checkpoint (an incomplete one, left by a kill while it was written, is removed with a
            warning; if none is usable the fit starts afresh, also with a warning).
        model_name: recorded in each SAE's metadata.
        progress: show the training progress bar.
        on_log: called every ``config.log_every`` steps with ``{"step", "hook", "l0",
            "explained_variance", "mse"}`` per SAE, measured on a fixed batch of the store
            (live training monitors; does not change the fit). The rows are also kept in
            :attr:`FittedSAEs.history`.
        options: ``prepend_bos`` (default ``True``): whether the captured texts had BOS first
            (``HookedModel.prepends_bos``), recorded in each SAE's metadata so that it is fed the
            same way when used as a pretrained SAE; ``log_every``: overrides ``config.log_every``.

    Raises:
        FloatingPointError: an SAE's weights became non-finite (the fit diverged); nothing is saved.
    """
    config = config or SAEFitConfig()
    check_keywords("fit_saes", options, ("prepend_bos", "log_every"))
    prepend_bos = options.get("prepend_bos", True)
    if not isinstance(prepend_bos, bool):
        raise TypeError(f"prepend_bos={prepend_bos!r} must be True or False.")
    if "log_every" in options:
        config = dataclasses.replace(config, log_every=options["log_every"])  # checked by the config
    if isinstance(hooks, str):
        hooks = [hooks]
    hooks = list(hooks) if hooks is not None else list(store.hooks)
    if not hooks:
        raise ValueError("no hooks to fit SAEs on; pass hooks=[...] or capture some first.")
    missing = [h for h in hooks if h not in store.hooks]
    if missing:
        raise KeyError(f"hooks {missing} were not captured; the store holds {store.hooks}. Capture them first.")
    if store.n_tokens < config.batch_size:
        raise ValueError(
            f"the store holds {store.n_tokens} activation rows, fewer than one SAE batch "
            f"(batch_size={config.batch_size}); capture more text or lower SAEFitConfig.batch_size."
        )
    device = str(resolve_device(config.device))
    first = next(store.iter_shards())
    for h in hooks:
        if not bool(torch.isfinite(first[h]).all()):
            raise ValueError(f"the captured activations at {h!r} hold NaN or inf; check the model before fitting SAEs.")
    key = _fit_key(config, hooks, store, model_name, prepend_bos)
    saes_dir = Path(out_dir) / "saes" if out_dir is not None else None
    # one process fits into a folder while the others wait, then load its SAEs (same key) or fit their own
    lock = cache_fill_lock(saes_dir, "an SAE fit") if saes_dir is not None else contextlib.nullcontext()
    with lock:
        if saes_dir is not None and (saes_dir / FIT_MANIFEST).is_file():
            manifest = read_json(saes_dir / FIT_MANIFEST, "SAE fit manifest")
            if manifest.get("key") == key:
                logger.info("loading fitted SAEs from %s", saes_dir)
                fitted = load_fitted_saes(saes_dir, device=device)
                fitted.from_cache = True
                return fitted

        ckpt_root = Path(out_dir) / "sae_checkpoints" / key if out_dir is not None else None
        if ckpt_root is not None:
            ckpt_root.mkdir(parents=True, exist_ok=True)
        history: list[dict] = []
        trainer, training_saes = _new_trainer(config, hooks, first, model_name, device, ckpt_root, history, prepend_bos)
        done = 0
        checkpoints = _complete_checkpoints(ckpt_root, hooks) if ckpt_root is not None else []
        for ckpt in checkpoints:
            try:
                trainer.load_checkpoint(ckpt)
                marker = read_json(ckpt / CHECKPOINT_MARKER, "SAE checkpoint marker")
            except Exception as e:  # a damaged checkpoint: fall back to an older one
                logger.warning("SAE checkpoint %s could not be loaded (%s); trying an older one", ckpt, e)
                trainer, training_saes = _new_trainer(
                    config, hooks, first, model_name, device, ckpt_root, history, prepend_bos
                )
                continue
            # sae-lens writes a checkpoint before it counts the step just taken: the steps done are
            # the samples seen over the batch size. Set every counter to that, skip as many batches,
            # and the run continues exactly as an uninterrupted one would.
            done = trainer.n_training_samples // config.batch_size
            trainer.n_training_steps = done
            for t in trainer.trainers.values():
                t.n_training_steps = done
            trainer.checkpoint_thresholds = [
                t for t in trainer.checkpoint_thresholds if t >= trainer.n_training_samples
            ]
            history[:] = list(marker.get("history", []))
            logger.info("resuming SAE fit from %s (step %d)", ckpt, done)
            break
        else:
            if checkpoints:
                logger.warning("no usable SAE checkpoint under %s; the fit starts afresh", ckpt_root)
        provider = cast(
            Iterator[dict[str, torch.Tensor]],  # a list of hooks gives {hook: batch} dicts
            store.iter_batches(hooks, config.batch_size, shuffle=True, seed=config.seed, epochs=None, drop_last=True),
        )
        trainer.data_provider = _watching_provider(
            islice(provider, done, None), training_saes, store, hooks, config, history, on_log, start=done
        )
        with _sae_lens_progress(progress):
            trained = trainer.fit()
        _check_finite(trained, config.total_steps, config)

        stats = {h: reconstruction_stats(trained[h], store[h]) for h in hooks}
        if saes_dir is None:
            inference = {h: _to_inference(trained[h], device) for h in hooks}
            return FittedSAEs(saes=inference, stats=stats, config=config, path=None, history=history)
        with atomic_directory(saes_dir, overwrite=True) as tmp:
            for h in hooks:
                trained[h].save_inference_model(tmp / h)
            write_json_atomic(
                tmp / FIT_MANIFEST,
                {
                    "key": key,
                    "hooks": hooks,
                    "model_name": model_name,
                    "config": config.to_dict(),
                    "stats": {h: s.to_dict() for h, s in stats.items()},
                    "history": history,
                    "environment": run_environment(),
                },
            )
        if ckpt_root is not None:
            shutil.rmtree(ckpt_root, ignore_errors=True)
        return load_fitted_saes(saes_dir, device=device)


def _new_trainer(
    config: SAEFitConfig,
    hooks: Sequence[str],
    first: dict[str, torch.Tensor],
    model_name: str,
    device: str,
    ckpt_root: Path | None,
    history: list[dict],
    prepend_bos: bool = True,
) -> tuple[MultiSAETrainer, dict[str, SAE]]:
    """Freshly initialised (seeded) training SAEs and the sae-lens trainer that steps them."""
    sae_cls = _TRAINING_CLASSES[config.architecture]
    with seeded(config.seed):
        saes = {
            h: sae_cls(config.sae_config(int(first[h].shape[-1]), h, model_name, device, prepend_bos)) for h in hooks
        }
    trainer = MultiSAETrainer(
        cfg=config.trainer_config(device, str(ckpt_root) if ckpt_root is not None else None),
        saes=saes,
        hook_names={h: h for h in hooks},
        data_provider=iter(()),
        save_checkpoint_fn=lambda checkpoint_path: _mark_checkpoint(
            saes, history, config, None if checkpoint_path is None else Path(checkpoint_path)
        ),
    )
    return trainer, saes


def _watching_provider(
    provider: Iterator[dict[str, torch.Tensor]],
    saes: dict[str, SAE],
    store: ActivationStore,
    hooks: Sequence[str],
    config: SAEFitConfig,
    history: list[dict],
    on_log: Callable[[dict], None] | None,
    start: int = 0,
) -> Iterator[dict[str, torch.Tensor]]:
    """Pass batches through; before each, check the weights the last step wrote are finite, and
    every ``config.log_every`` steps record each SAE's stats on a fixed sample (``history``, ``on_log``)."""
    sample = {h: store[h][: min(2048, store.n_tokens)] for h in hooks}
    for step, batch in enumerate(provider, start=start):
        _check_finite(saes, step, config)
        if step % config.log_every == 0:
            for h in hooks:
                st = reconstruction_stats(saes[h], sample[h])
                row = {"step": step, "hook": h, **{k: getattr(st, k) for k in ("l0", "explained_variance", "mse")}}
                if all(math.isfinite(v) for v in row.values() if isinstance(v, float)):
                    history.append(row)
                    if on_log is not None:
                        on_log(row)
        yield {h: v.float() for h, v in batch.items()}  # SAEs train in float32 whatever the model's dtype


def _to_inference(training_sae: SAE, device: str) -> SAE:
    """The inference SAE of a trained one (through sae-lens's own save/load round trip)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        training_sae.save_inference_model(tmp)
        return SAE.load_from_disk(tmp, device=device)


def load_fitted_saes(path: str | Path, device: str = "cpu") -> FittedSAEs:
    """Load a folder written by :func:`fit_saes` (one sae-lens SAE per hook plus ``fit.json``)."""
    path = Path(path)
    manifest_path = path / FIT_MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{path} holds no fitted SAEs ({FIT_MANIFEST} missing); run fit_saes first.")
    manifest = read_json(manifest_path, "SAE fit manifest")
    saes = {h: SAE.load_from_disk(path / h, device=device) for h in manifest["hooks"]}
    stats = {h: SAEStats(**manifest["stats"][h]) for h in manifest["hooks"]}
    return FittedSAEs(
        saes=saes,
        stats=stats,
        config=SAEFitConfig.from_dict(manifest["config"]),
        path=path,
        history=list(manifest.get("history", [])),
    )
