"""A graph-captured transformer: ``torch.compile`` with static shapes, rows padded to buckets.

On a GPU the eager DiT is launch-bound (a forward costs about as much at 2 rows as at 16);
``mode="reduce-overhead"`` captures CUDA graphs, which launch a whole forward at once (the README's
GPU table holds the timings). A graph has one shape, and a lock-step request changes its row count
as lanes finish or leave their guidance interval, so every call is padded up to the next of a few
bucket sizes: at most ``len(BUCKETS)`` shapes are ever compiled, each once (lazily, on first use)
and kept. Padding repeats the last real row, so padded rows are ordinary inputs and are dropped
from the output.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import torch
from diffusers.models.modeling_outputs import Transformer2DModelOutput

BUCKETS = (1, 2, 4, 8, 16, 32, 64)
# Each bucket is one compiled entry of the DiT's forward, for every model in the process (a server
# keeps exact and fast copies, the suite several models): dynamo's default of 8 entries would send
# the rest back to eager without an error.
RECOMPILE_LIMIT = 64
_graph_thread: ThreadPoolExecutor | None = None


def _on_graph_thread(fn, *args):
    """``fn(*args)`` on the one thread that runs every CUDA-graph call in the process. Inductor keeps its
    graph trees in thread-local state: a server thread other than the first to replay a graph fails
    (an AssertionError in cudagraph_trees), and every thread would record graphs of its own."""
    global _graph_thread
    if _graph_thread is None:
        _graph_thread = ThreadPoolExecutor(1, "cuda-graphs", initializer=_import_graph_trees)
    return _graph_thread.submit(fn, *args).result()


def _import_graph_trees() -> None:
    # torch before 2.13 sets that state up only in the thread that imports the module: let it be this one
    import torch._inductor.cudagraph_trees  # noqa: F401


def bucket(rows: int) -> int:
    """The smallest bucket that holds ``rows`` (rows beyond the largest bucket are not padded)."""
    return next((b for b in BUCKETS if b >= rows), rows)


class CompiledTransformer(torch.nn.Module):
    """Calls like the DiT it wraps (``model(x, timestep=t, class_labels=y).sample``) and hands every
    other attribute (config, blocks, dtype) to it, so the block cache and the bundle see the DiT."""

    def __init__(self, transformer: torch.nn.Module, mode: str | None = None, backend: str = "inductor"):
        super().__init__()
        self.inner = transformer
        if mode is None:  # CUDA graphs where there is a GPU to launch; fused kernels on a CPU
            mode = "reduce-overhead" if transformer.device.type == "cuda" else "default"
        config = torch._dynamo.config
        name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
        setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))
        self.graphs = mode == "reduce-overhead"
        self.compiled = torch.compile(transformer, mode=mode, backend=backend, dynamic=False)
        self.shapes: set[int] = set()  # the bucket sizes compiled so far
        self.first_calls: dict[int, float] = {}  # seconds of each bucket's first call (compile and run)

    def forward(self, hidden_states, timestep=None, class_labels=None, return_dict: bool = True, **kwargs):
        rows = hidden_states.shape[0]
        size = bucket(rows)
        if size > rows:
            pad = size - rows
            hidden_states = torch.cat([hidden_states, hidden_states[-1:].expand(pad, *hidden_states.shape[1:])])
            timestep = torch.cat([timestep, timestep[-1:].expand(pad)])
            class_labels = torch.cat([class_labels, class_labels[-1:].expand(pad)])
        first = size not in self.shapes
        start = time.perf_counter()
        self.shapes.add(size)
        inputs = (rows, hidden_states, timestep, class_labels, kwargs)
        sample = _on_graph_thread(self._call, *inputs) if self.graphs else self._call(*inputs)
        if first:
            if sample.is_cuda:
                torch.cuda.synchronize(sample.device)
            self.first_calls[size] = time.perf_counter() - start
        return Transformer2DModelOutput(sample=sample) if return_dict else (sample,)

    def _call(self, rows: int, hidden_states, timestep, class_labels, kwargs) -> torch.Tensor:
        if self.graphs:  # every call is a new step: earlier outputs were copied out, their buffers are free
            torch.compiler.cudagraph_mark_step_begin()
        # outside inference mode, on plain copies of the inputs: compiling and graph capture have open bugs
        # with inference tensors (pytorch/pytorch#135892, #180823); no_grad keeps it an inference graph
        with torch.inference_mode(False), torch.no_grad():
            x, t, y = hidden_states.clone(), timestep.clone(), class_labels.clone()
            out = self.compiled(x, timestep=t, class_labels=y, **kwargs).sample
            # a graph's next replay overwrites its output buffer: the real rows are copied out here, on
            # the graph thread, before any other call can replay it
            return out[:rows].clone()

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("inner"), name)
