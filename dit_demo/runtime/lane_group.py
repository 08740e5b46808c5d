"""Lanes on one schedule step together: one scheduler over their stacked latents.

A batch of eight classes with one sampler and step count visits the same timesteps in every
lane, so one scheduler step over an (8, C, H, W) latent does the work of eight: a scheduler
step is a few dozen small tensor operations and Python, which on a GPU cost more than the
arithmetic, and eight of them a round would cost more than DiTPipeline's one batched step.

Stepping together does not change a lane's numbers: given the same model outputs, a lane steps to
the same bits in a group as alone (tested for every built-in sampler), since every scheduler
operation on the latents is elementwise, guidance is computed row by row, and each lane keeps its
own noise generator (diffusers' ``randn_tensor`` draws row ``i`` from ``generator[i]`` when given a
list, exactly as it draws a lone lane's noise). The transformer's outputs themselves move with the
batch around a row at float rounding, as any batched forward does. Schedulers from elsewhere (plugins) may not
take a list of generators, so their lanes step alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from functools import cache
from itertools import accumulate

import torch

from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.devices import host_values
from dit_demo.runtime.request import CheckedLane


def _accepts(fn: Callable, name: str) -> bool:
    """Whether ``fn`` takes keyword ``name``, by name or through ``**kwargs`` (wrappers, plugins)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature (a C callable): offer it anyway
        return True
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def steps_together(lane: CheckedLane) -> bool:
    """Whether the lane's scheduler may step a stack of lanes and give each what it gives alone: diffusers'
    own classes, when they add no noise or take it from the ``generator`` they are given (``randn_tensor``
    draws row i from generator i). A scheduler that seeds its noise otherwise (one Brownian tree over
    the whole batch) steps each lane alone."""
    return _stacks(lane.sampler.scheduler_class, lane.sampler.stochastic)


@cache
def _stacks(scheduler_class: type, stochastic: bool) -> bool:
    if not scheduler_class.__module__.startswith("diffusers."):
        return False
    if "generator" in inspect.signature(scheduler_class.step).parameters:
        return True
    # no generator to hand out: only a noise-free scheduler stacks (a seeded Brownian tree, diffusers'
    # SDE schedulers, adds noise even where a plugin forgot to say stochastic=True)
    return not stochastic and "noise_sampler_seed" not in inspect.signature(scheduler_class.__init__).parameters


def group_lanes(lanes: Sequence[CheckedLane]) -> list[list[int]]:
    """Lane positions in groups that share one schedule (sampler, steps, grid, guided channels), in order."""
    groups: dict[tuple, list[int]] = {}
    for position, lane in enumerate(lanes):
        key = (id(lane.sampler), lane.steps, lane.spacing, lane.cfg_channels) if steps_together(lane) else position
        groups.setdefault(key, []).append(position)
    return list(groups.values())


