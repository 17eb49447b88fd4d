"""Precision against cost, per method: the figure of ``replication design``,
drawn from its JSON (so the report redraws it byte for byte)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure

from replication.figures._base import PALETTE, describe, figure_bytes, new_figure, plt  # Agg backend set there

NAME = "design_precision_cost"
TITLE = "Study designs: precision against cost, per method"


def draw_design(data: dict) -> tuple[Figure, dict]:
    """Left: expected 95%-interval width of the mean adjusted gap against votes;
    right: |bias| against votes (log axes; |bias| below 0.01 points drawn at 0.01).
    One colour per method; filled markers meet the criteria (width, bias and
    coverage); the dashed lines are the width and bias targets; the star marks
    the recommended design."""
    methods = list(dict.fromkeys(m for d in data["designs"] for m in d["methods"]))
    crit = data["criteria"]
    fig, axes = new_figure(1, 2, width=9.0, height=4.2)
    numbers = {"methods": {}, "criteria": crit, "recommended": data.get("recommended")}
    rec = data.get("recommended")
    for j, (ax, key, label, target) in enumerate(zip(
            axes[0], ("ci_width", "bias"), ("expected 95% interval width (points)", "|bias| (points)"),
            (crit["target_ci_width"], crit["max_bias"]))):
        for i, m in enumerate(methods):
            pts = [(d["votes"], abs(d["methods"][m][key]), d["methods"][m]["meets_criteria"])
                   for d in data["designs"] if m in d["methods"] and d["methods"][m][key] is not None]
            if not pts:
                continue
            votes, value, meets = (np.array(v) for v in zip(*pts))
            colour = PALETTE[i % len(PALETTE)]
            ax.scatter(votes, np.maximum(100 * value, _FLOOR), s=24, label=m, edgecolors=colour,
                       facecolors=[colour if ok else "none" for ok in meets], zorder=3)
            entry = numbers["methods"].setdefault(m, {"votes": votes.tolist(), "meets": meets.tolist()})
            entry[key] = value.tolist()
        if rec is not None:
            ax.scatter([rec["votes"]], [max(100 * abs(rec["methods"][rec["method"]][key]), _FLOOR)], marker="*",
                       s=260, facecolors="none", edgecolors="black", linewidths=1.0, zorder=4,
                       label=f"recommended ({rec['method']})" if j == 0 else None)
        ax.axhline(100 * target, color="0.3", linestyle="--", linewidth=0.9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis, fmt in ((ax.xaxis, _millions), (ax.yaxis, _plain)):
            axis.set_major_formatter(ticker.FuncFormatter(fmt))
            axis.set_minor_formatter(ticker.FuncFormatter(fmt))
        ax.set_xlabel("votes, millions (annotators x (reference + pool images))")
        ax.set_ylabel(label)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels))
    fig.suptitle(TITLE)
    return fig, numbers


#: smallest |bias| drawn (points), so that a log axis can show zero
_FLOOR = 0.01


def _millions(value: float, _pos: int) -> str:
    return f"{value / 1e6:g}"


def _plain(value: float, _pos: int) -> str:
    """1, 2 and 5 times a power of ten, written out; other ticks unlabelled."""
    lead = value / 10 ** np.floor(np.log10(value)) if value > 0 else 0.0
    return f"{value:g}" if any(np.isclose(lead, (1, 2, 5))) else ""


def render_design_figure(data: dict) -> tuple[bytes, bytes, dict]:
    """``(png, pdf, figure JSON)`` of the figure for a design JSON (deterministic bytes)."""
    fig, numbers = draw_design(data)
    try:
        png, pdf = figure_bytes(fig, "png"), figure_bytes(fig, "pdf")
    finally:
        plt.close(fig)
    source = data.get("scenario", {}).get("source", "")
    caption = (f"Simulated studies of each design ({source}): the expected 95%-interval width and |bias| of the "
               "mean adjusted gap against the votes it costs. Filled: the method meets the criteria (width and "
               "|bias| targets dashed, and coverage); star: the recommended design.")
    return png, pdf, describe(NAME, TITLE, "replication design",
                              {"numbers": numbers, "caption": caption, "simulated": True, "inputs": []})


def figure_outputs(data: dict, out_dir: str | os.PathLike) -> dict[Path, object]:
    """``{path: content}`` of ``NAME.png``, ``NAME.pdf`` and ``NAME.json`` in ``out_dir``,
    for :func:`replication.io.write_outputs`."""
    png, pdf, meta = render_design_figure(data)
    out = Path(out_dir)
    return {out / f"{NAME}.png": png, out / f"{NAME}.pdf": pdf, out / f"{NAME}.json": meta}
