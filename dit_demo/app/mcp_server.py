"""What the agents' tools need from Gradio's MCP server beyond registering them: only they are listed,
their outputs arrive one by one, and a PNG they are given is read without a download."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path
from urllib.parse import unquote

import gradio as gr

from dit_demo.lab.outputs.pngmeta import MAX_PNG_BYTES

# where Gradio keeps the files it serves at /gradio_api/file=... (gradio.mcp's DEFAULT_TEMP_DIR too)
GRADIO_CACHE = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")
FILE_ROUTE = "/gradio_api/file="
PNG_SOURCES = "the PNG's URL as this app returned it (containing /gradio_api/file=) or a data:image/png;base64,... URL"


def hide_other_endpoints(demo: gr.Blocks, tools: Collection[Callable]) -> None:
    """Keep every public endpoint but ``tools`` off the MCP tool list, still callable through the API.

    Gradio lists every public endpoint as a tool, except a function whose ``_mcp_type`` is not "tool"
    (``gr.resource`` and ``gr.prompt`` mark theirs that way); the tabs' endpoints answer in the page's
    shapes (galleries, form updates) and would only be noise to an agent."""
    for block_fn in demo.fns.values():
        if block_fn.fn is not None and block_fn.api_visibility == "public" and block_fn.fn not in tools:
            with contextlib.suppress(AttributeError):  # a bound method takes no attribute: it stays listed
                block_fn.fn._mcp_type = "api"


def unpack_tool_outputs() -> None:
    """Hand a queued tool's outputs to the client one by one, whether or not it asked for progress.

    With a progress token, Gradio's MCP server turns each output into content (a file that is an image
    into an image); without one, which is how most clients call, it gets the tool's outputs back as one
    tuple and answers with that tuple's text: no image. Unpacking the tuple gives the same answer both ways.
    """
    from gradio.mcp import GradioMCPServer

    original = GradioMCPServer._execute_tool_without_progress
    if getattr(original, "unpacks_outputs", False):
        return

    async def one_by_one(self, job) -> list:
        data = await original(self, job)
        return list(data[0]) if len(data) == 1 and isinstance(data[0], tuple) else data

    one_by_one.unpacks_outputs = True
    GradioMCPServer._execute_tool_without_progress = one_by_one


def png_source(link: str) -> bytes | Path:
    """The PNG a tool was given: a data URL's bytes, or the file behind a link this server handed out.

    A link is not downloaded: Gradio refuses to fetch from a private address, which a local server has,
    and the file is on this machine already. Only Gradio's own cache is read, which its file route
    serves to anyone anyway. ``ValueError`` for anything else."""
    text = link.strip() if isinstance(link, str) else ""
    if text.startswith("data:"):
        return _data_url_bytes(text)
    if FILE_ROUTE in text:
        path = Path(unquote(text.split(FILE_ROUTE, 1)[1].split("?", 1)[0])).resolve()
        if path.is_relative_to(GRADIO_CACHE.resolve()) and path.is_file():
            return path
        raise ValueError(f"{text[:80]!r} is no file this app holds (old ones are deleted); give {PNG_SOURCES}.")
    raise ValueError(f"The PNG must be {PNG_SOURCES}; got {text[:80]!r}.")


def _data_url_bytes(text: str) -> bytes:
    header, _, data = text.partition(",")
    if ";base64" not in header:
        raise ValueError(f"A data URL for a PNG must be base64: data:image/png;base64,...; got {header[:40]!r}.")
    if len(data) > MAX_PNG_BYTES // 3 * 4 + 4:
        raise ValueError(f"That PNG is larger than {MAX_PNG_BYTES // 2**20} MB, the most this app reads.")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("The data URL's base64 is damaged; send the PNG's bytes again.") from None
