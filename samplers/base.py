"""What a sampler plugin is: a recipe for a fresh diffusers scheduler plus facts about it."""

from __future__ import annotations

import copy
import logging
import threading
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Protocol, runtime_checkable

# a model's scheduler config lists keys that other scheduler classes do not take; diffusers warns
# about each on every build, which is expected here, so only its errors are shown
logging.getLogger("diffusers.configuration_utils").setLevel(logging.ERROR)

# every sampler gets these whatever the model's scheduler config says: latents are not images,
# so clipping or thresholding x0 to [-1, 1] would silently damage them
LATENT_SAFE = {"clip_sample": False, "thresholding": False}
# every sampler starts at t = T - 1 (pure noise) whatever its class's default spacing; "leading"
# (DDIM's and DDPM's default) would start DDIM-50 at t = 980 and make comparisons unfair
# (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed")
DEFAULT_SPACING = {"timestep_spacing": "trailing"}
# (class, config) -> a scheduler that is never stepped, copied for each lane: diffusers' from_config
# reads __init__'s signature several times over, which costs more than a copy, and every lane of every
# request would pay it
_PROTOTYPES: dict[tuple[type, str], Any] = {}
_PROTOTYPES_LOCK = threading.Lock()
MAX_PROTOTYPES = 256
# the model families samplers may name in ``families``, with what their models predict (for messages)
FAMILY_LABELS = {
    "dit": "discrete noise-prediction",
    "sit": "flow-matching, SiT's Linear, GVP or VP path with velocity, score or noise prediction",
    "repa": "flow-matching velocity, REPA's linear or cosine path, t = 1 noise",
}


@runtime_checkable
class SchedulerContract(Protocol):
    """What the engine asks of a sampler's scheduler class: the generic loop of every diffusers scheduler.

    ``from_config(config)`` makes a fresh one; after ``set_timesteps(n)`` it has ``timesteps`` and
    ``init_noise_sigma``; each step is ``scale_model_input(x, t)``, the model, then ``step(out, t, x,
    generator=...)``, whose result has ``prev_sample`` and (where it has one) ``pred_original_sample``.

    An adaptive scheduler, which picks its own steps (``samplers/flow_adaptive.py``), also has ``adaptive = True``,
    ``max_nfe`` (its cap on evaluations), ``estimated_nfe`` and ``close()`` (ends a run cut short); its
    ``timesteps`` grows by the next time it asks for at each ``step``, and the step that adds none is its last.
    """

    timesteps: Any
    init_noise_sigma: Any

    @classmethod
    def from_config(cls, config: dict, **kwargs): ...

    def set_timesteps(self, num_inference_steps: int, *args, **kwargs) -> None: ...

    def scale_model_input(self, sample, timestep): ...

    def step(self, model_output, timestep, sample, *args, **kwargs): ...


CONTRACT_METHODS = ("from_config", "set_timesteps", "scale_model_input", "step")


def missing_methods(scheduler_class: type) -> list[str]:
    """The contract's methods that ``scheduler_class`` lacks (its attributes appear on an instance)."""
    return [name for name in CONTRACT_METHODS if not callable(getattr(scheduler_class, name, None))]


@dataclass(frozen=True)
class Sampler:
    """A sampler = a diffusers scheduler class + config overrides + metadata for the UI and tests.

    ``build`` returns a *new* scheduler each call: schedulers keep state (timesteps, multistep
    history), so one instance serves exactly one lane of one request.
    """

    name: str
    label: str
    description: str
    scheduler_class: type
    _: KW_ONLY
    overrides: dict[str, Any] = field(default_factory=dict)
    step_kwargs: dict[str, Any] = field(default_factory=dict)
    nfe_per_step: int = 1
    stochastic: bool = False
    uses_variance: bool = False
    default_steps: int = 25
    paper: str = ""
    # diffusers' DiTPipeline runs it as this project does (DESIGN.md: it never scales the initial noise,
    # steps on the scaled input and drops the learned variance), so the pipeline is a fair reference for it
    pipeline_exact: bool = False
    # the model families it can drive (``dit``: discrete-time noise prediction); the registry offers it,
    # and a request accepts it, only for a loaded model of one of these
    families: tuple[str, ...] = ("dit",)
    # the variant options (``name[key=value]``, short aliases allowed) the per-family samplers table lists
    noted_options: tuple[str, ...] = ()

    def build(
        self,
        scheduler_config: dict,
        num_steps: int | None = None,
        learned_variance: bool = True,
        spacing: str | None = None,
    ):
        """A fresh scheduler; ``spacing`` ("trailing", "linspace" = DiT's grid, "leading") overrides the step grid."""
        config = {k: v for k, v in scheduler_config.items() if not k.startswith("_")}
        config.update(DEFAULT_SPACING)
        config.update(LATENT_SAFE)
        # learned-variance handling is the sampler's business, not the checkpoint's
        config["variance_type"] = "learned_range" if self.reads_variance(learned_variance) else "fixed_small"
        config.update(self.overrides)
        if spacing is not None:
            config["timestep_spacing"] = spacing
        scheduler = _fresh(self.scheduler_class, config)
        if num_steps is not None:
            scheduler.set_timesteps(num_steps)
        return scheduler

    def nfe(self, steps: int, scheduler_config: dict, spacing: str | None = None) -> int:
        """Transformer evaluations for ``steps`` steps (per image, before CFG doubles the batch); for an adaptive
        solver, which picks its own steps and knows their number only after, its cap ``max_nfe``."""
        scheduler = self.build(scheduler_config, steps, spacing=spacing)
        return scheduler.max_nfe if getattr(scheduler, "adaptive", False) is True else len(scheduler.timesteps)

    def reads_variance(self, learned_sigma: bool) -> bool:
        """Whether ``step`` gets the model's variance channels: the sampler wants them and the model has them."""
        return self.uses_variance and learned_sigma


def family_label(family: str) -> str:
    """A family as a sentence names it: its key, and what its models predict where that is known."""
    return f"{family} ({FAMILY_LABELS[family]})" if family in FAMILY_LABELS else family


def _fresh(scheduler_class: type, config: dict):
    """``scheduler_class.from_config(config)``; for diffusers' own classes, a copy of one built earlier
    (their state is plain tensors and lists). A plugin's class is built every time, as its contract says."""
    if not scheduler_class.__module__.startswith("diffusers."):
        return scheduler_class.from_config(config)
    key = (scheduler_class, repr(sorted(config.items())))
    with _PROTOTYPES_LOCK:
        prototype = _PROTOTYPES.get(key)
        if prototype is None:
            if len(_PROTOTYPES) >= MAX_PROTOTYPES:  # many models' configs in one process: start over
                _PROTOTYPES.clear()
            prototype = _PROTOTYPES[key] = scheduler_class.from_config(config)
    return copy.deepcopy(prototype)
