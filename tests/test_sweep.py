"""Sweeps on accelerate: one process and two give the same bytes, a killed sweep resumes without
rewriting what it finished, and another sweep's folder is refused untouched."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dit_demo.cli.sweep import main
from dit_demo.lab.sweep import run as sweep_module

ARGS = ["--samplers", "ddim,dpmpp_2m", "--steps", "4", "--num-samples", "20", "--shard-size", "8"]
CELLS = ("ddim_4_cfg1.5.npz", "dpmpp_2m_4_cfg1.5.npz")


def _state(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` with its modification time in ns (what "touch nothing" checks)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "one"
    main([*ARGS, "--out", str(out)])
    return out


def test_cells_are_in_the_adm_format_in_sample_order_with_a_manifest(one_process):
    cell = np.load(one_process / CELLS[0])
    assert cell["arr_0"].dtype == np.uint8 and cell["arr_0"].shape == (20, 32, 32, 3)  # NHWC
    assert cell["arr_1"].tolist() == [i % 10 for i in range(20)]  # sample i is class i % classes
    manifest = json.loads((one_process / "sweep.json").read_text())
    assert manifest["status"] == "complete" and set(manifest["versions"]) >= {"torch", "diffusers", "accelerate"}
    row = manifest["cells"][0]
    assert (row["cell"], row["nfe"], row["samples"]) == ("ddim_4_cfg1.5", 4, 20)
    assert row["seconds"] > 0 and row["images_per_second"] > 0 and 0 <= row["accuracy"] <= 1 and row["frechet"] > 0
    assert len(list((one_process / "shards").glob("*.npz"))) == 6  # 2 cells x 3 shards of 8, 8, 4


def test_two_processes_on_accelerate_give_the_same_bytes(one_process, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "two"
    # on a machine without GPUs accelerate starts K processes through torchrun with --multi_gpu; the
    # sweep then talks over gloo (accelerate's --cpu alone runs one process unless MPI is set up)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    launch += ["--main_process_port", str(port), "-m", "dit_demo.sweep", *ARGS, "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(launch, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["process-0.log", "process-1.log"]
    assert all("shard(s) to run" in (out / "logs" / f"process-{r}.log").read_text() for r in (0, 1))
    for name in CELLS:
        assert (out / name).read_bytes() == (one_process / name).read_bytes()
    for row in json.loads((out / "sweep.json").read_text())["cells"]:  # wall time, not process time
        assert 0 < row["seconds"] <= row["process_seconds"] + 1e-6  # epoch floats: microsecond rounding
        assert row["images_per_second"] == pytest.approx(row["samples"] / row["seconds"])


def test_each_process_gets_the_same_share_of_every_cell():
    from accelerate import PartialState

    spec = sweep_module.SweepSpec("m", ("ddim", "heun"), (5, 50), (1.5,), num_samples=1000, shard_size=100)
    everything = spec.shards()
    assert sorted(everything) == [(c, k) for c in range(4) for k in range(10)]
    state = PartialState()
    saved = state.num_processes, state.process_index
    for processes in (2, 5):  # accelerate's split of the list, as each of K processes would see it
        for rank in range(processes):
            state.num_processes, state.process_index = processes, rank  # shared state: restored below
            try:
                with state.split_between_processes(everything) as mine:
                    share = list(mine)
            finally:
                state.num_processes, state.process_index = saved
            assert sorted(c for c, _ in share) == sorted(list(range(4)) * (10 // processes))


def test_a_cells_wall_time_counts_overlapping_shards_once_and_pauses_not_at_all():
    # two processes side by side (0-4 and 1-3), then a resumed run a day later (86400-86402)
    assert sweep_module.covered_seconds([(86400.0, 86402.0), (1.0, 3.0), (0.0, 4.0)]) == 6.0
    assert sweep_module.covered_seconds([(0.0, 2.0), (2.0, 5.0)]) == 5.0
    assert sweep_module.covered_seconds([]) == 0.0


def test_a_killed_sweep_resumes_to_the_same_files_and_keeps_its_finished_shard(one_process, tmp_path, monkeypatch):
    out = tmp_path / "killed"
    real = sweep_module.Sweep.run_shard
    calls = []

    def dies_after_one(self, cell, shard):
        if calls:
            raise KeyboardInterrupt  # as if the process were killed: no cleanup of any kind
        calls.append((cell, shard))
        return real(self, cell, shard)

    monkeypatch.setattr(sweep_module.Sweep, "run_shard", dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        main([*ARGS, "--out", str(out)])
    monkeypatch.setattr(sweep_module.Sweep, "run_shard", real)
    finished = list((out / "shards").glob("*.npz"))
    assert len(finished) == 1 and not list(out.glob("*.npz"))  # one shard, no cell yet
    before = finished[0].stat().st_mtime_ns
    main([*ARGS, "--out", str(out)])  # the same command
    assert finished[0].stat().st_mtime_ns == before  # not rewritten
    for name in CELLS:
        assert (out / name).read_bytes() == (one_process / name).read_bytes()
    for row in json.loads((out / "sweep.json").read_text())["cells"]:  # wall time, not process time
        assert 0 < row["seconds"] <= row["process_seconds"] + 1e-6  # epoch floats: microsecond rounding
        assert row["images_per_second"] == pytest.approx(row["samples"] / row["seconds"])


def test_other_arguments_into_a_sweeps_folder_are_refused_and_change_nothing(one_process):
    before = _state(one_process)
    with pytest.raises(SystemExit) as info:
        main([*ARGS[:-2], "--shard-size", "5", "--num-samples", "30", "--out", str(one_process)])
    message = str(info.value)
    assert "holds another sweep (different num_samples, shard_size)" in message and "--force-new" in message
    assert _state(one_process) == before


def test_a_failing_item_is_named_and_finished_shards_stay(tmp_path, monkeypatch):
    out = tmp_path / "fails"
    real = sweep_module.Sweep.run_shard

    def fails_on_the_second(self, cell, shard):
        if shard == 1:
            raise RuntimeError("out of memory")
        return real(self, cell, shard)

    monkeypatch.setattr(sweep_module.Sweep, "run_shard", fails_on_the_second)
    with pytest.raises(SystemExit) as info:
        main([*ARGS, "--out", str(out)])
    assert "failed on ddim_4_cfg1.5 shard 1 (samples 8-15): out of memory" in str(info.value)
    assert (out / "shards" / "ddim_4_cfg1.5-00000.npz").exists()
    assert "failed on ddim_4_cfg1.5 shard 1" in (out / "logs" / "process-0.log").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--samplers", "nope"], "Unknown sampler 'nope'"),
        (["--num-samples", "0"], "--num-samples must be"),
        (["--steps", "ten"], "Cannot read step counts"),
        (["--cfg-channels", "7"], "cfg"),
    ],
)
def test_bad_arguments_get_one_line(tmp_path, argv, message):
    with pytest.raises(SystemExit, match=message):
        main([*argv, "--out", str(tmp_path / "bad")])
    assert not (tmp_path / "bad").exists()
