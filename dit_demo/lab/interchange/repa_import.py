"""REPA checkpoints (sihyun-yu/REPA's train.py) as the DiT import reads them: detection, the path, the q/k norms
and the projector heads, which sampling never reads and the import drops, saying so.

REPA's ``models/sit.py`` is SiT's network in DiT's key layout (its "SiT-XL/2" is DiT-XL/2's sizes) plus
``projectors.*``, the MLP heads its alignment loss reads after block ``encoder_depth``, and, with ``--qk-norm``,
timm's per-head LayerNorms ``blocks.N.attn.{q,k}_norm``. Its ``train.py`` saves ``{"model", "ema", "opt", "args",
"steps"}``; its ``generate.py`` samples the ``ema`` weights. Its time runs from 1 (noise) to 0 (data).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field

import torch

from dit_demo.lab.interchange.sit_import import FAMILIES, checkpoint_family
from dit_demo.runtime.parameterization import DEFAULT_FAMILY, REPA_FAMILY, REPA_PATHS
from dit_demo.runtime.qk_norm import QK_NORM, add_qk_norms, qk_norms_from_original
from samplers.repa_schedulers import PREDICTIONS, RepaEulerScheduler

IMPORT_FAMILIES = (*FAMILIES, REPA_FAMILY)
REPA_ARGS = ("encoder_depth", "proj_coeff", "enc_type")  # what only REPA's train.py puts in its args
REPA_TIME = (
    "t in [0, 1], 1 = noise, 0 = data; x_t = alpha_t x_data + sigma_t noise; linear: alpha_t = 1 - t, sigma_t = t; "
    "cosine: alpha_t = cos(pi t / 2), sigma_t = sin(pi t / 2); v = dx_t/dt"
)
FLOW_FLAGS = ("path_type", "prediction", "encoder_depth")  # import flags that stand in for train.py's args
_QK_KEY = re.compile(r"blocks\.\d+\.attn\.[qk]_norm\.")


def import_family(flag: str | None, args: argparse.Namespace | None, state: dict) -> str:
    """REPA's for ``--family repa`` or REPA's train.py args, else SiT's rule (``sit_import.checkpoint_family``);
    a REPA model's tensors under another family are refused, since that family would drop them unread."""
    if flag == REPA_FAMILY or (flag is None and args is not None and any(hasattr(args, k) for k in REPA_ARGS)):
        return REPA_FAMILY
    if flag is not None and flag not in IMPORT_FAMILIES:
        raise ValueError(f"Unknown model family {flag!r}; import knows {', '.join(IMPORT_FAMILIES)}.")
    family = checkpoint_family(flag, args)
    if any(_QK_KEY.match(k) or k.startswith("projectors.") for k in state):
        raise ValueError(
            f"The weights have REPA's q/k norms or projector heads, which a {family} model has not: import "
            f"them with --family repa."
        )
    return family


def with_flow_flags(
    args: argparse.Namespace | None, family: str, **flags: str | int | None
) -> argparse.Namespace | None:
    """train.py's args with the flags that stand in for them (``FLOW_FLAGS``) filled in; a flag that contradicts
    the args, or a flow flag for a DiT, is refused in one sentence."""
    if unknown := set(flags) - set(FLOW_FLAGS):
        raise TypeError(f"Unknown import options {sorted(unknown)}; the flow flags are {', '.join(FLOW_FLAGS)}.")
    given = {k: v for k, v in flags.items() if v is not None}
    if not given:
        return args
    if family == DEFAULT_FAMILY:
        raise ValueError("--path-type, --prediction and --encoder-depth are for flow models: add --family sit or repa.")
    if family != REPA_FAMILY and "encoder_depth" in given:
        raise ValueError("--encoder-depth names the block REPA's projectors read: it is for --family repa only.")
    for key, value in given.items():
        told = getattr(args, key, None)
        if told is not None and told != value:
            flag = "--" + key.replace("_", "-")
            raise ValueError(f"{flag} {value} contradicts the checkpoint's args.{key} {told}.")
    return argparse.Namespace(**{**vars(args or argparse.Namespace()), **given})


