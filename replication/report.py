"""One self-contained HTML page: figures embedded as base64 PNG, their tables
and numbers, and the provenance (path, size, sha256, source) of every input.

``build_report(out_dir, reference_dir)`` covers the paper figures regenerated
from a reference folder; ``build_report(out_dir)`` covers the demo's simulated
study. Figures are also written beside the page (``figures/NAME.{png,pdf,json}``).
"""
from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from replication.io.atomic import _jsonable, write_text

REPORT_NAME = "report.html"
#: tables longer than this are collapsed behind a "Show" toggle
COLLAPSE_ROWS = 25
#: decimals of percentage points and accuracies in percent
POINTS = 2
#: most decimals a float column gets when the table does not say
MAX_DECIMALS = 4

_CSS = """
body{font-family:-apple-system,"DejaVu Sans",Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{font-size:1.05em;margin-top:1.2em}
img{max-width:100%;height:auto;border:1px solid #eee}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
td,th{border:1px solid #ddd;padding:.25em .55em;text-align:right;vertical-align:top}
th{background:#f5f5f5} td.l,th.l{text-align:left}
.sim{color:#B00020;font-weight:bold} .cap{color:#444;font-size:.9em}
pre{background:#f8f8f8;padding:.6em;overflow:auto;max-height:28em;font-size:.8em}
code{font-size:.85em;word-break:break-all} nav li{margin:.1em 0}
div.tw{overflow-x:auto} table.inputs{table-layout:fixed;width:100%} td.prov{color:#555;font-size:.95em;overflow-wrap:anywhere;border-top:none}
"""


@dataclass
class ReportFigure:
    """One embedded figure: its name, PNG bytes and the data of its JSON
    (``title``, ``caption``, ``simulated``, ``inputs``, ``numbers``, optional
    ``table`` as a list of row dicts and ``headline`` as {label: text})."""

    name: str
    png: bytes
    data: dict


@dataclass
class Report:
    """The content of the page, in order: headline numbers (``headline_numbers``
    then each figure's), extra tables, figures, provenance of the inputs.
    ``tables`` holds ``(title, frame)`` or ``(title, frame, decimals)``, the
    decimals of every float column (see :func:`table_html`)."""

    title: str
    intro: str
    figures: list[ReportFigure] = field(default_factory=list)
    tables: list[tuple] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)
    command: str = ""
    headline_numbers: dict[str, str] = field(default_factory=dict)

    def headline(self) -> pd.DataFrame:
        """Headline numbers of every figure: ``figure``, ``quantity``, ``value``."""
        rows = [{"figure": "(study)", "quantity": k, "value": v} for k, v in self.headline_numbers.items()]
        rows += [{"figure": f.name, "quantity": k, "value": v}
                 for f in self.figures for k, v in f.data.get("headline", {}).items()]
        return pd.DataFrame(rows, columns=["figure", "quantity", "value"])

    def all_inputs(self) -> list[dict]:
        """Provenance records of every input, each once, in first-use order."""
        seen: dict[tuple, dict] = {}
        for rec in [*self.inputs, *(r for f in self.figures for r in f.data.get("inputs", []))]:
            seen.setdefault((rec["path"], rec["sha256"]), rec)
        return list(seen.values())

    def to_html(self) -> str:
        """The whole page as one HTML string (no external resources)."""
        parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(self.title)}</title>",
                 f"<style>{_CSS}</style></head><body>", f"<h1>{_e(self.title)}</h1>", f"<p>{_e(self.intro)}</p>"]
        if self.command:
            parts.append(f"<p class=\"cap\">Made by <code>{_e(self.command)}</code></p>")
        toc = ["<li><a href=\"#headline\">Headline numbers</a></li>"]
        toc += [f"<li><a href=\"#table-{i}\">{_e(t[0])}</a></li>" for i, t in enumerate(self.tables)]
        toc += [f"<li><a href=\"#fig-{_e(f.name)}\">{_e(f.data.get('title', f.name))}</a>"
                + (" <span class=\"sim\">(simulated)</span>" if f.data.get("simulated") else "") + "</li>"
                for f in self.figures]
        toc.append("<li><a href=\"#inputs\">Inputs and provenance</a></li>")
        parts.append("<nav><ul>" + "".join(toc) + "</ul></nav>")
        parts.append("<h2 id=\"headline\">Headline numbers</h2>" + table_html(self.headline()))
        for i, (title, frame, *decimals) in enumerate(self.tables):
            body = table_html(frame, decimals=decimals[0] if decimals else None)
            if len(frame) > COLLAPSE_ROWS:
                body = f"<details><summary>Show the {len(frame)} rows</summary>{body}</details>"
            parts.append(f"<h2 id=\"table-{i}\">{_e(title)}</h2>" + body)
        for f in self.figures:
            parts.append(_figure_html(f))
        parts.append("<h2 id=\"inputs\">Inputs and provenance</h2>" + inputs_html(self.all_inputs())
                     + notes_html({f.name: f.data.get("notes", []) for f in self.figures}))
        parts.append("</body></html>\n")
        return "\n".join(parts)

    def write(self, path: str | os.PathLike) -> Path:
        """Write the page atomically; returns its path."""
        return write_text(path, self.to_html())


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def column_decimals(values: pd.Series) -> int:
    """Fewest decimals (at most :data:`MAX_DECIMALS`) that show every finite
    value of a float column as given, so a column rounded upstream is shown
    as rounded, with one number of decimals throughout."""
    v = values.to_numpy(float)
    v = v[np.isfinite(v)]
    for d in range(MAX_DECIMALS):
        if np.allclose(np.round(v, d), v, rtol=0, atol=1e-9 * max(1.0, float(np.abs(v).max(initial=0)))):
            return d
    return MAX_DECIMALS


