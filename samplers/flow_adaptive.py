"""A scheduler for SiT's default ODE solver: torchdiffeq's adaptive dopri5, one model evaluation a ``step``.

SiT's ``sample_ode`` calls ``odeint(drift, x, linspace(t0, t1, num_steps), method="dopri5", atol=[1e-6],
rtol=[1e-3])`` and keeps the solution at t1. This scheduler makes that same call rather than a re-statement of it:
every decision of torchdiffeq's controller (its first step by Hairer's rule, the RMS error norm, safety 0.9 and step
factors 10 and 0.2, times in float64 but stages in float32, the last stages one float below the step's end, the
interpolation back to t1) moves the step sequence, and with it the NFE, so only torchdiffeq itself gives SiT's
evaluations one for one. It is small, pure Python over torch, and pinned in requirements.txt.

Inverted control: odeint owns the loop and the engine owns the model, so odeint runs in a daemon thread (under
``torch.inference_mode``, which is per thread) whose drift hands (t, x) to the engine and blocks until the engine's
next ``step`` hands back the model output. The two sides strictly take turns, so the numbers are those of a plain
call. ``timesteps`` grows by one time a ``step``: the next evaluation the solver asks for, its input x returned as
``prev_sample``; the ``step`` that adds none returns the solution at t1. ``close()`` ends a run midway (a Stop, an
error) and joins the thread; the engine calls it in a ``finally``.

SiT's output times between t0 and t1 are interpolated and never move a step, so a lane's ``steps`` is unused: the
solver picks its own steps and the lane's NFE is what it took, rejected steps included. One lane is one solver, its
error norm over its own latent: SiT's is over its whole batch, so a lane is SiT run on that one image (cfg's copied
rows give the same mean of squares).

What the model sees: the drift at t0 and at t0 + h0 (the trial for the first step size), then each step's stages
at t + c dt for c = 1/5, 3/10, 4/5, 8/9 and twice one float below t + dt, x being the stage's Runge-Kutta
combination. The last step is not clipped to t1 and may end past it, so the model reads times above t1 (its sin-cos
time features are defined there) and x carried along the path beyond the data, as SiT's model does; a path's
coefficients are continued there as written, and on the Linear path the noise level (1 - t) / t is negative, outside
any guidance interval, so an interval turns guidance off past t1. The sample is then interpolated back to t1 from
that step, as SiT's is.
"""

from __future__ import annotations

import math
import queue
import threading
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torchdiffeq import odeint

from samplers.flow import ode_drift, refuse_discrete_spacing
from samplers.flow_paths import check_transport

STAGES = 6  # dopri5's model evaluations per attempted step (its seventh stage is the next step's first)
FIRST_EVALUATIONS = 2  # the drift at t0, and at t0 + h0 to choose the first step's size
# fewer cannot finish even a zero drift: its step size starts at 1e-6 and grows tenfold a step
MAX_NFE_RANGE = (50, 100_000)
JOIN_SECONDS = 10.0


@dataclass
class AdaptiveStepOutput:
    prev_sample: torch.Tensor  # the next evaluation's input x, or the solution at t1 once the solver is done


class _Stopped(Exception):
    """Raised inside the solver's thread to end its run when the engine stops answering."""


class _SolverRun:
    """One ``odeint`` call in a daemon thread, taking turns with the engine through two queues."""

    def __init__(self, y0: torch.Tensor, times: torch.Tensor, atol: float, rtol: float):
        self.requests: queue.Queue = queue.Queue()  # thread -> engine: ("eval", t, x), ("done", x), ("error", exc)
        self.answers: queue.Queue = queue.Queue()  # engine -> thread: a drift, or None to stop
        self.calls = 0  # drift evaluations asked for
        self.calls_at_step = 0  # ... when the current step began
        self.step_start: float | None = None  # the current step's start and size, as the solver reports them
        self.step_size = 0.0
        self.thread = threading.Thread(target=self._solve, args=(y0, times, atol, rtol), daemon=True, name="dopri5")
        self.thread.start()

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The drift, on the solver's thread: ask the engine for v(x, t) and wait for it."""
        self.calls += 1
        self.requests.put(("eval", float(t), x))
        answer = self.answers.get()
        if answer is None:
            raise _Stopped
        return answer

    def callback_step(self, t0: torch.Tensor, y0: torch.Tensor, dt: torch.Tensor) -> None:
        """torchdiffeq's hook before each attempted step: where it starts and how long it is."""
        self.step_start, self.step_size, self.calls_at_step = float(t0), float(dt), self.calls

    def _solve(self, y0: torch.Tensor, times: torch.Tensor, atol: float, rtol: float) -> None:
        try:
            with torch.inference_mode():
                # SiT's call: tolerances as one-element lists, the solution at the last time kept
                x = odeint(self, y0, times, method="dopri5", atol=[atol], rtol=[rtol])[-1]
            self.requests.put(("done", x))
        except _Stopped:
            pass
        except BaseException as exc:  # the engine's thread raises it
            self.requests.put(("error", exc))

    def answer(self, drift: torch.Tensor | None) -> tuple:
        """Hand the solver a drift (None: the first request, already evaluated) and wait for its next request."""
        if drift is not None:
            self.answers.put(drift)
        while True:
            try:
                return self.requests.get(timeout=JOIN_SECONDS)
            except queue.Empty:
                if not self.thread.is_alive() and self.requests.empty():
                    raise RuntimeError("The dopri5 solver's thread ended without a result.") from None

    def stop(self, wait: bool = True) -> None:
        """End the run: the solver's next drift raises inside its thread, which then ends."""
        if self.thread.is_alive():
            self.answers.put(None)
            if wait and self.thread is not threading.current_thread():
                self.thread.join(JOIN_SECONDS)


