"""DiT Sampler Lab: ``python app.py`` serves the web demo (embedded model unless told otherwise).

Flags win over environment variables: --model/DIT_MODEL, --device/DIT_DEVICE, --dtype/DIT_DTYPE,
--host/GRADIO_SERVER_NAME, --port/GRADIO_SERVER_PORT, --max-request-seconds/DIT_MAX_REQUEST_SECONDS,
--mcp/--no-mcp/DIT_MCP (1 or 0; default: on where the mcp package is installed), --quality (repeatable)/
DIT_QUALITY (a comma list).
On Hugging Face Spaces (SPACE_ID set) the default model is facebook/DiT-XL-2-256.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

try:  # ZeroGPU patches torch's CUDA entry points when imported, so it comes before anything imports torch
    import spaces  # noqa: F401
except ImportError:  # not installed: not on Spaces
    pass

from dit_demo.app.blocks import CSS, PAGE_JS, build_ui
from dit_demo.app.model_slot import EMBEDDED_NAME, EMBEDDED_SIT_NAME, ModelSlot, allowed_models, default_model
from dit_demo.lab.outputs.pngmeta import MAX_PNG_BYTES
from dit_demo.runtime.budget import DEFAULT_MAX_SECONDS

QUEUE_MAX_SIZE = 32
# Gradio's MCP server needs the `mcp` package (the gradio[mcp] extra); where it is installed, agents get the tools
MCP_INSTALLED = importlib.util.find_spec("mcp") is not None
MCP_MISSING = "the MCP server needs the mcp package: pip install 'gradio[mcp]' (or start with --no-mcp)"
# uploads (the Reproduce tab's PNGs) above this are refused by Gradio before they reach the disk
LAUNCH_SETTINGS = {"max_file_size": MAX_PNG_BYTES, "css": CSS, "js": PAGE_JS, "mcp_server": MCP_INSTALLED}


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds (0 for no limit), got {text!r}") from None
    if value != value or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0 (0 for no limit), got {text!r}")
    return value


def _switch(text: str | None) -> bool | None:
    """DIT_MCP's value: on, off, or unset (None)."""
    if text is None or not text.strip():
        return None
    if text.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if text.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"error: DIT_MCP must be 1 or 0, got {text!r}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="DiT Sampler Lab web demo")
    parser.add_argument(
        "--model",
        default=default_model(),
        help="embedded, embedded-sit (once trained), facebook/DiT-XL-2-256, facebook/DiT-XL-2-512 or a folder",
    )
    parser.add_argument(
        "--offer",
        action="append",
        default=[m.strip() for m in env("DIT_OFFER", "").split(",") if m.strip()],
        metavar="MODEL",
        help="another model (a folder or hub id) the model box and Compare's Models box offer; repeat for more",
    )
    parser.add_argument("--device", default=env("DIT_DEVICE", "auto"))
    parser.add_argument("--dtype", default=env("DIT_DTYPE", "auto"))
    parser.add_argument("--host", default=env("GRADIO_SERVER_NAME", "0.0.0.0" if env("SPACE_ID") else "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true")
    parser.add_argument(
        "--quality",
        action="append",
        default=None,
        metavar="DIR",
        help="a sweep folder (python -m dit_demo.sweep) for the Quality tab; repeat for more, of one model or "
        "several (default: the shipped sweeps of the embedded models)",
    )
    parser.add_argument(
        "--max-request-seconds",
        type=_seconds,
        default=env("DIT_MAX_REQUEST_SECONDS", str(DEFAULT_MAX_SECONDS)),
        help="refuse a request whose estimated work (measured on the loaded model) exceeds this; 0: no limit",
    )
    parser.add_argument(
        "--mcp",
        action=argparse.BooleanOptionalAction,
        default=_switch(env("DIT_MCP")),
        help="serve the tools to agents over MCP at /gradio_api/mcp/ (default: on where the mcp package is installed)",
    )
    args = parser.parse_args(argv)
    if args.quality is None:  # flags replace the environment's list, as every other flag does
        args.quality = [q.strip() for q in env("DIT_QUALITY", "").split(",") if q.strip()] or None
    if args.mcp is None:
        args.mcp = MCP_INSTALLED
    elif args.mcp and not MCP_INSTALLED:
        parser.error(MCP_MISSING)
    return args


def create_app(
    model: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    max_request_seconds: float = DEFAULT_MAX_SECONDS,
    quality: str | list[str] | None = None,
    offered: tuple[str, ...] = (),
):
    """Build the Blocks app with ``model`` loaded; if it cannot load, fall back to the embedded model.
    ``quality``: sweep folders for the Quality tab, one or a list (default: the shipped sweeps, where
    there are some);
    ``offered``: more model folders the model box (and Compare's model axis) offers."""
    model = (
        EMBEDDED_NAME if model in (None, "", "embedded") else EMBEDDED_SIT_NAME if model == "embedded-sit" else model
    )
    slot = ModelSlot(device, dtype, allowed_models(model, *offered))
    warning = ""
    try:
        slot.load(model)
    except (ValueError, FileNotFoundError, OSError) as exc:
        if model == EMBEDDED_NAME:
            raise
        warning = f"could not load {model}: {exc} Showing the embedded Fashion-MNIST model instead."
        print(f"warning: {warning}", file=sys.stderr)
        slot.load(EMBEDDED_NAME)
    quality_data, quality_warning = _quality_data(quality)
    warning = " ".join(w for w in (warning, quality_warning) if w)
    demo = build_ui(slot, warning, max_request_seconds, quality_data)
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=1)
    return demo


def _quality_data(folders: str | list[str] | None):
    """The Quality tab's sweeps and a warning: a bad ``--quality`` folder is said, the app still starts.
    By default the shipped DiT sweep and, where it exists, the shipped SiT sweep beside it."""
    from dit_demo.lab.quality import answers

    given = [folders] if isinstance(folders, str) else list(folders or [])
    where = given or [f for f in (answers.SHIPPED, answers.SHIPPED_SIT) if (f / "sweep.json").is_file()]
    if not where:
        return None, ""
    try:
        return answers.load(where), ""
    except (ValueError, OSError) as exc:
        return None, f"the Quality tab has no data: {exc}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        demo = create_app(
            args.model, args.device, args.dtype, args.max_request_seconds, args.quality, tuple(args.offer)
        )
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc}") from None
    settings = {**LAUNCH_SETTINGS, "mcp_server": args.mcp}
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, **settings)


if __name__ == "__main__":
    main()
