"""The Quality tab's charts (Altair, as the Compare tab's): a metric against NFE per sampler with its
95% intervals as error bars, and the Pareto front of a metric against cost with the cells on it
named. Samplers whose curves coincide are drawn once and named together (``merge_identical``). With
several models' sweeps, each model has a colour and each sampler a line style, and the front runs over
every model's cells."""

from __future__ import annotations

import altair as alt
import pandas as pd

import samplers
from dit_demo.app.plots import BELOW_LABEL, CHART_WIDTH, PALETTE, TEXT, merge_identical
from dit_demo.lab.quality import answers
from dit_demo.lab.quality.answers import COSTS, METRICS, QualityData

AXIS = alt.Axis(labelColor=TEXT, titleColor=TEXT, gridOpacity=0.3)
PERCENT_AXIS = alt.Axis(labelColor=TEXT, titleColor=TEXT, gridOpacity=0.3, format="%")
# line styles told apart at a glance, one per sampler (with several models); more samplers reuse them
DASHES = [[1, 0], [6, 3], [2, 2], [10, 3, 2, 3], [4, 4], [14, 4], [2, 5], [8, 2, 2, 2, 2, 2], [12, 2, 4, 2],
          [3, 7], [6, 2, 6, 6], [1, 3, 6, 3], [16, 3, 2, 3, 2, 3], [5, 2, 1, 2], [9, 5], [2, 2, 8, 2]]  # fmt: skip


def _label(sampler: str) -> str:
    try:
        return samplers.get(sampler).label
    except ValueError:  # a sweep of a sampler this installation lacks: its own name
        return sampler


def curve_frame(data: QualityData, metric: str) -> pd.DataFrame:
    """One row per cell that has ``metric``: its model, its sampler's series, NFE, value and interval
    (a model's samplers whose curves coincide are one series)."""
    rows = []
    for model in data.models():
        series: dict[str, list] = {}
        bounds: dict[tuple[str, float], tuple] = {}
        for cell in sorted((c for c in data.cells if c["model"] == model), key=lambda c: c["nfe"]):
            v = answers.value(cell, metric)
            if v is None or not cell["nfe"]:
                continue
            name = _label(cell["sampler"])
            series.setdefault(name, []).append((float(cell["nfe"]), v))
            bounds[name, float(cell["nfe"])] = answers.interval(cell, metric) or (v, v)
        for merged, points in merge_identical(series).items():
            first = merged.split(" = ")[0]
            rows += [{"nfe": x, "value": y, "lo": bounds[first, x][0], "hi": bounds[first, x][1], "series": merged,
                      "model": model} for x, y in points]  # fmt: skip
    return pd.DataFrame(rows, columns=["nfe", "value", "lo", "hi", "series", "model"])


def _legend(title: str | None, orient: str = "bottom", **style) -> alt.Legend:
    """Every label whole (a long sampler or model name is never cut), two to a row."""
    return alt.Legend(title=title, orient=orient, columns=2, labelLimit=0, labelColor=TEXT, titleColor=TEXT, **style)


def _styles(frame: pd.DataFrame, several: bool) -> dict:
    """The encodings that tell lines apart: a colour per sampler; with several models a colour per model
    and a line style per sampler."""

    def colours(names):
        return alt.Scale(domain=names, range=[PALETTE[i % len(PALETTE)] for i in range(len(names))])

    samplers_ = list(dict.fromkeys(frame["series"]))
    if not several:
        return {"color": alt.Color("series:N", scale=colours(samplers_), legend=_legend(None))}
    models = list(dict.fromkeys(frame["model"]))
    dashes = alt.Scale(domain=samplers_, range=[DASHES[i % len(DASHES)] for i in range(len(samplers_))])
    return {
        # the models above the plot, the samplers below it: side by side the two would be wider than the page
        "color": alt.Color("model:N", scale=colours(models), legend=_legend("Model", "top")),
        "strokeDash": alt.StrokeDash(
            "series:N",
            scale=dashes,
            legend=_legend("Sampler", symbolType="stroke", symbolSize=600, symbolStrokeColor=TEXT, symbolStrokeWidth=2),
        ),
    }