class LaneGroup:
    """The state of lanes that step together: their latents (n, C, H, W), one scheduler, a generator each."""

    def __init__(self, bundle: DiTBundle, lanes: Sequence[CheckedLane], positions: Sequence[int]):
        self.bundle, self.lanes, self.positions = bundle, list(lanes), list(positions)
        first = self.lanes[0]
        self.sampler = first.sampler
        learned = bundle.parameterization.learned_variance
        self.reads_variance = self.sampler.reads_variance(learned)
        self.scheduler = self.sampler.build(
            bundle.scheduler_config, first.steps, learned_variance=learned, spacing=first.spacing
        )
        self.timesteps = list(self.scheduler.timesteps)
        # an adaptive scheduler (samplers/flow_adaptive.py) picks its own steps: its timesteps grow as it steps
        self.adaptive = getattr(self.scheduler, "adaptive", False) is True
        # one generator per lane: initial noise first, then the sampler's per-step noise, so a
        # lane gives the same result alone, batched with others, or in diffusers' DiTPipeline
        generators = [torch.Generator("cpu").manual_seed(lane.seed) for lane in self.lanes]
        noise = torch.cat([torch.randn((1, *bundle.latent_shape), generator=g) for g in generators])
        self.x = noise.to(bundle.device) * self.scheduler.init_noise_sigma  # (n, C, H, W) float32
        self.step_kwargs = dict(self.sampler.step_kwargs)
        if _accepts(self.scheduler.step, "generator"):
            self.step_kwargs["generator"] = generators[0] if len(generators) == 1 else generators
            # optional hook: a scheduler whose model input is not its state alone draws noise before a round's
            # model call (SiT's SDE Heun reads the model after adding its noise), so it gets the generators now
            if callable(getattr(self.scheduler, "set_generator", None)):
                self.scheduler.set_generator(self.step_kwargs["generator"])
        self.index = 0
        self.rows_done = [0] * len(self.lanes)  # transformer rows each lane has needed (its share of the time)
        self.x_in = self.x
        self.guided = [lane.guided for lane in self.lanes]  # this round, per lane (an interval depends on sigma)

    @property
    def done(self) -> bool:
        """Every evaluation made; an adaptive scheduler is done when a step adds no next time."""
        return self.index >= len(self.timesteps)

    @property
    def estimated_nfe(self) -> int:
        """Evaluations the group's run takes: exact for a fixed grid, the solver's estimate while an adaptive one runs."""
        return self.scheduler.estimated_nfe if self.adaptive else len(self.timesteps)

    @property
    def max_nfe(self) -> int:
        """The most evaluations it may take (what a budget counts): an adaptive scheduler's cap."""
        return self.scheduler.max_nfe if self.adaptive else len(self.timesteps)

    def close(self) -> None:
        """Let the scheduler end a run cut short (an adaptive solver's thread); the engine calls it in a finally."""
        if self.adaptive:
            self.scheduler.close()

    @property
    def t(self) -> torch.Tensor:
        """This round's model timestep (fractional for sigma-space samplers)."""
        return self.timesteps[self.index]

    @property
    def rows(self) -> int:
        return sum(2 if guided else 1 for guided in self.guided)

    def start_round(self) -> None:
        """Which lanes run the null row this round, and the scaled model input.

        A scheduler may decide guidance by a rule of its own sampler (REPA's interval on its time axis): an
        optional ``guided_now()`` says whether its next evaluation is guided, and the lever's interval still applies.
        """
        sigma = None
        guided_now = getattr(self.scheduler, "guided_now", None)
        scheduler_guides = True if guided_now is None else bool(guided_now())
        for i, lane in enumerate(self.lanes):
            guided = lane.guided
            if lane.levers.guidance_interval is not None:  # only then does guidance depend on the noise level
                sigma = self.bundle.parameterization.sigma_at(float(self.t)) if sigma is None else sigma
                guided = lane.guided_at(sigma)
            self.guided[i] = guided and scheduler_guides
        self.x_in = self.scheduler.scale_model_input(self.x, self.t)

    def row_classes(self) -> list[tuple[int, int, int]]:
        """(lane in the group, kind, class) per transformer row: kind 0 conditional, 1 the null class."""
        null = self.bundle.null_class
        rows = []
        for i, lane in enumerate(self.lanes):
            rows.append((i, 0, lane.class_id))
            if self.guided[i]:
                rows.append((i, 1, null))
        return rows

    def model_output(self, rows: torch.Tensor) -> torch.Tensor:
        """The group's transformer rows (in ``row_classes`` order) -> guided model output, (n, C or 2C, H, W).

        Guidance acts on the first ``cfg_channels`` eps channels; the variance stays conditional. The
        original DiT guides 3 of the 4 latent channels (a leftover of pixel-space GLIDE, kept for its
        FID numbers); guiding all of them is the default here.
        """
        if not any(self.guided):
            return self._channels(rows)
        if all(self.guided):  # rows alternate: conditional, null (slices: nothing to copy to the device)
            cond, null = rows[0::2], rows[1::2]
        else:  # an unguided lane's "null" row is its conditional row: cond + s * 0 keeps every finite value
            starts = list(accumulate((2 if g else 1 for g in self.guided[:-1]), initial=0))
            cond = rows[host_values(starts, torch.long, rows.device)]
            null = rows[host_values([s + 1 if g else s for s, g in zip(starts, self.guided)], torch.long, rows.device)]
        scales = {lane.cfg_scale for lane in self.lanes}
        scale = (
            scales.pop()
            if len(scales) == 1
            else host_values([lane.cfg_scale for lane in self.lanes], rows.dtype, rows.device).view(-1, 1, 1, 1)
        )
        k = self.lanes[0].cfg_channels  # equal in a group
        guided = cond.clone()
        guided[:, :k] = null[:, :k] + scale * (cond[:, :k] - null[:, :k])
        return self._channels(guided)

    def _channels(self, out: torch.Tensor) -> torch.Tensor:
        return out if self.reads_variance else self.bundle.parameterization.prediction(out)

    def x0_estimate(self, model_out: torch.Tensor) -> torch.Tensor:
        """This round's x0 estimate from the guided model output, as the model's parameterization reads it."""
        return self.bundle.parameterization.x0_from_output(self.x_in, float(self.t), model_out)

    def step(self, model_out: torch.Tensor) -> None:
        """One scheduler step; on the last, the parameterization's final-step rule may keep the noise-free x0."""
        out = self.scheduler.step(model_out, self.t, self.x, **self.step_kwargs)
        if self.adaptive:  # the next time it asks for, if any
            self.timesteps = list(self.scheduler.timesteps)
        last = self.index == len(self.timesteps) - 1
        x0 = getattr(out, "pred_original_sample", None)
        takes_x0 = last and self.bundle.parameterization.final_step_takes_x0(self.sampler)
        self.x = x0 if takes_x0 and isinstance(x0, torch.Tensor) else out.prev_sample
        self.index += 1
        self.rows_done = [done + (2 if guided else 1) for done, guided in zip(self.rows_done, self.guided)]
