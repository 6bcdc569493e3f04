"""Configuration of SAE fitting (maps onto sae-lens's SAE and trainer configs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sae_lens import (
    JumpReLUTrainingSAEConfig,
    StandardTrainingSAEConfig,
    TopKTrainingSAEConfig,
)
from sae_lens.config import SAETrainerConfig
from sae_lens.saes.sae import SAEMetadata, TrainingSAEConfig

from sae_unlearn.utils import DictConfig

Architecture = Literal["topk", "standard", "jumprelu"]


@dataclass
class SAEFitConfig(DictConfig):
    """How SAEs are fitted, one per hook point, on captured activations."""

    architecture: Architecture = "topk"
    """``topk`` (default), ``standard`` (ReLU + L1) or ``jumprelu`` (L0)."""
    expansion_factor: int = 8
    """``d_sae = expansion_factor * d_in``."""
    k: int = 16
    """Active latents per token (``topk`` only)."""
    l1_coefficient: float = 5.0
    """Sparsity penalty (``standard`` only)."""
    l0_coefficient: float = 1.0
    """Sparsity penalty (``jumprelu`` only)."""
    lr: float = 2e-3
    """Adam learning rate (constant after warm-up)."""
    lr_warm_up_steps: int = 20
    """Linear warm-up steps."""
    batch_size: int = 512
    """Tokens per optimiser step."""
    training_samples: int = 400_000
    """Total tokens seen per SAE (activations are cycled in shuffled epochs)."""
    dead_feature_window: int = 200
    """Steps without firing after which a latent counts as dead (TopK's aux loss revives them)."""
    n_checkpoints: int = 4
    """Checkpoints written during training; an interrupted fit resumes from the last one."""
    seed: int = 0
    """Seed of the weight initialisation and of the data order."""
    device: str = "auto"
    """``auto`` (GPU when present), ``cpu`` or ``cuda``."""
    log_every: int = 50
    """Steps between the fit's recorded statistics (``FittedSAEs.history`` and ``fit_saes``'s
    ``on_log``, measured on a fixed sample of the store; they do not change the fit)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.architecture not in ("topk", "standard", "jumprelu"):
            raise ValueError(f"architecture={self.architecture!r}; choose 'topk', 'standard' or 'jumprelu'.")
        for name in ("expansion_factor", "k", "batch_size", "training_samples", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1.")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr} must be > 0.")
        if self.training_samples < self.batch_size:
            raise ValueError(
                f"training_samples={self.training_samples} is below one batch (batch_size={self.batch_size})."
            )

    @property
    def total_steps(self) -> int:
        return self.training_samples // self.batch_size

    def sae_config(
        self, d_in: int, hook_name: str, model_name: str, device: str, prepend_bos: bool = True
    ) -> TrainingSAEConfig:
        """The sae-lens training config of the SAE for one hook (``prepend_bos``: whether the captured
        texts had BOS first, recorded in its metadata)."""
        common = {
            "d_in": d_in,
            "d_sae": self.expansion_factor * d_in,
            "device": device,
            "dtype": "float32",
            "normalize_activations": "none",
            "metadata": SAEMetadata(hook_name=hook_name, model_name=model_name, prepend_bos=prepend_bos),
        }
        if self.architecture == "topk":
            if self.k > common["d_sae"]:
                raise ValueError(f"k={self.k} exceeds d_sae={common['d_sae']}; lower k or raise expansion_factor.")
            return TopKTrainingSAEConfig(k=self.k, **common)
        if self.architecture == "standard":
            return StandardTrainingSAEConfig(l1_coefficient=self.l1_coefficient, **common)
        return JumpReLUTrainingSAEConfig(l0_coefficient=self.l0_coefficient, **common)

    def trainer_config(self, device: str, checkpoint_path: str | None) -> SAETrainerConfig:
        """The sae-lens trainer config shared by every SAE of a fit."""
        return SAETrainerConfig(
            total_training_samples=self.total_steps * self.batch_size,
            train_batch_size_samples=self.batch_size,
            lr=self.lr,
            lr_end=self.lr,
            lr_warm_up_steps=self.lr_warm_up_steps,
            device=device,
            dead_feature_window=self.dead_feature_window,
            feature_sampling_window=max(1, self.total_steps),
            n_checkpoints=self.n_checkpoints if checkpoint_path else 0,
            checkpoint_path=checkpoint_path,
            save_final_checkpoint=False,
        )
