"""Feed an SAE the activations it was trained on, as its sae-lens metadata records them.

A pretrained SAE learned the activations of the model *as its trainer ran it*: sae-lens on
TransformerLens's ``HookedTransformer``, sometimes with processed weights, BOS prepended, texts cut
to a context size, activations rescaled. The toolkit runs the plain Hugging Face model (through
TransformerLens's bridge, which processes no weight) on its own tokenization. This module reads an
SAE's metadata and says how activations must be prepared for it (:func:`sae_input_spec`); every
path that encodes activations with an SAE goes through :func:`prepare_sae_input` (selection, both
paths; reconstruction statistics; clamping's measurements; the intervention's rewrite; splicing;
contexts), so they all read the same inputs. What is honoured, and how:

- ``model_from_pretrained_kwargs.center_writing_weights`` (``gpt2-small-res-jb``): TransformerLens
  centred every matrix and bias that writes into the residual stream, so its residual stream has
  zero mean over ``d_model`` at every token. At a residual-stream site or a write into it
  (:data:`~sae_unlearn.intervention_runtime.RESIDUAL_WRITE_SITE`: ``hook_resid_pre/mid/post``,
  ``hook_attn_out``, ``hook_mlp_out``, ``hook_embed``) the plain model's activation minus its
  per-token mean is exactly TransformerLens's; the activation is centred before encoding. Every
  read of the residual stream goes through a LayerNorm, which removes that mean, so sites after
  one (``ln*.hook_normalized``, ``attn.hook_q/k/v/z``, ``mlp.hook_pre/post``) are unchanged and
  need nothing. An edit written back keeps the plain model's mean: an intervention adds
  ``decode(f') - decode(f)`` to the activation as it is, splicing adds the mean back to the
  reconstruction; what reaches the next LayerNorm is then TransformerLens's plus the same edit.
  TransformerLens centres only pre-LayerNorm models: on an RMSNorm model (Llama, Gemma) it skips
  the option, so such an SAE saw uncentred activations (:func:`check_sae_inputs` records that in
  its metadata, with a warning). ``fold_ln``, ``fold_value_biases`` and
  ``refactor_factored_attn_matrices`` change no residual site; where they change the site (LayerNorm
  outputs; attention values, ``z``, results) they cannot be honoured and warn.
- ``prepend_bos``: the SAE stage tokenizes with BOS first, or without, as the SAE was trained,
  whatever the tokenizer does (:func:`capture_inputs`, :meth:`HookedModel.tokenize`); the BOS
  position is left out of every statistic, as the capture always does. Weight-free methods
  measure and rewrite the model's inputs as its callers tokenize them (an intervention cannot
  change what it is fed); a difference warns when the intervention is installed.
- ``context_size``: the SAE stage truncates texts to the smallest context size of its SAEs
  (positions past it were never seen in training), and warns when that cuts a text.
- ``normalize_activations``: ``constant_norm_rescale`` and ``layer_norm`` are applied by sae-lens's
  own ``encode``/``decode`` (per token, the scale kept from encode to decode; :class:`SAECodec`
  keeps it for a rewrite that decodes twice). ``expected_average_only_in`` needs the scaling
  factor the training estimated, which sae-lens folds into the weights when its registry records
  it; otherwise the SAE stage estimates it on its texts (``sqrt(d_in) / mean norm``, as sae-lens's
  training does) and folds it into a copy (:func:`fold_norm_scaling_factor`, with a warning); an SAE
  used elsewhere without it warns and is fed unscaled activations.
- ``apply_b_dec_to_input``: sae-lens's ``encode`` (and the exported models' ``SparseCoder``).
- ``hook_name`` and ``d_in``: an SAE used at another hook or on another width is refused
  (:func:`~sae_unlearn.saes.loading.check_sae_matches`); activations are cast to the SAE's dtype
  and device before encoding (a float32 SAE on a bfloat16 model encodes in float32).

A setting that cannot be honoured warns (:class:`SAEMetadataWarning`), naming the SAE's hook, the
setting and what is done instead: ``hook_head_index``, a ``seqpos_slice`` other than "every
position", model keyword arguments the toolkit does not apply.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from sae_lens import SAE
from torch import Tensor

from sae_unlearn.intervention_runtime import centred_input

if TYPE_CHECKING:
    from sae_unlearn.models.loading import HookedModel


class SAEMetadataWarning(UserWarning):
    """An SAE's metadata asks for inputs the toolkit cannot give it (the message says what it does instead)."""


