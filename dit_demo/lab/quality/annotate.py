"""Two commands on finished sweeps:

    python -m dit_demo.sweep annotate DIR CELL FILE   # attach the ADM evaluator's printout to a cell
    python -m dit_demo.sweep ship DIR [DIR ...] --out dit_demo/assets/quality

``annotate`` reads what openai/guided-diffusion's ``evaluations/evaluator.py`` prints for a cell's
``.npz`` (Inception Score, FID, sFID, precision, recall) into that cell of ``sweep.json``, so models
without this project's evaluator (DiT-XL/2) get quality numbers in the Quality tab too. ``ship``
merges sweeps of one model into the folder the app's Quality tab opens with, with a strip of each
cell's first samples.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from dit_demo.lab.quality import answers

# the evaluator's lines, e.g. "Inception Score: 215.8" or "FID: 2.27"; keys as sweep.json stores them
ADM_LINES = {
    "Inception Score": "inception_score",
    "FID": "fid",
    "sFID": "sfid",
    "Precision": "precision",
    "Recall": "recall",
}
STRIP_SAMPLES = 8
STRIP_SCALE = 3  # 32 px samples are small on a page


def parse_adm_output(text: str) -> dict[str, float]:
    """The metrics in an ADM evaluator printout; ``ValueError`` when it holds none of them."""
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(r"\s*([A-Za-z ]+?):\s*([-+0-9.eE]+)\s*", line)
        if match and match[1] in ADM_LINES:
            try:
                found[ADM_LINES[match[1]]] = float(match[2])
            except ValueError:
                raise ValueError(f"The evaluator line {line.strip()[:60]!r} has no number.") from None
    if not found:
        raise ValueError(
            "This is not the ADM evaluator's output: no line reads 'Inception Score: ...', 'FID: ...', "
            "'sFID: ...', 'Precision: ...' or 'Recall: ...'."
        )
    return found


def annotate(folder: str | Path, cell: str, printout: str | Path) -> dict:
    """Attach ``printout``'s metrics to ``cell`` of the sweep in ``folder``; the cell's annotations."""
    manifest = Path(folder) / "sweep.json"
    data = json.loads(manifest.read_text())
    answers.parse(data, str(manifest))
    names = [c["cell"] for c in data["cells"]]
    if cell not in names:
        raise ValueError(
            f"No cell {cell!r} in {manifest}; its cells are {', '.join(names[:6])}{', ...' if len(names) > 6 else ''}."
        )
    metrics = parse_adm_output(Path(printout).read_text(errors="replace"))
    target = data["cells"][names.index(cell)]
    target["annotations"] = {**target.get("annotations", {}), **metrics, "source": Path(printout).name}
    tmp = manifest.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, manifest)
    return target["annotations"]


def ship(folders: list[str | Path], out: str | Path) -> Path:
    """One model's sweeps merged into ``out/sweep.json``, with ``out/strips/<cell>.png``."""
    data = answers.load(folders)
    if data.several_models():  # their cells' names, and so their strips, would collide
        raise ValueError(f"These sweeps are of several models ({data.model}); ship each model's into its own folder.")
    out = Path(out)
    (out / "strips").mkdir(parents=True, exist_ok=True)
    for cell in data.cells:
        npz = next(
            (Path(f) / f"{cell['cell']}.npz" for f in folders if (Path(f) / f"{cell['cell']}.npz").is_file()), None
        )
        if npz is not None:
            strip(np.load(npz)["arr_0"][:STRIP_SAMPLES]).save(out / "strips" / f"{cell['cell']}.png", optimize=True)
    merged = {"spec": {"model": data.model}, "sources": data.sources, "cells": data.cells}
    (out / "sweep.json").write_text(json.dumps(merged, indent=1))
    return out


def strip(images: np.ndarray) -> Image.Image:
    """Samples (uint8 NHWC) side by side, enlarged without blurring."""
    row = np.concatenate(list(images), axis=1)
    picture = Image.fromarray(row.squeeze(-1) if row.shape[-1] == 1 else row)
    return picture.resize((picture.width * STRIP_SCALE, picture.height * STRIP_SCALE), Image.NEAREST)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m dit_demo.sweep", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ann = sub.add_parser("annotate", help="attach the ADM evaluator's printout to one cell")
    ann.add_argument("folder")
    ann.add_argument("cell", help="the cell's name, e.g. dpmpp_2m_25_cfg1.5")
    ann.add_argument("printout", help="a text file with what evaluations/evaluator.py printed")
    shp = sub.add_parser("ship", help="merge sweeps of one model into the Quality tab's folder")
    shp.add_argument("folders", nargs="+")
    shp.add_argument("--out", default=str(answers.SHIPPED))
    args = parser.parse_args(argv)
    try:
        if args.command == "annotate":
            print(f"annotated {args.cell}: {annotate(args.folder, args.cell, args.printout)}")
        else:
            print(f"wrote {ship(args.folders, args.out)}")
    except (ValueError, OSError) as exc:
        raise SystemExit(f"error: {exc}") from None