class SiTAdaptiveScheduler(ConfigMixin):
    """Adaptive dopri5 integration of SiT's probability-flow ODE (t0 noise -> t1 data), one evaluation a call."""

    config_name = "scheduler_config.json"
    adaptive = True  # the engine's sign: it picks its own steps (``estimated_nfe``, ``max_nfe``, ``close``)

    @register_to_config
    def __init__(
        self,
        atol: float = 1e-6,
        rtol: float = 1e-3,
        max_nfe: int = 1000,
        t0: float = 0.0,
        t1: float = 1.0,
        timestep_spacing: str = "trailing",
        path_type: str = "Linear",
        prediction: str = "velocity",
        train_eps: float | None = None,
        sample_eps: float | None = None,
    ):
        # the transport and its eps are the model's (its config records them); t0 and t1 are SiT's interval for it
        for name, value in (("atol", atol), ("rtol", rtol)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"dopri5's {name} must be a positive number, like 1e-3; got {value!r}.")
        low, high = MAX_NFE_RANGE
        if not (isinstance(max_nfe, int) and low <= max_nfe <= high):
            raise ValueError(f"dopri5's max_nfe caps its model evaluations: a whole number from {low} to {high}.")
        check_transport(path_type, prediction)
        refuse_discrete_spacing(timestep_spacing)
        self.init_noise_sigma = 1.0  # SiT starts from unit Gaussian noise at t0
        self.timesteps: list[float] = []
        self._run: _SolverRun | None = None
        self._done = False

    def set_timesteps(self, num_inference_steps: int, *args, **kwargs) -> None:
        """Start over at t0 (its first evaluation); ``num_inference_steps`` is unused: the solver picks its steps."""
        self.close()
        # the solver's times are float32 where they reach the drift
        self.timesteps = [float(torch.tensor(self.config.t0, dtype=torch.float32))]
        self._done = False

    @property
    def max_nfe(self) -> int:
        """The most evaluations a run may take: what a budget counts, since the real number is known only after."""
        return self.config.max_nfe

    @property
    def estimated_nfe(self) -> int:
        """The run's evaluations as far as the solver can tell: exact once done; meanwhile those asked for, the rest
        of the current step, and as many steps of its size as the time left needs (at most ``max_nfe``)."""
        taken, run = len(self.timesteps), self._run
        if self._done:
            return taken
        if run is None or run.step_start is None:  # no step size chosen yet: at least the first step
            return max(taken, FIRST_EVALUATIONS + STAGES)
        left_in_step = STAGES - (run.calls - run.calls_at_step)
        end = run.step_start + run.step_size
        later = math.ceil(max(self.config.t1 - end, 0.0) / run.step_size) if run.step_size > 0 else 0
        return min(taken + left_in_step + STAGES * later, self.config.max_nfe)

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        return sample  # the model reads x_t as it is

    def save_pretrained(self, save_directory, **kwargs) -> None:
        self.save_config(save_directory)

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, *args, **kwargs) -> AdaptiveStepOutput:
        """Hand the solver its drift at (``sample``, ``timestep``), its last request; return its next request's x,
        or the solution at t1."""
        if self._done:
            raise RuntimeError("This dopri5 run is finished; set_timesteps starts another.")
        if self._run is None:  # the first call: the engine has evaluated the drift at t0 on the initial noise
            times = torch.tensor([self.config.t0, self.config.t1], dtype=torch.float32, device=sample.device)
            self._run = _SolverRun(sample, times, self.config.atol, self.config.rtol)
            self._reply(self._run.answer(None))
        drift = ode_drift(self.config, model_output, sample, float(timestep))
        request = self._reply(self._run.answer(drift))
        if request[0] == "done":
            self._done = True
            self.close()
            return AdaptiveStepOutput(request[1])
        _, t, x = request
        if len(self.timesteps) >= self.config.max_nfe:
            self.close()
            raise ValueError(
                f"SiT's dopri5 stopped at t = {t:.4g} after its cap of {self.config.max_nfe} model evaluations "
                f"(atol {self.config.atol:g}, rtol {self.config.rtol:g}): loosen the tolerances, e.g. "
                f"sit_ode_dopri5[rtol=1e-2], or raise the cap, e.g. sit_ode_dopri5[max_nfe={2 * self.config.max_nfe}]."
            )
        self.timesteps.append(t)
        return AdaptiveStepOutput(x)

    def _reply(self, request: tuple) -> tuple:
        """``request``, or the solver's own error raised here, on the engine's thread."""
        if request[0] != "error":
            return request
        self.close()
        error = request[1]
        if isinstance(error, AssertionError):  # torchdiffeq's own checks: a step size underflowed, a state not finite
            said = (str(error).splitlines() or [""])[0][:80]
            raise RuntimeError(
                f"SiT's dopri5 could not go on (torchdiffeq: {said}): the model's output was not finite, or the "
                "tolerances are too tight for float32."
            ) from error
        raise error

    def close(self) -> None:
        """End a run that is still going (a Stop, an error) and wait for its thread; a finished one is left as is."""
        run, self._run = self._run, None
        if run is not None:
            run.stop()

    def __del__(self) -> None:
        run = getattr(self, "_run", None)
        if run is not None:  # dropped mid-run outside the engine: let the thread end (it may be this one)
            run.stop(wait=False)
