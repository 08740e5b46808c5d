"""Third-party samplers arrive through the ``dit_demo.samplers`` entry-point group."""

from __future__ import annotations

import sys
import textwrap

import pytest

import samplers
from dit_demo.runtime.engine import sample
from dit_demo.runtime.request import Lane


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A fake installed distribution: a module plus a dist-info folder declaring the entry point."""
    (tmp_path / "lab_plugin_sampler.py").write_text(
        textwrap.dedent("""
        from diffusers import DDIMScheduler
        from samplers import Sampler

        SAMPLER = Sampler(name="lab_ddim_trailing", label="Lab DDIM", description="A plugin for tests.",
                          scheduler_class=DDIMScheduler, default_steps=10)
    """)
    )
    dist = tmp_path / "lab_plugin_sampler-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-plugin-sampler\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[dit_demo.samplers]\nlab = lab_plugin_sampler:SAMPLER\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "lab_ddim_trailing"
    samplers.unregister("lab_ddim_trailing")
    sys.modules.pop("lab_plugin_sampler", None)


def test_entry_point_plugin_registers_and_samples(installed_plugin, small_bundle):
    assert installed_plugin not in samplers.names()
    samplers.load_plugins(force=True)
    assert installed_plugin in samplers.names()
    assert samplers.get(installed_plugin).label == "Lab DDIM"
    result = sample(small_bundle, [Lane(installed_plugin, 4, 1, seed=0)])[0]
    assert result.nfe == 4 and result.latents.abs().max() > 0


def test_register_refuses_duplicates_and_non_samplers():
    with pytest.raises(ValueError, match="already registered"):
        samplers.register(samplers.get("ddim"))
    with pytest.raises(TypeError):
        samplers.register("ddim")


def test_every_builtin_declares_its_metadata():
    for sampler in samplers.all_samplers():
        assert sampler.label and sampler.description and sampler.default_steps >= 1
        assert sampler.nfe_per_step in (1, 2)
    assert samplers.get("heun").nfe_per_step == 2 and samplers.get("ddpm").uses_variance
    assert {"ddpm", "ddim", "dpmpp_2m", "dpmpp_3m", "dpmpp_sde", "euler", "euler_a", "heun", "unipc"} <= set(
        samplers.names()
    )


def test_a_plugin_whose_scheduler_breaks_the_contract_is_refused_by_name():
    class NoStep:  # what a half-written scheduler looks like: it cannot take a step
        @classmethod
        def from_config(cls, config):
            return cls()

        def set_timesteps(self, n):
            pass

        def scale_model_input(self, x, t):
            return x

    broken = samplers.Sampler(name="broken", label="Broken", description="No step.", scheduler_class=NoStep)
    with pytest.raises(TypeError, match=r"NoStep has no step; .*timesteps, init_noise_sigma"):
        samplers.register(broken)
    assert "broken" not in samplers.names()
    with pytest.raises(ValueError, match="built-in"):
        samplers.unregister("ddim")


def test_every_builtin_scheduler_keeps_the_contract_the_engine_relies_on(small_bundle):
    for sampler in samplers.all_samplers():
        scheduler = sampler.build(small_bundle.scheduler_config, 4)
        assert isinstance(scheduler, samplers.SchedulerContract), sampler.name
        assert len(scheduler.timesteps) >= 4 and float(scheduler.init_noise_sigma) >= 1.0
