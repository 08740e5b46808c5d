"""The README's performance blocks, made from the suite's JSON files in ``dit_demo/assets/bench/``.

``python -m dit_demo bench --readme README.md`` rewrites every ``<!-- bench:NAME -->`` block: NAME a
JSON file gives that suite's section; ``per-image`` gives the time for one image on every machine
measured (the Spaces section's hardware table); ``samplers`` the built-in samplers' table, from the
registry (the DiT family's); ``samplers-by-family`` one table per flow-model family; ``quality`` the shipped sweep's
quality table with intervals (``lab/quality/tables.py``), ``quality-sit`` the embedded SiT's, ``quality-families``
the paired test between the two. A test keeps the committed README equal to them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

RUNNERS = ("pipeline_fp32", "pipeline_half", "engine_exact", "engine_fast")
PER_IMAGE = "per-image"
SAMPLERS = "samplers"
SAMPLER_FAMILIES = "samplers-by-family"
QUALITY = "quality"
QUALITY_SIT = "quality-sit"  # the embedded SiT's shipped sweep
QUALITY_FAMILIES = "quality-families"  # the two embedded models against each other, budget by budget
QUALITY_BLOCKS = (QUALITY, QUALITY_SIT, QUALITY_FAMILIES)
RATIOS = (("exact", "fp32"), ("fast", "fp32"), ("fast", "half"))  # (engine preset, DiTPipeline precision)


def _ratio(theirs: float | None, ours: float | None) -> str:
    return f"{theirs / ours:.2f}x" if theirs and ours else "-"


def _seconds(seconds: float) -> str:
    return f"{seconds:.2f}" if seconds >= 1 else f"{seconds:.3f}"  # milliseconds show below a second


def _speed_table(data: dict) -> list[str]:
    rows: dict = {}
    notes: dict = {}
    for r in data["results"]:
        rows.setdefault((r["model"], r["workload"]), {})[r["runner"]] = r
    runners = [name for name in RUNNERS if any(name in v for v in rows.values())]
    lines = [
        "| model | workload | images | "
        + " | ".join(f"{r} (s)" for r in runners)
        + " | "
        + " | ".join(f"{ours} vs DiTPipeline {theirs}" for ours, theirs in RATIOS)
        + " |",
        "|---|---|---:|" + "---:|" * (len(runners) + len(RATIOS)),
    ]
    for (model, workload), by_runner in rows.items():
        secs = {name: r["seconds"] for name, r in by_runner.items()}
        cells = [_seconds(secs[r]) if secs.get(r) is not None else "n/a" for r in runners]
        ratios = [_ratio(secs.get(f"pipeline_{theirs}"), secs.get(f"engine_{ours}")) for ours, theirs in RATIOS]
        images = next(iter(by_runner.values()))["images"]
        lines.append(f"| {model} | {workload} | {images} | " + " | ".join(cells + ratios) + " |")
        for r in by_runner.values():
            if r.get("note"):
                notes.setdefault(r["note"], []).append(f"{model}/{workload}/{r['runner']}")
    lines += ["", *[f"- {', '.join(where)}: {note}." for note, where in notes.items()]]
    return lines


def _quality_table(quality: list[dict]) -> list[str]:
    first = quality[0]
    lines = [
        f"Quality on the embedded model ({first['sampler']}, {first['steps']} steps, cfg {first['cfg']:g}, "
        f"{first['samples']} samples, the same seeds as exact: {100 * first['accuracy_exact']:.1f}% class accuracy, "
        f"Frechet distance {first['fd_exact']:.2f}, {first['seconds_exact']:.1f} s). The bar: Frechet distance "
        "within 5% of exact and accuracy within 1 point.",
        "",
        "| lever | what it does | accuracy (points vs exact) | Frechet distance (vs exact) | sampling time (speed-up) "
        "| passes |",
        "|---|---|---:|---:|---:|:-:|",
    ]
    notes = [f"- {q['preset']}: {q['note']}." for q in quality if q.get("note")]
    for q in quality:
        points = 100 * (q["accuracy"] - q["accuracy_exact"])
        fd = q["fd"] / q["fd_exact"] - 1
        ok = "yes" if points >= -1 and fd <= 0.05 else "no"
        lines.append(
            f"| {q['preset']} | {q['levers']} | {100 * q['accuracy']:.1f}% ({points:+.1f}) | {q['fd']:.2f} "
            f"({100 * fd:+.1f}%) | {q['seconds']:.1f} s ({q['seconds_exact'] / q['seconds']:.2f}x) | {ok} |"
        )
    return lines + (["", *notes] if notes else [])


def markdown(data: dict) -> str:
    """The README's performance section from a suite's JSON: machine, table, ratios, FLOP/s, quality."""
    m = data["machine"]
    lines = [
        f"Measured on {m['cpu']} ({m['cores']} cores, {m['threads']} threads)"
        + (f" with {m['gpu']}" if m["gpu"] else ", no GPU")
        + f"; torch {m['torch']}, diffusers {m['diffusers']}; {data['steps']} steps (grid: "
        f"{', '.join(map(str, data['grid_steps']))}), median of {data['repeats']} run(s) after a warm-up"
        + (
            f" ({data['quick_runs']} or more where the runners take under a second together). "
            if "quick_runs" in data
            else ". "
        )
        + f"Fast preset here: {m['fast_preset']}.",
        "",
        *_speed_table(data),
    ]
    for model, f in data.get("flops", {}).items():
        lines.append(
            f"- {model}: the transformer runs at {f['transformer_gflops_per_s']:.0f} GFLOP/s ({f['rows']} rows, fp32), "
            f"a plain matmul of its size at {f['matmul_gflops_per_s']:.0f} GFLOP/s in the same run."
        )
    for model, first_calls in data.get("compile_seconds", {}).items():
        calls = ", ".join(f"{rows} rows {seconds:.0f} s" for rows, seconds in sorted(first_calls.items(), key=_rows))
        lines.append(f"- {model}: the compiled transformer's first call per bucket (compiling included): {calls}.")
    if data.get("quality"):
        lines += ["", *_quality_table(data["quality"])]
    return "\n".join(lines)


def _rows(item: tuple[str, float]) -> int:
    return int(item[0])


def write_json(data: dict, path: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=2)


BENCH_DIR = Path(__file__).resolve().parents[2] / "assets" / "bench"
_BLOCK = re.compile(r"(<!-- bench:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.S)


def refresh_readme(readme: str | os.PathLike, bench_dir: str | os.PathLike = BENCH_DIR) -> list[str]:
    """Rewrite every ``<!-- bench:NAME -->`` block of the README from ``bench_dir/NAME``; the names done."""
    path = Path(readme)
    done: list[str] = []

    def fill(match: re.Match) -> str:
        done.append(match["name"])
        return f"{match[1]}{block(match['name'], bench_dir)}\n{match[4]}"

    path.write_text(_BLOCK.sub(fill, path.read_text()))
    return done


def readme_blocks(text: str) -> dict[str, str]:
    """NAME -> the body of each bench block in a README's text (for the test that keeps them current)."""
    return {m["name"]: m["body"] for m in _BLOCK.finditer(text)}


