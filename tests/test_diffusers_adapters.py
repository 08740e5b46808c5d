"""Each diffusers adaptation (``dit_demo/runtime/diffusers_adapters.py``) against diffusers' own,
unmodified forward on the installed diffusers, to the bit, on freshly built DiTs.

A failure names the adaptation that diverged and the diffusers code it mirrors: a diffusers release
changed that code. Bring the adapter in line with that version's source (or keep diffusers below it
in requirements.txt) before raising the bound; the README ("Two commands") says how."""

from __future__ import annotations

import copy

import diffusers
import pytest
import torch
from diffusers import DiTTransformer2DModel
from diffusers.models.activations import GELU
from diffusers.models.attention_processor import AttnProcessor2_0
from diffusers.models.embeddings import CombinedTimestepLabelEmbeddings, Timesteps
from helpers import fresh_dit

from dit_demo.runtime.block_cache import BlockCache
from dit_demo.runtime.conditioning import sharing
from dit_demo.runtime.diffusers_adapters import (
    ADAPTATIONS,
    SharedEmbedding,
    SharedTimesteps,
    SignedAttnProcessor,
    adapt_in_place,
    embed_patches,
    erf_gelu,
    fuse_qkv,
    output_layer,
    run_blocks,
    share_conditioning,
    sign_processors,
)

ADAPTERS = "dit_demo/runtime/diffusers_adapters.py"
DTYPES = [torch.float32, torch.bfloat16]
LAYOUTS = {"hub": {"equal": True}, "own": {"equal": False}, "mixed": {"equal": True, "shift_block": 1}}