_LAYERNORM_READ_SITE = re.compile(
    r"^(ln_final\..+|blocks\.\d+\.(ln1|ln2)\..+|blocks\.\d+\.attn\.hook_(q|k|v|z|rot_q|rot_k|attn_scores|pattern)"
    r"|blocks\.\d+\.mlp\.hook_(pre|pre_linear|post))$"
)
"""Sites that read the residual stream only through a LayerNorm: centred writing weights leave them as they are."""
_CHANGED_BY: dict[str, re.Pattern] = {
    "fold_ln": re.compile(r"^(ln_final|blocks\.\d+\.(ln1|ln2))\.hook_normalized$"),
    "fold_value_biases": re.compile(r"^blocks\.\d+\.attn\.hook_(v|z|result)$"),
    "refactor_factored_attn_matrices": re.compile(r"^blocks\.\d+\.attn\.hook_(q|k|v|z|result)$"),
}
"""TransformerLens's other weight processing, and the sites where it changes the activations."""
_NO_EFFECT_KWARGS = frozenset(
    {
        "center_writing_weights",  # read per site by sae_input_spec, as are the three below
        *_CHANGED_BY,
        "center_unembed",  # the logits only
        "device",
        "n_devices",
        "device_map",
        "move_to_device",
        "dtype",  # the model's precision while the SAE trained; activations are cast to the SAE's dtype
        "torch_dtype",
        "default_prepend_bos",  # sae-lens tokenizes with its own prepend_bos (honoured)
        "default_padding_side",
        "trust_remote_code",
        "cache_dir",
        "local_files_only",
        "first_n_layers",
    }
)
"""``model_from_pretrained_kwargs`` the toolkit reads or that change no activation an SAE reads (others warn)."""
_NORM_STATE = ("x_norm_coeff", "ln_mu", "ln_std")
"""What sae-lens's run-time normalisations keep on the SAE from ``encode`` to ``decode``."""


@dataclass(frozen=True)
class SAEInputSpec:
    """How the activations of one SAE's site are prepared for it (from its metadata)."""

    hook: str | None
    """The site (the SAE's ``hook_name`` unless another was given)."""
    centre: bool
    """Subtract each token's mean over the last dimension before encoding (centred writing weights)."""
    prepend_bos: bool | None
    """Whether the SAE saw BOS first (``None``: not recorded)."""
    context_size: int | None
    """The training context in tokens, BOS included (``None``: not recorded)."""
    dtype: torch.dtype
    """The SAE's dtype: activations are cast to it."""
    device: torch.device
    """Where the SAE's weights are: activations are moved there."""
    needs_norm_scaling: bool
    """``normalize_activations='expected_average_only_in'`` with no scaling factor folded in."""
    unhonoured: tuple[str, ...]
    """Settings the toolkit cannot honour, each a sentence saying what it does instead (a missing
    norm scaling factor is not among them: the SAE stage estimates one)."""

    @property
    def name(self) -> str:
        return f"the SAE at {self.hook!r}" if self.hook else "an SAE without a hook_name"


def _model_kwargs(sae: SAE) -> dict:
    return dict(getattr(sae.cfg.metadata, "model_from_pretrained_kwargs", None) or {})