def curve_chart(data: QualityData, metric: str) -> alt.Chart:
    """``metric`` against NFE (log axis), a line per sampler, the 95% interval of each cell as a bar."""
    frame = curve_frame(data, metric)
    styles = _styles(frame, data.several_models())
    label, (axis, shown) = METRICS[metric][0], _value_formats(metric)
    base = alt.Chart(frame).encode(
        x=alt.X("nfe:Q", title="model evaluations (NFE, log)", scale=alt.Scale(type="log"), axis=AXIS),
        color=styles["color"],
    )
    y = alt.Y("value:Q", title=label, scale=alt.Scale(zero=False), axis=axis)
    tooltip = ["model:N", "series:N", alt.Tooltip("nfe:Q", title="NFE"), alt.Tooltip("value:Q", title=label, format=shown),
               alt.Tooltip("lo:Q", title="95% from", format=shown), alt.Tooltip("hi:Q", title="95% to", format=shown)]  # fmt: skip
    bars = base.mark_errorbar(ticks=True).encode(y=alt.Y("lo:Q", title=label), y2="hi:Q")
    title = f"{label}: each point's bar is its 95% interval"
    if "strokeDash" not in styles:
        return _finish(alt.layer(base.mark_line(point=True).encode(y=y, tooltip=tooltip), bars), title)
    # the points a layer of their own: on the line's mark they would fill its legend's dashes as dots
    lines = base.mark_line().encode(y=y, strokeDash=styles["strokeDash"], tooltip=tooltip)
    return _finish(alt.layer(lines, base.mark_point(filled=True).encode(y=y, tooltip=tooltip), bars), title)


def pareto_chart(data: QualityData, metric: str, kind: str) -> alt.Chart:
    """Every cell as a point of cost against ``metric``; the front drawn as a line, its cells named."""
    front = {data.name(c): i for i, c in enumerate(answers.pareto_front(data.cells, metric, kind))}  # cheapest first
    several = data.several_models()
    rows = [
        {"cost": answers.cost(c, kind), "value": answers.value(c, metric), "model": c["model"],
         "cell": f"{_label(c['sampler'])} {c['steps']}",
         "front": "on the front" if data.name(c) in front else "dominated", "side": front.get(data.name(c), 0) % 2}
        for c in data.cells
        if answers.value(c, metric) is not None and answers.cost(c, kind)
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["cost", "value", "model", "cell", "front", "side"])
    label, (axis, shown) = METRICS[metric][0], _value_formats(metric)
    base = alt.Chart(frame).encode(
        x=alt.X("cost:Q", title=f"{COSTS[kind]} (log)", scale=alt.Scale(type="log"), axis=AXIS),
        y=alt.Y("value:Q", title=label, scale=alt.Scale(zero=False), axis=axis),
    )
    points = base.mark_point(filled=True, size=50).encode(
        color=alt.Color("front:N", scale=alt.Scale(domain=["on the front", "dominated"], range=[PALETTE[2], "#999999"]),
                        legend=alt.Legend(title=None, orient="bottom", labelColor=TEXT)),
        **({"shape": alt.Shape("model:N", legend=_legend("Model"))} if several else {}),
        tooltip=["model:N", "cell:N", alt.Tooltip("cost:Q", title=COSTS[kind], format=".4g"), alt.Tooltip("value:Q", title=label, format=shown)],
    )  # fmt: skip
    on_front = base.transform_filter(alt.datum.front == "on the front")
    line = on_front.mark_line(color=PALETTE[2]).encode(order="cost:Q")
    # front cells close in cost would write their names over each other: every other one is named to its left, below
    names = [
        on_front.transform_filter(alt.datum.side == side)
        .mark_text(align=align, dx=dx, dy=dy, color=TEXT, fontSize=10)
        .encode(text="cell:N")
        for side, align, dx, dy in ((0, "left", 6, -6), (1, "right", -6, 12))
    ]
    return _finish(alt.layer(line, points, *names), f"Pareto front: no other cell is both cheaper and better ({label})")


def _value_formats(metric: str) -> tuple[alt.Axis, str]:
    """The value axis and the tooltips' format: fractions in percent, as the best line and the table show them."""
    return (PERCENT_AXIS, ".1%") if metric in answers.PERCENT else (AXIS, ".4g")


def _finish(chart, title: str) -> alt.Chart:
    return chart.properties(
        title=alt.TitleParams(title, color=TEXT, fontSize=11, fontWeight="normal"),
        width=CHART_WIDTH,
        height=280,
        background="transparent",
        padding=BELOW_LABEL,
    ).configure_view(stroke=None)