@dataclass(frozen=True)
class RepaParts:
    """A REPA checkpoint split for the import: the sampling weights in DiT's layout and what goes beside them."""

    state: dict  # the weights DiT's mapping reads (no projectors, no q/k norms)
    qk_norms: dict  # the q/k norms under diffusers' names; empty without --qk-norm
    transport: dict  # path, prediction and time convention: model_index.json's "transport"
    source: dict = field(default_factory=dict)  # what model_index.json's "source" adds: the dropped heads, args

    def attach(self, transformer: torch.nn.Module) -> None:
        """Give ``transformer`` (from ``original_dit.to_diffusers``) the checkpoint's q/k norms, if it has them."""
        if not self.qk_norms:
            return
        add_qk_norms(transformer)
        try:
            transformer.load_state_dict({k: v.float() for k, v in self.qk_norms.items()}, strict=False)
        except RuntimeError:
            raise ValueError(
                "The q/k norms' sizes do not fit the heads of this architecture (check --heads)."
            ) from None

    def record(self, index: dict) -> RepaEulerScheduler:
        """Fill ``index`` (model_index.json) with the family, transport and q/k norm; the folder's scheduler."""
        index.update(family=REPA_FAMILY, transport=self.transport, scheduler=["samplers.repa_schedulers", "RepaEulerScheduler"])  # fmt: skip
        index["source"].update(self.source)
        if self.qk_norms:
            index["qk_norm"] = QK_NORM
        return RepaEulerScheduler(path_type=self.transport["path_type"], prediction=self.transport["prediction"])


def repa_parts(state: dict, args: argparse.Namespace | None) -> RepaParts:
    """The checkpoint's parts, after checking what its args say against its tensors and against what REPA samples."""
    transport = repa_transport(args)
    depth = 1 + max((int(m[1]) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))), default=-1)
    has_norms = any(_QK_KEY.match(k) for k in state)
    told = getattr(args, "qk_norm", None)
    if told is not None and bool(told) != has_norms:
        have = "have" if has_norms else "have no"
        raise ValueError(f"args.qk_norm says {bool(told)}, but the weights {have} q/k norms (blocks.N.attn.q_norm).")
    projectors = [k for k in state if k.startswith("projectors.")]
    encoder_depth = getattr(args, "encoder_depth", None)
    if encoder_depth is not None and not (isinstance(encoder_depth, int) and 1 <= encoder_depth <= depth):
        raise ValueError(
            f"The encoder depth {encoder_depth} is not a block of this {depth}-block model (1 to {depth})."
        )
    source = {"fused_attn": getattr(args, "fused_attn", None)}  # it picks REPA's attention kernel only
    if projectors:
        read = f"after block {encoder_depth}" if encoder_depth is not None else "at an encoder depth not recorded"
        source["dropped"] = (
            f"dropped {len(projectors)} projector tensors (REPA's alignment heads, read {read}): sampling never reads them"
        )
    sampling = {k: v for k, v in state.items() if not k.startswith("projectors.") and not _QK_KEY.match(k)}
    try:
        norms = qk_norms_from_original(state, depth) if has_norms else {}
    except KeyError as exc:
        raise ValueError(f"Some blocks have q/k norms and some not: {exc.args[0]} is missing.") from None
    return RepaParts(sampling, norms, transport, {k: v for k, v in source.items() if v is not None})


def repa_transport(args: argparse.Namespace | None) -> dict:
    """The path and prediction REPA's args name (REPA's defaults where they say nothing), if REPA samples them."""
    path_type = str(getattr(args, "path_type", None) or "linear")
    prediction = str(getattr(args, "prediction", None) or "v")
    if prediction not in PREDICTIONS:
        raise ValueError(f"REPA's code samples velocity prediction (v) only; this model says prediction={prediction}.")
    if path_type not in REPA_PATHS:
        raise ValueError(f"REPA's paths are {' and '.join(REPA_PATHS)}; this model says path_type={path_type}.")
    return {"path_type": path_type, "prediction": prediction, "time": REPA_TIME}


def add_flow_flags(parser: argparse.ArgumentParser) -> None:
    """The import's flags for a flow model's training facts, where train.py's args do not say them."""
    parser.add_argument("--path-type", default=None, help="SiT: Linear (GVP, VP); REPA: linear or cosine")
    parser.add_argument("--prediction", default=None, help="SiT: velocity (noise, score); REPA: v")
    parser.add_argument("--encoder-depth", type=int, default=None, help="REPA: the block its projectors read")
