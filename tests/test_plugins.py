"""Third-party samplers arrive through the ``dit_demo.samplers`` entry-point group."""

from __future__ import annotations

import inspect
import sys
import textwrap

import pytest
import torch

import samplers
from dit_demo.runtime.engine import sample
from dit_demo.runtime.request import Lane
from samplers import base


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A fake installed distribution: a module plus a dist-info folder declaring the entry point."""
    samplers.load_plugins()  # what was installed before it, so that only a forced reload finds it
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
    assert {"ddpm", "ddim", "dpmpp_2m", "dpmpp_3m", "dpmpp_2m_sde", "euler", "euler_ancestral", "heun", "unipc"} <= set(
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
        # an adaptive solver knows only its first time before it steps, and caps the rest (samplers/flow_adaptive.py)
        adaptive = getattr(scheduler, "adaptive", False) is True
        assert len(scheduler.timesteps) >= (1 if adaptive else 4) and float(scheduler.init_noise_sigma) >= 1.0
        assert not adaptive or (scheduler.max_nfe >= 4 and callable(scheduler.close))


def test_builds_are_fresh_schedulers_equal_to_from_config_and_one_lane_stepping_leaves_the_next_alone(
    small_bundle, monkeypatch
):
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    # prototypes are copied for diffusers' classes only; SiT's flow scheduler: tests/test_sit.py
    for sampler in (s for s in samplers.all_samplers() if s.scheduler_class.__module__.startswith("diffusers.")):
        stepped = sampler.build(small_bundle.scheduler_config, 4, learned_variance=False)
        noise = {"generator": torch.Generator()} if "generator" in inspect.signature(stepped.step).parameters else {}
        for t in stepped.timesteps[:2]:  # history, step index and noise state of a running lane
            stepped.step(torch.ones_like(x), t, stepped.scale_model_input(x, t), **noise)
        with monkeypatch.context() as patch:  # the next build copies the prototype: no from_config
            patch.setattr(sampler.scheduler_class, "from_config", None)
            again = sampler.build(small_bundle.scheduler_config, 4, learned_variance=False)
        config = {k: v for k, v in small_bundle.scheduler_config.items() if not k.startswith("_")}
        config = {**config, **base.DEFAULT_SPACING, **base.LATENT_SAFE, **sampler.overrides}
        config["variance_type"] = "fixed_small"
        direct = sampler.scheduler_class.from_config(config)
        direct.set_timesteps(4)
        assert again is not stepped and dict(again.config) == dict(direct.config), sampler.name
        assert torch.equal(again.timesteps, direct.timesteps), sampler.name
        assert getattr(again, "step_index", None) is None and getattr(again, "model_outputs", [None])[0] is None
        assert torch.equal(
            again.scale_model_input(x, again.timesteps[0]), direct.scale_model_input(x, direct.timesteps[0])
        )