def _inputs(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Four rows: two timesteps repeated, a class repeated, the null class (10) among them."""
    x = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(0)).to(dtype)
    return x, torch.tensor([999.0, 999.0, 500.0, 20.0]), torch.tensor([1, 10, 3, 3])


def _diffusers(model, x, t, y) -> torch.Tensor:
    """diffusers' own ``DiTTransformer2DModel.forward``."""
    with torch.inference_mode():
        return model(x, timestep=t, class_labels=y).sample


def _diffusers_classes(model) -> set[type]:
    """The classes of the modules and processors the adaptations swap: diffusers' own where nothing was."""
    attention = {type(m.processor) for m in model.modules() if hasattr(m, "processor")}
    embedders = {type(b.norm1.emb) for b in model.transformer_blocks}
    features = {type(b.norm1.emb.time_proj) for b in model.transformer_blocks}
    return attention | embedders | features


def _same_bits(adapted: torch.Tensor, reference: torch.Tensor, adaptation: str, mirrors: str) -> None:
    if adapted.shape == reference.shape and torch.equal(adapted, reference):
        return
    gap = (adapted.float() - reference.float()).abs().max().item() if adapted.shape == reference.shape else "shape"
    pytest.fail(
        f"The '{adaptation}' adaptation ({ADAPTERS}) no longer computes what diffusers {diffusers.__version__}'s "
        f"own {mirrors} computes (largest difference: {gap}). Check the adapter against {mirrors} in the "
        "source of this diffusers version and bring it in line, or keep diffusers below this version in "
        "requirements.txt.",
        pytrace=False,
    )


@pytest.fixture
def reference():
    """``reference(**layout)``: a fresh DiT with diffusers' own classes, checked to be untouched."""

    def make(dtype: torch.dtype = torch.float32, **layout):
        model = fresh_dit(**layout)
        model = model if dtype == torch.float32 else model.to(dtype)
        assert _diffusers_classes(model) == {AttnProcessor2_0, CombinedTimestepLabelEmbeddings, Timesteps}
        return model

    return make


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_signed_attention_processors_compute_diffusers_attention(reference, dtype):
    model = reference(dtype)
    signed = copy.deepcopy(model)
    assert sign_processors(signed) == len(model.transformer_blocks)
    assert {type(m.processor) for m in signed.modules() if hasattr(m, "processor")} == {SignedAttnProcessor}
    x, t, y = _inputs(dtype)
    _same_bits(
        _diffusers(signed, x, t, y),
        _diffusers(model, x, t, y),
        "signed attention processors",
        "AttnProcessor2_0.__call__",
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_shared_embedders_compute_diffusers_conditioning(reference, layout, dtype):
    """The hub's layout (one group), embedders of their own (a group each) and a block with the original
    code's timestep features (two groups), each shared inside ``sharing()`` as the engine runs them:
    several forwards in one block (a round in chunks), each on tensors of its own."""
    model = reference(dtype, **LAYOUTS[layout])
    shared = copy.deepcopy(model)
    assert share_conditioning(shared) == {"hub": 1, "own": 3, "mixed": 2}[layout]
    assert {type(b.norm1.emb) for b in shared.transformer_blocks} == {SharedEmbedding}
    assert {type(b.norm1.emb.time_proj) for b in shared.transformer_blocks} == {SharedTimesteps}
    x, t, y = _inputs(dtype)
    chunks = [(x[:2], t[:2], y[:2]), (x[2:], t[2:], y[2:]), (x, t.flip(0), y)]
    with sharing():
        adapted = [_diffusers(shared, *chunk) for chunk in chunks]
    mirrors = "CombinedTimestepLabelEmbeddings.forward and Timesteps.forward"
    for out, chunk in zip(adapted, chunks):
        _same_bits(out, _diffusers(model, *chunk), "shared embedders", mirrors)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("sizes", [{}, {"patch_size": 4}, {"learned_sigma": False}], ids=["p2", "p4", "eps-only"])
def test_the_split_forward_is_diffusers_forward(reference, sizes, dtype):
    """Input, blocks (split after the first, as the first-block cache splits them) and the output layer
    with unpatchify; and the cache itself at threshold 0."""
    model = reference(dtype, **sizes)
    x, t, y = _inputs(dtype)
    with torch.inference_mode():
        h = run_blocks(model, run_blocks(model, embed_patches(model, x), t, y, stop=1), t, y, start=1)
        split = output_layer(model, h, t, y)
        cache = BlockCache()
        cached = cache.forward(model, x, t, y, [(0, 0), (0, 1), (1, 0), (1, 1)], [0.0] * 4)
    expected = _diffusers(model, x, t, y)
    mirrors = "DiTTransformer2DModel.forward (input, blocks, output and unpatchify)"
    _same_bits(split, expected, "split forward", mirrors)
    _same_bits(cached, expected, "split forward (through the first-block cache)", mirrors)
    assert cache.computed == 4 and cache.reused == 0


def test_erf_gelu_is_what_diffusers_builds_for_gelu(reference):
    """The int8 lever's GELU switch against a model diffusers built with ``activation_fn="gelu"``."""
    model = reference()
    erf = DiTTransformer2DModel.from_config(model.config, activation_fn="gelu").eval()
    erf.load_state_dict(model.state_dict())
    assert {m.approximate for m in erf.modules() if isinstance(m, GELU)} == {"none"}
    switched = copy.deepcopy(model)
    assert erf_gelu(switched) == len(model.transformer_blocks)
    x, t, y = _inputs(torch.float32)
    _same_bits(_diffusers(switched, x, t, y), _diffusers(erf, x, t, y), "erf GELU", "GELU.gelu (approximate)")


def test_fused_qkv_computes_diffusers_attention(reference):
    """The int8 lever's q/k/v fusion, in fp32 (one matrix product instead of three may round
    differently; under int8 the two are equal to the bit: tests/test_levers.py)."""
    model = reference()
    fused = copy.deepcopy(model)
    assert fuse_qkv(fused) == len(model.transformer_blocks)
    attention = fused.transformer_blocks[0].attn1
    assert hasattr(attention, "to_qkv") and not hasattr(attention, "to_q")
    x, t, y = _inputs(torch.float32)
    adapted, expected = _diffusers(fused, x, t, y), _diffusers(model, x, t, y)
    gap = (adapted - expected).abs().max().item()
    if gap > 1e-6 * expected.abs().max().item():
        _same_bits(adapted, expected, "fused q/k/v", "Attention.fuse_projections and FusedAttnProcessor2_0")


def test_adapt_in_place_keeps_diffusers_outputs_and_copies_nothing(reference):
    """What every bundle does to the transformer it is handed: all adaptations, on that very module."""
    model = reference(**LAYOUTS["hub"])
    adapted = copy.deepcopy(model)
    weights = [p.data_ptr() for p in adapted.parameters()]
    made = adapt_in_place(adapted)
    assert made == {"shared embedders": 1, "signed attention processors": 3} and made.keys() == ADAPTATIONS.keys()
    assert [p.data_ptr() for p in adapted.parameters()] == weights  # the same module and weights, not a copy
    assert adapt_in_place(adapted) == made  # a second time changes nothing
    x, t, y = _inputs(torch.float32)
    with sharing():
        together = _diffusers(adapted, x, t, y)
    _same_bits(together, _diffusers(model, x, t, y), "all adaptations together", "DiTTransformer2DModel.forward")


def test_models_that_are_not_dits_are_left_alone():
    other = torch.nn.Sequential(torch.nn.Linear(2, 2))
    assert adapt_in_place(other) == {name: 0 for name in ADAPTATIONS}
    assert adapt_in_place(object()) == {name: 0 for name in ADAPTATIONS}  # a wrapper that is not a module
