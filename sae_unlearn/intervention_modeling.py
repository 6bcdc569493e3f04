"""Plain-transformers loader of an SAE-intervention export (shipped in the export as ``intervention_modeling.py``).

A model unlearned by a weight-free method (SAE clamping, DSG) is exported as its unchanged base
weights plus ``intervention/`` (the SAE and the latent rewrite). Its ``config.json`` names a
``model_type`` transformers does not know (``sae_unlearn_<base>``) and an ``auto_map`` to this
file, so ``AutoModelForCausalLM.from_pretrained(path)`` refuses the folder until it is given
``trust_remote_code=True``; it can never quietly load the original model, which still knows
everything the intervention hides. With it, :class:`SAEUnlearnForCausalLM` loads the base
architecture's own class (weights, tying and generation are the base's: a subclass whose only
additions are two hooks) and installs the rewrite of ``intervention_runtime.py`` at the decoder
layer of the SAE's hook (a forward hook on its output for ``hook_resid_post``, a pre-hook on its
input for ``hook_resid_pre``) plus a pre-hook on the whole model that records each pass's
positions, mask and KV-cache length.

Architecture-neutral: the base classes are named in ``config.json`` (``sae_unlearn`` entry) and
looked up in ``transformers``; the layer list's path was found at export time. This file imports
only torch, transformers and the runtime shipped beside it; it is the same file in every export.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import Tensor

from .intervention_runtime import (
    CONFIG_KEY,
    MODELING_FILE,
    RUNTIME_FILE,
    SPEC_FILE,
    LatentRewrite,
    SparseCoder,
    check_spec_against_sae,
    parse_site,
    read_spec,
    sae_folder,
)

_CONFIGS: dict[tuple[str, str], Any] = {}
_MODELS: dict[tuple[str, Any], type] = {}


def _transformers_class(name: str, what: str) -> type:
    cls = getattr(transformers, name, None)
    if not isinstance(cls, type):
        raise ValueError(
            f"config.json names {what} {name!r}, which transformers {transformers.__version__} does not have; "
            "install the transformers version the model was exported with."
        )
    return cls


def _meta(config_dict: dict, where: Any) -> dict:
    meta = config_dict.get(CONFIG_KEY)
    if not isinstance(meta, dict) or not all(
        isinstance(meta.get(k), str) for k in ("base_config_class", "base_model_class", "layers", "hook")
    ):
        raise ValueError(f"{where}: config.json's '{CONFIG_KEY}' entry is missing or damaged; export the model again.")
    return meta


def config_class(base_name: str, model_type: str) -> Any:
    """The base config class (e.g. ``LlamaConfig``) under the export's own ``model_type``."""
    key = (base_name, model_type)
    if key not in _CONFIGS:
        base = _transformers_class(base_name, "the config class")
        _CONFIGS[key] = type(f"SAEUnlearn{base.__name__}", (base,), {"model_type": model_type})
    return _CONFIGS[key]


class SAEUnlearnConfig(transformers.PretrainedConfig):
    """``AutoConfig``'s entry point: returns the base config class's instance (under the export's
    ``model_type``, so that saving it keeps the folder an intervention export)."""

    model_type = "sae_unlearn"

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        config_dict, _ = transformers.PretrainedConfig.get_config_dict(pretrained_model_name_or_path, **dict(kwargs))
        meta = _meta(config_dict, pretrained_model_name_or_path)
        sub = config_class(meta["base_config_class"], str(config_dict["model_type"]))
        return sub.from_pretrained(pretrained_model_name_or_path, **kwargs)


