"""Sampler variants: ``name[key=value,...]``, a registered sampler with some options changed.

    dpmpp_2m[karras=true]      Karras sigmas          ddpm[spacing=linspace]   DiT's own step grid
    dpmpp_2m[order=3]          third-order multistep  unipc[order=3]           (any option of the class)

A key is an argument of the sampler's scheduler class (its ``__init__``, or its ``step`` for
per-step options such as DDIMScheduler's ``eta``), or one of the short ALIASES. The model's own
noise schedule (betas, timesteps, prediction type) and the engine's latent-safety settings are
not options: changing them would sample another model. Values are checked against the type of
the argument's default, then the variant is built once so diffusers can refuse what it refuses.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import replace
from typing import Any

from samplers.base import LATENT_SAFE, Sampler

ALIASES = {"spacing": "timestep_spacing", "karras": "use_karras_sigmas", "order": "solver_order"}
# facts of the model, or settings the engine owns: not a sampler's option
FIXED = {
    "num_train_timesteps",
    "beta_start",
    "beta_end",
    "beta_schedule",
    "trained_betas",
    "prediction_type",
    "variance_type",
    "rescale_betas_zero_snr",
    "steps_offset",
    # the SiT transport the model was trained with (its flow schedulers read it from the model's config)
    "path_type",
    "prediction",
    "train_eps",
    "sample_eps",
    # which solver a flow scheduler runs is what its sampler is (sit_ode_euler, sit_sde_heun), with its NFE per step
    "solver",
    *LATENT_SAFE,
}
STEP_ARGS_NOT_OPTIONS = {"model_output", "timestep", "sample", "generator", "variance_noise", "return_dict"}
SPACINGS = ("trailing", "linspace", "leading")
INT_LIMITS = {"solver_order": (1, 3)}  # diffusers' multistep solvers implement orders 1-3 and silently cap others
MAX_OPTIONS = 8
_VARIANT = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*\[(.*)\]\s*$", re.S)
_PROBE_CONFIG = {"num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02}


def split_variant(text: str) -> tuple[str, str | None]:
    """("dpmpp_2m", "karras=true") from "dpmpp_2m[karras=true]"; (text, None) without brackets."""
    if "[" not in text and "]" not in text:
        return text.strip(), None
    match = _VARIANT.match(text)
    if not match:
        raise ValueError(
            f"Cannot read sampler {text[:60]!r}; write a variant as name[key=value,...], e.g. dpmpp_2m[karras=true]."
        )
    return match[1], match[2]


def options_of(sampler: Sampler) -> dict[str, inspect.Parameter]:
    """Every option a variant of ``sampler`` may set, by its full name."""
    init = inspect.signature(sampler.scheduler_class.__init__).parameters
    step = inspect.signature(sampler.scheduler_class.step).parameters
    found = {k: p for k, p in init.items() if k != "self" and k not in FIXED and p.kind is p.POSITIONAL_OR_KEYWORD}
    found.update(
        {
            k: p
            for k, p in step.items()
            if k != "self" and k not in STEP_ARGS_NOT_OPTIONS and p.kind is p.POSITIONAL_OR_KEYWORD
        }
    )
    return found


def _value(sampler: Sampler, key: str, text: str, default: Any) -> Any:
    """``text`` as the type of the option's default (bool, int, float or str)."""
    text = text.strip()
    lowered = text.lower()
    wrong = f"Option {key} of {sampler.name} must be"
    if isinstance(default, bool):
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{wrong} true or false, got {text[:30]!r}.")
        return lowered in ("true", "1", "yes")
    if isinstance(default, int):
        low, high = INT_LIMITS.get(key, (-(2**31), 2**31))
        try:
            number = int(text)
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            raise ValueError(f"{wrong} a whole number from {low} to {high}, got {text[:30]!r}.")
        return number
    if isinstance(default, float) or default is None and re.fullmatch(r"[-+0-9.eE]+", text):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{wrong} a number, got {text[:30]!r}.") from None
    if key == "timestep_spacing" and lowered not in SPACINGS:
        raise ValueError(f"{wrong} one of {', '.join(SPACINGS)}, got {text[:30]!r}.")
    return text


def parse_options(sampler: Sampler, text: str) -> dict[str, Any]:
    """{"use_karras_sigmas": True} from "karras=true", checked against the sampler's scheduler class."""
    allowed = options_of(sampler)
    items = [item for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(f"Empty options in {sampler.name}[]; write e.g. {sampler.name}[spacing=linspace].")
    if len(items) > MAX_OPTIONS:
        raise ValueError(f"Too many options for {sampler.name} ({len(items)}); at most {MAX_OPTIONS}.")
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = ALIASES.get(key.strip(), key.strip())
        if not sep or not value.strip():
            raise ValueError(f"Option {item.strip()[:30]!r} of {sampler.name} needs a value: key=value.")
        if key not in allowed:
            short = sorted({alias for alias, full in ALIASES.items() if full in allowed} | set(allowed))
            raise ValueError(
                f"{sampler.name} has no option {key[:30]!r} (its scheduler is {sampler.scheduler_class.__name__}); "
                f"its options: {', '.join(short)}."
            )
        options[key] = _value(sampler, key, value, allowed[key].default)
    return options


def canonical(sampler: Sampler, options: dict[str, Any]) -> str:
    """The variant's name as stored in metadata and shown in labels, aliases used where they exist."""
    short = {full: alias for alias, full in ALIASES.items()}
    shown = [f"{short.get(k, k)}={str(v).lower() if isinstance(v, bool) else v}" for k, v in options.items()]
    return f"{sampler.name}[{','.join(shown)}]"


def _probe(sampler: Sampler) -> None:
    """Ten steps on a zero model output: diffusers checks some options only when it steps."""
    import torch

    scheduler = sampler.build(_PROBE_CONFIG, 10, learned_variance=False)
    x = torch.zeros(1, 4, 2, 2)
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, t)
        x = scheduler.step(torch.zeros_like(x_in), t, x, **sampler.step_kwargs).prev_sample
    if not torch.isfinite(x).all():
        raise ValueError("they give non-finite samples")


def make_variant(sampler: Sampler, text: str) -> Sampler:
    """The sampler with the options in ``text`` applied, built once to let diffusers check them."""
    options = parse_options(sampler, text)
    step_names = set(inspect.signature(sampler.scheduler_class.step).parameters)
    config = {k: v for k, v in options.items() if k not in step_names}
    step = {k: v for k, v in options.items() if k in step_names}
    name = canonical(sampler, options)
    variant = replace(
        sampler,
        name=name,
        label=f"{sampler.label} [{name.split('[', 1)[1]}",
        overrides={**sampler.overrides, **config},
        step_kwargs={**sampler.step_kwargs, **step},
    )
    try:
        _probe(variant)
    except Exception as exc:  # diffusers' own check of the combination; its message says what is wrong
        raise ValueError(f"{name}: {sampler.scheduler_class.__name__} refused these options ({exc}).") from None
    return variant
