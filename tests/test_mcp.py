"""The app as tools for agents, through the mcp package's own client against the running app (MCP over
streamable HTTP at /gradio_api/mcp/): the four tools and what each parameter means, images and the table
back, the same answer whether or not the client follows progress, and a tool error that says what was wrong."""

from __future__ import annotations

import asyncio
import base64
import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

import app

pytest.importorskip("mcp", reason="the MCP server needs the mcp package (gradio[mcp], in requirements.txt)")
from mcp import ClientSession  # noqa: E402

try:  # the transport's name in recent mcp releases; earlier ones that gradio[mcp] allows have only the old one
    from mcp.client.streamable_http import streamable_http_client
except ImportError:
    from mcp.client.streamable_http import streamablehttp_client as streamable_http_client

TOOLS = {"generate_images", "compare_samplers", "reproduce_png", "quality_at_budget"}


def in_session(url: str, script):
    """``await script(session)`` in one MCP session with the app at ``url``: its result. In a thread of its
    own, because asyncio.run refuses a thread where an event loop runs (Playwright's, in the browser tests)."""

    async def run():
        async with streamable_http_client(f"{url}gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await script(session)

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def pixels(result, index: int = 0) -> np.ndarray:
    """The ``index``-th image a tool answered with, as pixels."""
    image = [c for c in result.content if c.type == "image"][index]
    assert image.mimeType == "image/png"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(image.data))))


def texts(result) -> list[str]:
    return [c.text for c in result.content if c.type == "text"]


def table_rows(text: str) -> list[list[str]]:
    """The rows of the markdown table in ``text`` (its header and rule left out), each split into cells."""
    return [line.strip("| ").split(" | ") for line in text.splitlines() if line.startswith("|")][2:]


def link(result) -> str:
    """The first image's URL, as the tool's answer gives it."""
    return next(t.removeprefix("Image URL: ") for t in texts(result) if t.startswith("Image URL: "))


def test_the_four_tools_are_listed_with_every_parameter_described(app_url):
    async def script(session):
        return (await session.list_tools()).tools

    tools = {tool.name: tool for tool in in_session(app_url, script)}
    assert set(tools) == TOOLS  # the tabs' own endpoints (/generate, /compare, ...) stay API-only
    for tool in tools.values():
        assert "Returns:" in tool.description, tool.name
        undescribed = [name for name, p in tool.inputSchema["properties"].items() if not p.get("description")]
        assert not undescribed, (tool.name, undescribed)
    generate = tools["generate_images"].inputSchema
    assert generate["required"] == ["classes"]
    assert generate["properties"]["classes"]["items"] == {"type": "string"}
    assert generate["properties"]["preset"]["enum"] == ["exact", "fast"]
    assert "dpmpp_2m, dpmpp_2m_karras" in generate["properties"]["sampler"]["description"]  # the registered samplers
    assert "'Sneaker'" in generate["properties"]["classes"]["description"]
    assert tools["quality_at_budget"].inputSchema["properties"]["cost"]["enum"] == ["nfe", "seconds"]


def test_generate_answers_with_its_image_and_reproduce_makes_it_again(app_url):
    request = {"classes": ["Sneaker"], "sampler": "ddim", "steps": 3, "cfg_scale": 1.5, "seed": 5}

    async def script(session):
        made = await session.call_tool("generate_images", request)
        again = await session.call_tool("reproduce_png", {"png": link(made)})
        png = base64.b64encode(httpx.get(link(made)).content).decode()  # the file itself, as a data URL
        sent = await session.call_tool("reproduce_png", {"png": f"data:image/png;base64,{png}"})
        followed = []  # a client that follows progress gets the same answer (Gradio answers it another way)
        tracked = await session.call_tool("generate_images", request, progress_callback=_noting(followed))
        grid = await session.call_tool(
            "generate_images", {**request, "classes": ["Bag", "Coat"], "images_per_class": 2}
        )
        return made, again, sent, tracked, followed, grid

    made, again, sent, tracked, followed, grid = in_session(app_url, script)
    assert not made.isError and [c.type for c in made.content] == ["image", "text", "text"]
    summary = texts(made)[-1]
    assert summary.startswith("1 image(s), 3 NFE each") and "Sneaker | ddim 3 steps | cfg 1.5 | seed 5" in summary
    assert not again.isError and np.array_equal(pixels(again), pixels(made))
    assert not sent.isError and np.array_equal(pixels(sent), pixels(made))
    assert [c.type for c in tracked.content] == ["image", "text", "text"] and np.array_equal(
        pixels(tracked), pixels(made)
    )
    assert followed, "the server sent no progress"
    # several images come back as one grid, a row per class, each image named in the summary
    assert pixels(grid).shape[1] > 2 * pixels(made).shape[1]
    assert [line for line in texts(grid)[-1].splitlines() if line.startswith("- ")] == [
        f"- {name} | ddim 3 steps | cfg 1.5 | seed {seed}" for name in ("Bag", "Coat") for seed in (5, 6)
    ]


