"""The compiled-transformer lever: rows padded to buckets never change a lane, and the real
compiler (inductor, on this CPU) gives the eager results within fp32 tolerance."""

from __future__ import annotations

import threading
from dataclasses import replace

import torch

from dit_demo.runtime.compiled import BUCKETS, CompiledTransformer, bucket
from dit_demo.runtime.engine import sample
from dit_demo.runtime.levers import LaneLevers, Levers, with_model_levers
from dit_demo.runtime.request import Lane


def _lanes():
    # rows change every few rounds: lanes finish at 3, 5 and 8 steps, one leaves its guidance interval
    return [
        Lane("dpmpp_2m", 8, 1, 0, 3.0),
        Lane("euler", 5, 2, 1, 3.0, levers=LaneLevers(guidance_interval=(1.0, float("inf")))),
        Lane("ddpm", 3, 3, 2, 3.0),
    ]


def test_buckets_hold_every_row_count():
    assert [bucket(n) for n in (1, 2, 3, 5, 9, 33, 64, 65)] == [1, 2, 4, 8, 16, 64, 64, 65]


def test_padding_to_buckets_changes_a_lane_by_rounding_only(small_bundle):
    padded = replace(small_bundle, transformer=CompiledTransformer(small_bundle.transformer, backend="eager"))
    with_padding = sample(padded, _lanes())
    assert padded.transformer.shapes <= set(BUCKETS) and len(padded.transformer.shapes) >= 2  # rows did change
    without = sample(small_bundle, _lanes())  # the same request, rows as they come
    # fp32 matrix kernels pick their blocking by row count, so padding moves a result by rounding only,
    # as much as a lane's batch-mates do (measured: at most 2e-4 on latents of unit scale, 8 steps)
    for a, b in zip(with_padding, without):
        torch.testing.assert_close(a.latents, b.latents, rtol=1e-3, atol=1e-3)


def test_the_lever_wraps_the_transformer_and_the_bundle_still_reads_its_config(small_bundle):
    compiled = with_model_levers(small_bundle, Levers(compile=True))
    assert isinstance(compiled.transformer, CompiledTransformer)
    assert compiled.latent_shape == small_bundle.latent_shape and compiled.learned_sigma == small_bundle.learned_sigma
    assert compiled.extras["levers"] == "compiled transformer"


def test_inductor_compiled_equals_eager_within_fp32_tolerance(small_bundle):
    lanes = [Lane("dpmpp_2m", 4, c, c, 1.0) for c in (1, 2, 3)]  # cfg 1: 3 rows, padded to one shape (4)
    compiled = with_model_levers(small_bundle, Levers(compile=True))
    got = sample(compiled, lanes)
    want = sample(small_bundle, lanes)
    assert compiled.transformer.shapes == {4}
    for a, b in zip(got, want):
        torch.testing.assert_close(a.latents, b.latents, rtol=1e-4, atol=1e-4)


def test_graph_calls_from_any_thread_run_on_the_one_graph_thread(small_bundle):
    compiled = CompiledTransformer(small_bundle.transformer, backend="eager")
    compiled.graphs = True  # the CUDA-graph path's threading, exercised on a CPU
    threads = []
    call = compiled._call

    def spy(*args):
        threads.append(threading.current_thread().name)
        return call(*args)

    compiled._call = spy
    model = replace(small_bundle, transformer=compiled)
    lanes = [Lane("dpmpp_2m", 3, 1, 0, 2.0)]
    got = {}
    server_thread = threading.Thread(target=lambda: got.setdefault("thread", sample(model, lanes)[0].latents))
    server_thread.start()
    server_thread.join()
    got["main"] = sample(model, lanes)[0].latents
    want = sample(small_bundle, lanes)[0].latents
    assert len(threads) == 6 and len(set(threads)) == 1 and threads[0].startswith("cuda-graphs")
    assert torch.equal(got["thread"], want) and torch.equal(got["main"], want)
    assert set(compiled.first_calls) == {2}  # one bucket: one first call, timed