def sae_input_spec(sae: SAE, hook: str | None = None) -> SAEInputSpec:
    """Read ``sae``'s metadata (see the module docstring); ``hook``: the site it runs at (default:
    its ``hook_name``). Pure: warns nothing (:func:`prepare_sae_input` does)."""
    meta = sae.cfg.metadata
    site = hook or getattr(meta, "hook_name", None)
    kwargs = _model_kwargs(sae)
    centre = centred_input({"metadata": {"model_from_pretrained_kwargs": kwargs}}, site)
    unhonoured: list[str] = []
    if kwargs.get("center_writing_weights") and not centre and not (site and _LAYERNORM_READ_SITE.match(site)):
        unhonoured.append(
            "model_from_pretrained_kwargs asks for TransformerLens's centred writing weights, which change this "
            "site in a way the plain model's activation cannot be mapped to (only residual-stream sites are "
            "centred, and sites behind a LayerNorm are unchanged); it is fed the plain model's activations"
        )
    for key, sites in _CHANGED_BY.items():
        if kwargs.get(key) and site and sites.match(site):
            unhonoured.append(
                f"model_from_pretrained_kwargs asks for TransformerLens's {key}, which changes the activations at "
                "this site; it is fed the plain model's activations"
            )
    unknown = sorted(k for k in kwargs if k not in _NO_EFFECT_KWARGS)
    if unknown:
        unhonoured.append(
            f"model_from_pretrained_kwargs { ({k: kwargs[k] for k in unknown}) } are not applied (the toolkit runs "
            "the plain Hugging Face model it loaded)"
        )
    head = getattr(meta, "hook_head_index", None)
    if head is not None:
        unhonoured.append(f"hook_head_index={head}: the SAE read one attention head; it is fed the whole site")
    seqpos = getattr(meta, "seqpos_slice", None)
    if seqpos is not None and tuple(seqpos) not in ((), (None,), (None, None), (0, None), (1, None)):
        unhonoured.append(
            f"seqpos_slice={tuple(seqpos)}: the SAE was trained on those positions only; it is fed every position "
            "after BOS"
        )
    context = getattr(meta, "context_size", None)
    bos = getattr(meta, "prepend_bos", None)
    return SAEInputSpec(
        hook=site,
        centre=centre,
        prepend_bos=None if bos is None else bool(bos),
        context_size=None if context is None else int(context),
        dtype=sae.W_dec.dtype,
        device=sae.W_dec.device,
        needs_norm_scaling=sae.cfg.normalize_activations == "expected_average_only_in",
        unhonoured=tuple(unhonoured),
    )


def warn_unhonoured(spec: SAEInputSpec, stacklevel: int = 3) -> None:
    """One :class:`SAEMetadataWarning` per setting of ``spec`` that cannot be honoured (Python shows
    each distinct message once)."""
    for text in spec.unhonoured:
        warnings.warn(f"{spec.name}: {text}.", SAEMetadataWarning, stacklevel=stacklevel)


def prepare_sae_input(
    sae: SAE, x: Float[Tensor, "... d_in"], hook: str | None = None, spec: SAEInputSpec | None = None
) -> Float[Tensor, "... d_in"]:
    """The plain model's activations ``x`` at ``hook`` as ``sae`` was trained on them: on its device,
    in its dtype, centred per token where its metadata asks (what ``sae.encode`` does itself, the
    ``b_dec`` subtraction and run-time normalisation, is left to it). Warns for settings that
    cannot be honoured."""
    spec = spec or sae_input_spec(sae, hook)
    warn_unhonoured(spec)
    if spec.needs_norm_scaling:
        warnings.warn(
            f"{spec.name}: normalize_activations='expected_average_only_in' without its scaling factor (sae-lens "
            "applies none at run time): it is fed unscaled activations. Fold one in with "
            "sae_unlearn.saes.fold_norm_scaling_factor(sae, activations); sae_stage does so on its texts.",
            SAEMetadataWarning,
            stacklevel=2,
        )
    return _as_trained(x, spec)


def _as_trained(x: Tensor, spec: SAEInputSpec) -> Tensor:
    x = x.to(device=spec.device, dtype=spec.dtype)
    return x - x.mean(-1, keepdim=True) if spec.centre else x


def sae_encode(
    sae: SAE, x: Float[Tensor, "... d_in"], hook: str | None = None
) -> tuple[Float[Tensor, "... d_sae"], Float[Tensor, "... d_in"]]:
    """``sae.encode`` of the prepared ``x``, and the prepared input (the SAE's own input space)."""
    xs = prepare_sae_input(sae, x, hook)
    return sae.encode(xs), xs


def sae_reconstruct(sae: SAE, x: Float[Tensor, "... d_in"], hook: str | None = None) -> Float[Tensor, "... d_in"]:
    """The SAE's reconstruction of ``x``, in the plain model's space (the per-token mean the centring
    removed is added back), dtype and device."""
    spec = sae_input_spec(sae, hook)
    raw = x.to(device=spec.device, dtype=spec.dtype)
    xs = prepare_sae_input(sae, raw, spec=spec)
    return (sae(xs) + (raw - xs)).to(x.device, x.dtype)