def _format(value: Any, decimals: int | None) -> str:
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return ""
        return f"{value:.4g}" if decimals is None else f"{value:.{decimals}f}"
    return str(value)


def table_html(frame: pd.DataFrame, max_rows: int = 200, decimals: int | None = None) -> str:
    """An HTML table of ``frame``: text columns left-aligned, every float
    column with ``decimals`` decimals (default: per column, the fewest that
    show its values as given, at most :data:`MAX_DECIMALS`); rows beyond
    ``max_rows`` are counted, not shown."""
    if frame.empty:
        return "<p class=\"cap\">(none)</p>"
    text_cols = {c for c in frame.columns
                 if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])}
    places = {c: (column_decimals(frame[c]) if decimals is None else decimals) for c in frame.columns
              if pd.api.types.is_float_dtype(frame[c])}
    head = "".join(f"<th class=\"{'l' if c in text_cols else ''}\">{_e(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.head(max_rows).itertuples(index=False):
        cells = "".join(f"<td class=\"{'l' if c in text_cols else ''}\">{_e(_format(v, places.get(c)))}</td>"
                        for c, v in zip(frame.columns, row))
        body.append(f"<tr>{cells}</tr>")
    more = f"<p class=\"cap\">{len(frame) - max_rows} more rows in the JSON</p>" if len(frame) > max_rows else ""
    return f"<div class=\"tw\"><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>{more}"


def inputs_html(records: list[dict]) -> str:
    """The provenance of each input as a fixed-width table: path, size and
    sha256 on one row, the PROVENANCE.md source and note lines below."""
    if not records:
        return "<p class=\"cap\">(no input files: everything was generated in this run)</p>"
    rows = []
    for r in records:
        rows.append(f"<tr><td class=\"l\"><code>{_e(r['path'])}</code></td><td>{r['bytes']:,}</td>"
                    f"<td class=\"l\"><code>{_e(r['sha256'])}</code></td></tr>")
        lines = [r.get("source") or "", f"note: {r['provenance']}" if r.get("provenance") else ""]
        text = "<br>".join(_e(t) for t in lines if t) or "(no PROVENANCE.md line)"
        rows.append(f"<tr><td class=\"l prov\" colspan=\"3\">{text}</td></tr>")
    return ("<table class=\"inputs\"><colgroup><col style=\"width:34%\"><col style=\"width:9%\"><col></colgroup>"
            "<thead><tr><th class=\"l\">path (under the reference folder)</th><th>bytes</th><th class=\"l\">sha256</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def notes_html(notes: dict[str, list[str]]) -> str:
    """What was noted while reading the inputs (known data quirks), per figure."""
    items = [f"<li><code>{_e(name)}</code>: {_e(line)}</li>" for name, lines in notes.items() for line in lines]
    if not items:
        return ""
    return f"<h3>Notes on the inputs</h3><ul class=\"cap\">{''.join(items)}</ul>"


def _figure_html(f: ReportFigure) -> str:
    d = f.data
    b64 = base64.b64encode(f.png).decode("ascii")
    sim = "<p class=\"sim\">Simulated data: see the note in red on the figure.</p>" if d.get("simulated") else ""
    table = ""
    if d.get("table"):
        frame = pd.DataFrame(d["table"])
        table = table_html(frame)
        if len(frame) > COLLAPSE_ROWS:
            table = f"<details><summary>Show the table ({len(frame)} rows)</summary>{table}</details>"
        table = "<h3>Table</h3>" + table
    numbers = json.dumps(_jsonable(d.get("numbers", {})), indent=1, allow_nan=False)
    files = ", ".join(f"<code>{_e(r['path'])}</code>" for r in d.get("inputs", []))
    return (f"<h2 id=\"fig-{_e(f.name)}\">{_e(d.get('title', f.name))}</h2>{sim}"
            f"<p class=\"cap\">{_e(d.get('paper', ''))}</p>"
            f"<img alt=\"{_e(f.name)}\" src=\"data:image/png;base64,{b64}\">"
            f"<p class=\"cap\">{_e(d.get('caption', ''))}</p>"
            f"<p class=\"cap\">Inputs: {files or '(generated in this run)'}. Files: <code>figures/{_e(f.name)}.png</code>, "
            f"<code>.pdf</code>, <code>.json</code>.</p>{table}"
            f"<details><summary>Numbers drawn ({len(numbers):,} characters of JSON)</summary><pre>{_e(numbers)}</pre></details>")


def reference_report(reference_dir: str | os.PathLike, out_dir: str | os.PathLike,
                     names: list[str] | None = None) -> Report:
    """Regenerate the paper figures from ``reference_dir`` into
    ``out_dir/figures`` and collect them into a :class:`Report`."""
    from replication.figures import generate_all

    saved = generate_all(reference_dir, Path(out_dir) / "figures", names)
    figs = [ReportFigure(s.name, s.png.read_bytes(), s.data) for s in saved]
    return Report(
        title="Replication bias: paper figures from the reference data",
        intro=(f"Figures regenerated from the reference folder {Path(reference_dir)}. Real published data wherever "
               "they exist; figures marked simulated use the project's simulator because ImageNet-v2 selection "
               "frequencies were never published. Accuracies are top-1 in percent on the figures and fractions "
               "in the JSON."),
        figures=figs, command=f"replication report --reference {reference_dir} --out {out_dir}")


def study_figures(study: Any, results: Any, out_dir: str | os.PathLike) -> list[Any]:
    """The figures of a simulated study and its bias results (per-model gaps,
    selection bins, Engstrom-style histograms, f(s), adjusted accuracy,
    jackknife), saved into ``out_dir`` (PNG, PDF, JSON); returns the
    :class:`~replication.figures.SavedFigure` of each, in report order."""
    from replication.figures import describe, mark_simulated, save_figure, style
    from replication.figures import engstrom2020 as eng

    note = "the demo's simulated replication study (truth known)"
    paper = "Engstrom et al. 2020 style, on the demo's simulated study"
    table = results.study.levels()
    drawn = []
    with style():
        fig, numbers = eng.draw_gaps(results, study.truth)
        drawn.append(("demo_gaps", "Per-model gaps: raw, adjusted by each method, and the truth", fig,
                      {"numbers": numbers, "caption": "Each model's gap (reference minus replication accuracy) "
                                                      "against its reference accuracy: raw (grey), adjusted by each "
                                                      "method with its 95% bootstrap interval, and the simulated true "
                                                      "gap (black line)."}))
        fig, numbers = eng.draw_selection(study)
        drawn.append(("demo_selection", "Matched on observed k/n, not on true selection frequency", fig,
                      {"numbers": numbers, "caption": "Left: share of images in each of Recht et al.'s "
                                                      "MatchedFrequency bins of k/n, which the replication set "
                                                      "matches by construction. Right: the true selection frequencies "
                                                      "differ, because a candidate pool of lower s lands in a bin "
                                                      "through annotation noise."}))
        true_s = tuple(study.images.loc[study.images["dataset"] == ds, "true_s"].to_numpy()
                       for ds in (results.reference, results.replication))
        n = "/".join(str(int(v)) for v in np.unique(table.n))
        panels = eng.study_panels(table, (f"simulated {results.reference} (n = {n})",
                                          f"simulated {results.replication} (n = {n})"),
                                  selection_edges=eng.selection_edges_for(results.replication), true_s=true_s)
        fig, numbers = eng.draw_histograms(panels)
        drawn.append(("demo_histograms", "Selection frequencies: observed k/n with fitted priors", fig,
                      {"numbers": numbers, "caption": eng.HISTOGRAM_CAPTION, "table": eng.histogram_table(numbers),
                       "headline": eng.histogram_headline(numbers)}))
        fig, out = eng.fs_figure(results.study, eng.chosen_models(results.reference_accuracy), truth=study)
        drawn.append(("demo_fs_curves", "Accuracy against selection frequency, f(s)", fig, out))
        fig, numbers = eng.draw_adjusted_vs_raw(results, truth=study.truth)
        drawn.append(("demo_adjusted", "Adjusted and raw replication accuracy with both lines", fig,
                      {"numbers": numbers, "caption": f"Raw (grey) and {numbers['method']}-adjusted (blue, 95% "
                                                      "bootstrap CI) replication accuracy per model with both "
                                                      "least-squares lines; right: mean gap per method against the truth."}))
        if table.n.min() >= 2:      # the jackknife drops an annotator per image
            fig, out = eng.jackknife_figure(results.study, true_mean_adjusted=100 * float(
                study.truth["adjusted_replication_accuracy"].mean()))
            drawn.append(("demo_jackknife", "Jackknife: the plug-in estimate against 1/n", fig, out))
    saved = []
    for name, title, fig, out in drawn:
        mark_simulated(fig, note)
        data = describe(name, title, paper, {**out, "simulated": True, "inputs": []})
        saved.append(save_figure(fig, data, out_dir, name))
    return saved


def demo_report(out_dir: str | os.PathLike, study: Any, results: Any, table: pd.DataFrame,
                figures: list[Any] | None = None, command: str = "replication demo") -> Report:
    """A :class:`Report` of the demo's simulated study: the comparison with
    the truth, per-model gaps, and the figures of :func:`study_figures`
    (``figures`` when already saved, else saved now in ``out_dir/figures``)."""
    saved = study_figures(study, results, Path(out_dir) / "figures") if figures is None else figures
    figs = [ReportFigure(s.name, s.png.read_bytes(), s.data) for s in saved]
    per_model = results.summary().table.reset_index()
    per_model.insert(1, "true gap", 100 * study.truth["gap"].reindex(per_model["model"]).to_numpy())
    means = results.mean_gap_conf_int()
    true_gap = 100 * float(study.truth["gap"].mean())
    headline = {
        **{("raw mean gap" if k == "raw" else f"{k}-adjusted mean gap"):
           f"{100 * r['value']:.2f} points [{100 * r['lower']:.2f}, {100 * r['upper']:.2f}]" for k, r in means.iterrows()},
        "true mean gap (the simulated shift)": f"{true_gap:.2f} points"}
    cfg = study.config
    intro = (f"Simulated replication study (preset engstrom2020: a raw drop near 11.7 points of which about 3.6 is a "
             f"true shift). {len(results.study.reference):,} reference and {len(results.study.replication):,} "
             f"replication images, {len(results.reference_accuracy)} models, {cfg.n_annotators} annotators per image, "
             f"{results.n_bootstrap} bootstrap replicates. Nothing here is real data; the truth is known, so every "
             "estimate can be checked. Gaps and accuracies are in percentage points, to 2 decimals.")
    return Report(title="Replication bias demo: how much of the accuracy drop is real?", intro=intro,
                  figures=figs, command=command, headline_numbers=headline,
                  tables=[("Mean gap over models, by method, against the truth (percentage points)",
                           table.reset_index(), POINTS),
                          ("Per-model gaps (percentage points, 95% bootstrap intervals)", per_model, POINTS)])


def write_demo_report(out_dir: str | os.PathLike, study: Any, results: Any, table: pd.DataFrame,
                      figures: list[Any] | None = None) -> Path:
    """Write ``out_dir/report.html`` for a finished demo run (see
    :func:`replication.demo.run_demo`); ``figures`` as in :func:`demo_report`."""
    return demo_report(out_dir, study, results, table, figures).write(Path(out_dir) / REPORT_NAME)


def build_report(out_dir: str | os.PathLike, reference_dir: str | os.PathLike | None = None, *,
                 seed: int = 0, n_bootstrap: int | None = None) -> Path:
    """Write ``out_dir/report.html`` (and its figures): for the reference
    folder, or, when ``reference_dir`` is None, for the demo's simulated study
    (``replication demo`` run into ``out_dir`` with ``seed``)."""
    if reference_dir is not None:
        return reference_report(reference_dir, out_dir).write(Path(out_dir) / REPORT_NAME)
    from replication.demo import DEMO_BOOTSTRAP, run_demo

    demo = run_demo(out_dir, seed, n_bootstrap=DEMO_BOOTSTRAP if n_bootstrap is None else n_bootstrap)
    return demo["paths"]["report_html"]