class InterventionModel:
    """What the exported model adds to its base class: the SAE intervention, installed on load."""

    sae_unlearn_intervention: LatentRewrite | None = None
    sae_unlearn_hook: str = ""
    _sae_unlearn_folder: Path | None = None

    def _install_intervention(self, folder: Path) -> None:
        model: Any = self
        meta = _meta(model.config.to_dict(), folder)
        iv_dir = folder / str(meta.get("intervention", "intervention"))
        spec = read_spec(iv_dir)
        if spec["hook"] != meta["hook"]:
            raise ValueError(
                f"{iv_dir / SPEC_FILE} names hook {spec['hook']!r} but config.json says {meta['hook']!r}; "
                "export the model again."
            )
        layer, site = parse_site(spec["hook"])
        layers = model.get_submodule(meta["layers"])
        if not isinstance(layers, torch.nn.ModuleList) or not 0 <= layer < len(layers):
            raise ValueError(
                f"{iv_dir / SPEC_FILE} names hook {spec['hook']!r}, but the model has "
                f"{len(layers) if isinstance(layers, torch.nn.ModuleList) else 'no'} layers at {meta['layers']!r}; "
                "export the model again."
            )
        sae_dir = sae_folder(iv_dir, spec)
        coder = SparseCoder.load(sae_dir, spec["hook"])
        check_spec_against_sae(spec, coder.cfg, iv_dir / SPEC_FILE)
        rewrite = LatentRewrite(spec["rule"], spec["latents"], spec["values"], spec.get("threshold"), coder.d_sae)

        def edit(act: Tensor) -> Tensor:
            if coder.device != act.device:
                coder.to(act.device)
            out = rewrite.apply(act.to(coder.dtype), coder.encode, coder.decode)
            return act if out is None else out.to(act.dtype)

        def after_layer(module: Any, args: Any, output: Any) -> Any:  # noqa: ARG001 - forward hook signature
            if isinstance(output, tuple):
                return (edit(output[0]), *output[1:])
            return edit(output)

        def before_layer(module: Any, args: Any, kwargs: dict) -> Any:  # noqa: ARG001 - forward pre-hook signature
            if args:
                return (edit(args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": edit(kwargs["hidden_states"])}

        def keep_call(module: Any, args: Any, kwargs: dict) -> None:  # noqa: ARG001 - forward pre-hook signature
            rewrite.note_call(kwargs)

        model.register_forward_pre_hook(keep_call, with_kwargs=True)
        if site == "post":
            layers[layer].register_forward_hook(after_layer)
        else:
            layers[layer].register_forward_pre_hook(before_layer, with_kwargs=True)
        self.sae_unlearn_intervention = rewrite
        self.sae_unlearn_hook = spec["hook"]
        self._sae_unlearn_folder = folder

    def save_pretrained(self, save_directory: Any, *args: Any, **kwargs: Any) -> Any:
        """The base's ``save_pretrained`` plus the intervention folder and this code, so the copy is
        an intervention export too."""
        out = super().save_pretrained(save_directory, *args, **kwargs)  # type: ignore[misc]
        target, here = Path(save_directory), Path(__file__).parent
        for name in (MODELING_FILE, RUNTIME_FILE):
            shutil.copyfile(here / name, target / name)
        if self._sae_unlearn_folder is not None:
            meta = _meta(self.config.to_dict(), target)  # type: ignore[attr-defined]
            name = str(meta.get("intervention", "intervention"))
            shutil.copytree(self._sae_unlearn_folder / name, target / name, dirs_exist_ok=True)
        return out


def _share_weight_conversions(pairs: list[tuple[str, str]]) -> None:
    """transformers renames some architectures' checkpoint keys on load and back on save (GPT-NeoX's
    ``embed_out`` is the model's ``lm_head``), looked up by class name and ``model_type``: give each
    new name (the subclass's, the export's ``model_type``) the base's conversions."""
    try:
        from transformers.conversion_mapping import (
            get_checkpoint_conversion_mapping,
            register_checkpoint_conversion_mapping,
        )
    except ImportError:  # older transformers: no conversion mappings
        return
    for new, old in pairs:
        mapping = get_checkpoint_conversion_mapping(old)
        if mapping is not None and get_checkpoint_conversion_mapping(new) is None:
            register_checkpoint_conversion_mapping(new, mapping)


def model_class(base: type, config_cls: Any, base_model_type: str) -> type:
    """``base`` (e.g. ``LlamaForCausalLM``) with :class:`InterventionModel` mixed in."""
    key = (base.__name__, config_cls)
    if key not in _MODELS:
        name = f"SAEUnlearn{base.__name__}"
        _share_weight_conversions([(name, base.__name__), (str(config_cls.model_type), base_model_type)])
        _MODELS[key] = type(name, (InterventionModel, base), {"config_class": config_cls})
    return _MODELS[key]


class SAEUnlearnForCausalLM:
    """``AutoModelForCausalLM``'s entry point: ``from_pretrained(folder)`` returns the base model
    class's instance with the intervention installed. Every other way of building it raises, since
    it would give the model without its intervention."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(
            "an SAE-intervention export is built only by from_pretrained(folder, trust_remote_code=True), which "
            "reads its intervention/ folder; without it the model would be the original one."
        )

    @classmethod
    def register_for_auto_class(cls, auto_class: Any = "AutoModelForCausalLM") -> None:
        """Nothing to register: :meth:`from_pretrained` builds the base class."""

    @classmethod
    def from_config(cls, *args: Any, **kwargs: Any) -> Any:
        cls(*args, **kwargs)  # raises

    _from_config = from_config

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *model_args: Any, **kwargs: Any) -> Any:
        folder = Path(str(pretrained_model_name_or_path)).expanduser()
        if not folder.is_dir():
            raise ValueError(
                f"{pretrained_model_name_or_path!r}: an SAE-intervention export loads from a local folder (it reads "
                "its intervention/ files); download it first, e.g. huggingface_hub.snapshot_download(repo_id)."
            )
        config = kwargs.pop("config", None)
        if config is None or CONFIG_KEY not in config.to_dict():
            config = SAEUnlearnConfig.from_pretrained(folder, **{k: v for k, v in kwargs.items() if k == "revision"})
        meta = _meta(config.to_dict(), folder)
        base = _transformers_class(meta["base_model_class"], "the model class")
        cls_ = model_class(base, type(config), str(meta.get("base_model_type", "")))
        model = cls_.from_pretrained(folder, *model_args, config=config, **kwargs)  # type: ignore[attr-defined]
        model._install_intervention(folder)
        return model