def _noting(seen: list):
    async def progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    return progress


def test_compare_answers_with_both_grids_and_the_table(app_url):
    async def script(session):
        arguments = {"class_name": "Bag", "samplers": ["ddim", "euler"], "steps": [2, 4]}
        result = await session.call_tool("compare_samplers", arguments)
        return result, await session.call_tool("reproduce_png", {"png": link(result)})

    result, again = in_session(app_url, script)
    assert not result.isError and [c.type for c in result.content] == ["image", "text", "image", "text", "text", "text"]
    grid, difference = pixels(result, 0), pixels(result, 1)
    assert grid.shape == difference.shape
    table, summary = texts(result)[-2:]
    rows = table_rows(table)
    assert table.startswith("| Sampler | Steps | Latent RMSE to reference |")
    assert [(r[0], r[1]) for r in rows] == [("DDIM", "2"), ("DDIM", "4"), ("Euler", "2"), ("Euler", "4")]
    assert summary.startswith("Bag (class 8): 4 cells") and "reference, ddim @ 4 steps" in summary
    # the grid's PNG carries the comparison: reproduce runs it again, to the same distances (the grid's
    # captions give each cell's time, so its pixels differ)
    assert not again.isError and pixels(again).shape == grid.shape
    assert texts(again)[-1].startswith("Bag (class 8): 4 cells")
    assert [r[:5] for r in table_rows(texts(again)[-1])] == [r[:5] for r in rows]  # sampler, steps, both distances, NFE


def test_the_quality_lookup_answers_within_the_budget(app_url):
    async def script(session):
        return await session.call_tool("quality_at_budget", {"budget": 10, "metric": "frechet", "cost": "nfe"})

    result = in_session(app_url, script)
    assert not result.isError
    (answer,) = texts(result)
    assert "**Best Frechet distance within 10 NFE: " in answer
    # the default Quality data: both embedded models' sweeps, so the table names each row's model
    assert "\n| Cell | Model | Sampler | Steps | NFE | Wall time (s) | Frechet distance |" in answer
    rows = table_rows(answer)
    assert rows and all(float(row[4]) <= 10 for row in rows)
    assert {row[1] for row in rows} == {"embedded Fashion-MNIST DiT", "embedded Fashion-MNIST SiT"}
    frechet = [float(row[6]) for row in rows]
    assert frechet == sorted(frechet)  # best first, over both models


@pytest.mark.parametrize(
    "tool, arguments, says",
    [
        (
            "generate_images",
            {"classes": ["Sneaker"], "steps": 0},
            "Steps for dpmpp_2m must be between 1 and 1000, got 0.",
        ),
        ("generate_images", {"classes": ["Spaceship"]}, "Unknown class 'Spaceship'."),
        ("generate_images", {"classes": ["Bag"], "preset": "turbo"}, "'turbo' is not one of ['exact', 'fast']"),
        ("compare_samplers", {"class_name": "Bag", "samplers": ["ddim", "nope"]}, "Unknown sampler 'nope'"),
        ("reproduce_png", {"png": "/etc/passwd"}, "The PNG must be the PNG's URL as this app returned it"),
    ],
)
def test_a_bad_request_is_a_tool_error_that_says_what_was_wrong(app_url, tool, arguments, says):
    async def script(session):
        return await session.call_tool(tool, arguments)

    result = in_session(app_url, script)
    assert result.isError and says in texts(result)[0]


def test_the_mcp_server_is_on_where_the_package_is_and_a_flag_turns_it_off(monkeypatch, capsys):
    monkeypatch.delenv("DIT_MCP", raising=False)
    assert app.parse_args([]).mcp is app.MCP_INSTALLED is True
    assert app.parse_args(["--no-mcp"]).mcp is False
    monkeypatch.setenv("DIT_MCP", "0")
    assert app.parse_args([]).mcp is False and app.parse_args(["--mcp"]).mcp is True
    monkeypatch.setattr(app, "MCP_INSTALLED", False)
    monkeypatch.delenv("DIT_MCP")
    assert app.parse_args([]).mcp is False
    with pytest.raises(SystemExit):
        app.parse_args(["--mcp"])
    assert "the MCP server needs the mcp package: pip install 'gradio[mcp]'" in capsys.readouterr().err
