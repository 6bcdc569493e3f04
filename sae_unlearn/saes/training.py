"""Fit one sparse autoencoder per hook point with sae-lens's own SAE and trainer classes.

SSPU (Wang et al. 2025) starts from SAEs on the model's activations. Here the activations come
from the toolkit's capture (:func:`sae_unlearn.capture.capture_activations`, one forward pass for
all hooks), so the very same rows later serve layer and latent selection. All SAEs are trained
in lockstep by ``sae_lens.training.multi_sae_trainer.MultiSAETrainer`` from one shared stream of
``{hook: batch}`` (rows aligned across hooks), each with its own ``SAETrainer`` (optimizer, lr
schedule, dead-latent tracking). Checkpoints are written during training; an interrupted fit
resumes from the last one and ends with the same weights. The result is saved in sae-lens's
disk format (``sae_lens.SAE.load_from_disk(path / hook)`` loads each SAE).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import torch
from sae_lens import SAE, JumpReLUTrainingSAE, StandardTrainingSAE, TopKTrainingSAE
from sae_lens.training.multi_sae_trainer import MultiSAETrainer

from sae_unlearn.capture.store import ActivationStore
from sae_unlearn.saes.config import SAEFitConfig
from sae_unlearn.saes.metrics import SAEStats, reconstruction_stats
from sae_unlearn.utils import atomic_directory, resolve_device, seeded, stable_hash, write_json_atomic

logger = logging.getLogger(__name__)

FIT_MANIFEST = "fit.json"
_TRAINING_CLASSES = {"topk": TopKTrainingSAE, "standard": StandardTrainingSAE, "jumprelu": JumpReLUTrainingSAE}


@dataclass
class FittedSAEs:
    """SAEs fitted per hook, with their quality statistics."""

    saes: dict[str, SAE]
    """Inference SAEs (as loaded back from disk when saved), keyed by hook name."""
    stats: dict[str, SAEStats]
    """L0, explained variance and dead fraction of each SAE on the training activations."""
    config: SAEFitConfig
    path: Path | None
    """Folder holding one sae-lens SAE folder per hook, or ``None`` when not saved."""

    @property
    def hooks(self) -> list[str]:
        return list(self.saes)


def _fit_key(config: SAEFitConfig, hooks: Sequence[str], store: ActivationStore, model_name: str) -> str:
    first = next(store.iter_shards())
    probe = [float(first[h][:64].double().sum()) for h in hooks]
    return stable_hash(
        {"cfg": config.to_dict(), "hooks": list(hooks), "n": store.n_tokens, "model": model_name, "probe": probe}
    )


def _latest_checkpoint(root: Path, hooks: Sequence[str]) -> Path | None:
    done = [p for p in root.iterdir() if p.is_dir() and p.name.isdigit() and all((p / h).is_dir() for h in hooks)]
    return max(done, key=lambda p: int(p.name)) if done else None


def fit_saes(
    store: ActivationStore,
    hooks: Sequence[str] | None = None,
    config: SAEFitConfig | None = None,
    out_dir: str | Path | None = None,
    model_name: str = "",
    progress: bool = True,
    on_log: Callable[[dict], None] | None = None,
    log_every: int = 50,
) -> FittedSAEs:
    """Fit one SAE per hook on the activations in ``store`` (sae-lens ``MultiSAETrainer``).

    Args:
        store: captured activations (rows aligned across hooks).
        hooks: which hooks to fit (default: every hook in the store).
        config: SAE architecture and training settings.
        out_dir: where to save (``out_dir/saes/<hook>/``) and checkpoint
            (``out_dir/sae_checkpoints/``). A finished fit with the same config and data is
            loaded instead of retrained; an interrupted one resumes from its last checkpoint.
        model_name: recorded in each SAE's metadata.
        progress: show sae-lens's progress bar.
        on_log: called every ``log_every`` steps with ``{"step", "hook", "l0",
            "explained_variance", "mse"}`` per SAE, measured on a fixed batch of the store
            (live training monitors; does not change the fit).
    """
    config = config or SAEFitConfig()
    hooks = list(hooks) if hooks is not None else list(store.hooks)
    missing = [h for h in hooks if h not in store.hooks]
    if missing:
        raise KeyError(f"hooks {missing} were not captured; the store holds {store.hooks}. Capture them first.")
    if store.n_tokens < config.batch_size:
        raise ValueError(
            f"the store holds {store.n_tokens} activation rows, fewer than one SAE batch "
            f"(batch_size={config.batch_size}); capture more text or lower SAEFitConfig.batch_size."
        )
    device = str(resolve_device(config.device))
    key = _fit_key(config, hooks, store, model_name)
    saes_dir = Path(out_dir) / "saes" if out_dir is not None else None
    if saes_dir is not None and (saes_dir / FIT_MANIFEST).is_file():
        manifest = json.loads((saes_dir / FIT_MANIFEST).read_text())
        if manifest.get("key") == key:
            logger.info("loading fitted SAEs from %s", saes_dir)
            return load_fitted_saes(saes_dir, device=device)

    ckpt_root = Path(out_dir) / "sae_checkpoints" / key if out_dir is not None else None
    if ckpt_root is not None:
        ckpt_root.mkdir(parents=True, exist_ok=True)
    first = next(store.iter_shards())
    sae_cls = _TRAINING_CLASSES[config.architecture]
    with seeded(config.seed):
        training_saes = {h: sae_cls(config.sae_config(int(first[h].shape[-1]), h, model_name, device)) for h in hooks}
    trainer = MultiSAETrainer(
        cfg=config.trainer_config(device, str(ckpt_root) if ckpt_root is not None else None),
        saes=training_saes,
        hook_names={h: h for h in hooks},
        data_provider=iter(()),
    )
    provider: Iterator[dict[str, torch.Tensor]] = store.iter_batches(
        hooks, config.batch_size, shuffle=True, seed=config.seed, epochs=None, drop_last=True
    )
    latest = _latest_checkpoint(ckpt_root, hooks) if ckpt_root is not None else None
    if latest is not None:
        trainer.load_checkpoint(latest)
        # sae-lens writes a checkpoint before it counts the step just taken: the steps done are
        # the samples seen over the batch size. Set every counter to that, skip as many batches,
        # and the run continues exactly as an uninterrupted one would.
        done = trainer.n_training_samples // config.batch_size
        trainer.n_training_steps = done
        for t in trainer.trainers.values():
            t.n_training_steps = done
        trainer.checkpoint_thresholds = [t for t in trainer.checkpoint_thresholds if t >= trainer.n_training_samples]
        provider = islice(provider, done, None)
        logger.info("resuming SAE fit from %s (step %d)", latest, done)
    if on_log is not None:
        provider = _logging_provider(provider, training_saes, store, hooks, on_log, log_every)
    trainer.data_provider = provider
    if not progress:
        logger.debug("sae-lens draws its own progress bar; it cannot be turned off")
    trained = trainer.fit()

    stats = {h: reconstruction_stats(trained[h], store[h]) for h in hooks}
    if saes_dir is None:
        inference = {h: _to_inference(trained[h], device) for h in hooks}
        return FittedSAEs(saes=inference, stats=stats, config=config, path=None)
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
            },
        )
    shutil.rmtree(ckpt_root, ignore_errors=True)
    return load_fitted_saes(saes_dir, device=device)


def _logging_provider(
    provider: Iterator[dict[str, torch.Tensor]],
    saes: dict[str, SAE],
    store: ActivationStore,
    hooks: Sequence[str],
    on_log: Callable[[dict], None],
    every: int,
) -> Iterator[dict[str, torch.Tensor]]:
    """Pass batches through; every ``every`` batches report each SAE's stats on a fixed sample."""
    sample = {h: store[h][: min(2048, store.n_tokens)] for h in hooks}
    for step, batch in enumerate(provider):
        if step % max(1, every) == 0:
            for h in hooks:
                st = reconstruction_stats(saes[h], sample[h])
                on_log({"step": step, "hook": h, **{k: getattr(st, k) for k in ("l0", "explained_variance", "mse")}})
        yield batch


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
    manifest = json.loads(manifest_path.read_text())
    saes = {h: SAE.load_from_disk(path / h, device=device) for h in manifest["hooks"]}
    stats = {h: SAEStats(**manifest["stats"][h]) for h in manifest["hooks"]}
    return FittedSAEs(saes=saes, stats=stats, config=SAEFitConfig.from_dict(manifest["config"]), path=path)
