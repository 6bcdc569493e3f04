import pytest

from sae_unlearn.models.hooks import HookNameError, hook_layer, summarize_hook_names, validate_hook_names

VALID = [f"blocks.{l}.{s}" for l in range(4) for s in ("hook_resid_post", "mlp.hook_post")] + ["hook_embed"]


def test_valid_names_pass_through():
    assert validate_hook_names("blocks.2.hook_resid_post", VALID, 4) == ["blocks.2.hook_resid_post"]


def test_layer_out_of_range_says_how_many_layers():
    with pytest.raises(HookNameError, match=r"layer 9 out of range for a model with 4 layers; use blocks.0-3"):
        validate_hook_names(["blocks.9.hook_resid_post"], VALID, 4)


def test_unknown_name_lists_valid_names():
    with pytest.raises(HookNameError) as e:
        validate_hook_names(["blocks.1.hook_resid_postt"], VALID, 4)
    msg = str(e.value)
    assert "'blocks.1.hook_resid_postt' is not in the model" in msg
    assert "blocks.{0-3}.hook_resid_post" in msg and "hook_embed" in msg


def test_empty_request_is_an_error():
    with pytest.raises(HookNameError, match="no hook names"):
        validate_hook_names([], VALID, 4)


def test_helpers():
    assert hook_layer("blocks.12.mlp.hook_post") == 12 and hook_layer("hook_embed") is None
    assert summarize_hook_names(VALID, 4)[:2] == ["blocks.{0-3}.hook_resid_post", "blocks.{0-3}.mlp.hook_post"]
