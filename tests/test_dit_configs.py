"""The DiT is built in one place: the paper's twelve configurations by name, or explicit sizes."""

from __future__ import annotations

import pytest

from dit_demo.runtime.dit import CONFIGS, build_dit, build_named


def test_the_twelve_configurations_of_the_paper():
    assert len(CONFIGS) == 12 and CONFIGS["DiT-XL/2"] == (28, 1152, 16, 2) and CONFIGS["DiT-S/8"] == (12, 384, 6, 8)


def test_a_named_configuration_has_its_sizes():
    model = build_named("DiT-S/8", num_classes=7, latent_size=16, learned_sigma=False)
    c = model.config
    assert (c.num_layers, c.num_attention_heads * c.attention_head_dim, c.patch_size) == (12, 384, 8)
    assert (c.num_embeds_ada_norm, c.sample_size, c.out_channels) == (7, 16, 4)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: build_named("DiT-M/2", 10, 8), "Unknown DiT configuration 'DiT-M/2'; choose one of DiT-S/2"),
        (lambda: build_dit(2, 100, 3, 10, 8), "does not split into 3 heads"),
    ],
)
def test_bad_sizes_are_explained(build, message):
    with pytest.raises(ValueError, match=message):
        build()