class SAECodec:
    """``encode`` (of prepared inputs) and ``decode`` of one SAE for a rewrite that decodes twice
    per encode (``x + decode(f') - decode(f)``): sae-lens's ``constant_norm_rescale`` and
    ``layer_norm`` keep each token's scale on the SAE in ``encode`` and drop it in ``decode``, so it
    is put back before each decode."""

    def __init__(self, sae: SAE, hook: str | None = None):
        self.sae = sae
        self.spec = sae_input_spec(sae, hook)
        self._state: dict[str, Tensor] = {}

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        f = self.sae.encode(prepare_sae_input(self.sae, x, spec=self.spec))
        self._state = {k: self.sae.__dict__[k] for k in _NORM_STATE if k in self.sae.__dict__}
        return f

    def decode(self, f: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_in"]:
        self.sae.__dict__.update(self._state)
        return self.sae.decode(f)


def fold_norm_scaling_factor(sae: SAE, acts: Float[Tensor, "n d_in"], hook: str | None = None) -> SAE:
    """A copy of ``sae`` with ``normalize_activations='expected_average_only_in'``'s scaling factor
    estimated on ``acts`` and folded into its weights (sae-lens's ``fold_activation_norm_scaling_factor``);
    ``sae`` itself when it needs none.

    sae-lens's training scales activations by ``sqrt(d_in) / mean ‖x‖`` over its training data and
    folds the factor into the weights at the end; a registry SAE whose factor is recorded is folded
    on load. This estimates the factor on the given activations (prepared as for encoding) instead,
    with a warning: it is the mean norm at the site on these texts, not on the training corpus.
    """
    spec = sae_input_spec(sae, hook)
    if not spec.needs_norm_scaling:
        return sae
    if acts.shape[0] == 0:
        raise ValueError(f"no activations to estimate {spec.name}'s norm scaling factor on.")
    x = _as_trained(acts, spec).double()
    factor = math.sqrt(int(sae.cfg.d_in)) / float(x.norm(dim=-1).mean())
    out = copy.deepcopy(sae)
    out.fold_activation_norm_scaling_factor(factor)
    warnings.warn(
        f"{spec.name}: normalize_activations='expected_average_only_in' needs the scaling factor its training "
        f"estimated, and none is folded in; estimated on {acts.shape[0]} activations of these texts "
        f"(sqrt(d_in) / mean norm = {factor:.4g}) and folded into a copy of the SAE.",
        SAEMetadataWarning,
        stacklevel=2,
    )
    return out


def model_centres_writing_weights(model: HookedModel) -> bool:
    """Whether TransformerLens would centre this model's writing weights: LayerNorm models only
    (it skips the option for RMSNorm, where the residual stream's mean is not removed)."""
    cfg = model.bridge.cfg
    return getattr(cfg, "normalization_type", None) in ("LN", "LNPre") and not getattr(cfg, "final_rms", False)


def check_sae_inputs(model: HookedModel, sae: SAE, hook: str | None = None) -> SAEInputSpec:
    """:func:`sae_input_spec` of ``sae`` on ``model``, warning for what cannot be honoured.

    An SAE asking for centred writing weights on a model TransformerLens does not centre (RMSNorm:
    Llama, Gemma) saw uncentred activations: ``center_writing_weights=False`` is recorded in its
    metadata (so every later use, an export included, reads it so) and a warning says so."""
    kwargs = _model_kwargs(sae)
    if kwargs.get("center_writing_weights") and not model_centres_writing_weights(model):
        sae.cfg.metadata.model_from_pretrained_kwargs = {**kwargs, "center_writing_weights": False}
        norm = getattr(model.bridge.cfg, "normalization_type", None)
        warnings.warn(
            f"the SAE at {hook or getattr(sae.cfg.metadata, 'hook_name', None)!r} asks for TransformerLens's "
            f"centred writing weights, which TransformerLens applies only to LayerNorm models and skips on "
            f"{model.source!r} ({norm}): it was trained on uncentred activations. Recorded "
            "center_writing_weights=False in its metadata; it is fed the activations uncentred.",
            SAEMetadataWarning,
            stacklevel=2,
        )
    spec = sae_input_spec(sae, hook)
    if spec.prepend_bos and model.tokenizer.bos_token_id is None:
        warnings.warn(
            f"{spec.name} was trained with BOS first, but the tokenizer of {model.source!r} has no BOS token; "
            "it is fed activations without one.",
            SAEMetadataWarning,
            stacklevel=2,
        )
    warn_unhonoured(spec)
    return spec


def warn_intervention_inputs(model: HookedModel, sae: SAE, hook: str | None = None) -> None:
    """Warn when an intervention's SAE was trained with BOS otherwise than the model's callers
    tokenize: an intervention rewrites the activations of whatever the model is fed (its latents
    were measured on the same inputs, so the rewrite is consistent, but the SAE reads activations
    it was not trained on)."""
    spec = sae_input_spec(sae, hook)
    if spec.prepend_bos is None or spec.prepend_bos == model.prepends_bos:
        return
    warnings.warn(
        f"{spec.name} was trained with BOS {'first' if spec.prepend_bos else 'absent'}, but the tokenizer of "
        f"{model.source!r} {'adds' if model.prepends_bos else 'adds no'} BOS: the intervention rewrites the "
        "activations of the inputs as the model is given them (its values were measured on such inputs). "
        "Tokenize the inputs as the SAE was trained for its latents to read what they learned.",
        SAEMetadataWarning,
        stacklevel=3,
    )


@dataclass(frozen=True)
class CaptureInputs:
    """How the SAE stage tokenizes texts for a set of SAEs (one capture serves them all)."""

    bos: bool | None
    """Passed to :meth:`~sae_unlearn.models.loading.HookedModel.tokenize` (``None``: as the tokenizer does)."""
    max_length: int | None
    """Tokens per text, BOS included (``None``: the whole text)."""
    specs: dict[str, SAEInputSpec]
    """Each SAE's input spec, by hook."""


def capture_inputs(
    model: HookedModel, saes: Mapping[str, SAE], texts: Sequence[str], max_length: int | None = None
) -> CaptureInputs:
    """BOS and truncation for capturing ``texts`` for ``saes`` (checked with :func:`check_sae_inputs`).

    BOS: as the SAEs were trained (``prepend_bos``); SAEs that disagree warn, and the texts are
    tokenized as the tokenizer does. Length: at most the smallest ``context_size`` of the SAEs
    (and ``max_length``); texts cut by it are counted in a warning (their ends are not scored).
    """
    specs = {h: check_sae_inputs(model, sae, h) for h, sae in saes.items()}
    wanted = {h: s.prepend_bos for h, s in specs.items() if s.prepend_bos is not None}
    has_bos = model.tokenizer.bos_token_id is not None
    bos: bool | None = None
    if len(set(wanted.values())) > 1:
        warnings.warn(
            f"the SAEs disagree on prepend_bos ({wanted}); one capture serves them all, so the texts are "
            f"tokenized as the tokenizer does (BOS {'first' if model.prepends_bos else 'absent'}): the others see "
            "activations they were not trained on.",
            SAEMetadataWarning,
            stacklevel=2,
        )
    elif wanted:
        want = next(iter(wanted.values()))
        bos = want if want != model.prepends_bos and (has_bos or not want) else None
    contexts = {h: s.context_size for h, s in specs.items() if s.context_size}
    if contexts:
        hook = min(contexts, key=lambda h: contexts[h])
        limit = contexts[hook]
        if limit < (max_length or model.n_ctx):
            shift = 0 if bos is None else (1 if bos else -1)
            lengths = [len(ids) + shift for ids in model.tokenizer(list(texts))["input_ids"]]
            cut = sum(n > limit for n in lengths)
            if cut:
                warnings.warn(
                    f"{cut} of {len(texts)} texts are longer than context_size={limit} of the SAE at {hook!r}; they "
                    "are truncated to it for the SAE stage (the SAE never saw positions past its training context), "
                    "so their ends are not scored.",
                    SAEMetadataWarning,
                    stacklevel=2,
                )
            max_length = limit
    return CaptureInputs(bos=bos, max_length=max_length, specs=specs)