def block(name: str, bench_dir: str | os.PathLike = BENCH_DIR) -> str:
    """The body of the README block ``name``: one suite's section, or the time per image on every machine."""
    if name == PER_IMAGE:
        return per_image_table(bench_dir)
    if name in QUALITY_BLOCKS:
        from dit_demo.lab.quality import answers, tables

        if name == QUALITY_FAMILIES:
            return tables.families_table()
        return tables.quality_table(answers.SHIPPED_SIT if name == QUALITY_SIT else answers.SHIPPED)
    if name == SAMPLERS:
        import samplers
        from samplers.table import markdown_table

        # the DiT samplers here; the flow families' in their own section (SAMPLER_FAMILIES)
        return markdown_table(
            s for s in samplers.all_samplers() if s.name in samplers.BUILT_IN_NAMES and "dit" in s.families
        )
    if name == SAMPLER_FAMILIES:
        import samplers
        from samplers.table import family_tables

        return family_tables(
            s for s in samplers.all_samplers() if s.name in samplers.BUILT_IN_NAMES and "dit" not in s.families
        )
    return markdown(json.loads((Path(bench_dir) / name).read_text()))


def per_image_table(bench_dir: str | os.PathLike = BENCH_DIR) -> str:
    """Seconds for one image (the ``single`` workload) on each machine a suite ran on, exact and fast."""
    lines = [
        "| machine | bench file | DiT-XL/2-256 exact | DiT-XL/2-256 fast | embedded exact | embedded fast |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for path in sorted(Path(bench_dir).glob("*.json")):
        data = json.loads(path.read_text())
        m = data["machine"]
        where = m["gpu"] or f"{m['cpu']}, {m['cores']} cores, no GPU"
        seconds = {(r["model"], r["runner"]): r["seconds"] for r in data["results"] if r["workload"] == "single"}
        cells = [
            f"{seconds[key]:.2f} s" if seconds.get(key) is not None else "-"
            for key in [
                (model, runner) for model in ("xl256-random", "embedded") for runner in ("engine_exact", "engine_fast")
            ]
        ]
        lines.append(f"| {where} | `{path.name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)
