"""One self-contained HTML page: figures embedded as base64 PNG, their tables
and numbers, and the provenance (path, size, sha256, source) of every input.

:func:`reference_report` covers the paper figures regenerated from a reference
folder; the demo's page (:func:`replication.demo.demo_report`) is built from
the same parts. Figures are also written beside the page
(``figures/NAME.{png,pdf,json}``).
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

from replication.io.atomic import _jsonable, write_outputs

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
    decimals of every float column (see :func:`table_html`); ``files`` maps
    the paths of files that go with the page (its figures) to their content."""

    title: str
    intro: str
    figures: list[ReportFigure] = field(default_factory=list)
    tables: list[tuple] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)
    command: str = ""
    headline_numbers: dict[str, str] = field(default_factory=dict)
    files: dict[Path, Any] = field(default_factory=dict)

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
        """Write the page and its :attr:`files` atomically, all or none; returns the page's path."""
        return write_outputs({**self.files, path: self.to_html()})[-1]


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
                     names: list[str] | None = None, options: dict[str, dict] | None = None) -> Report:
    """The paper figures regenerated from ``reference_dir`` as a :class:`Report`
    whose files (``out_dir/figures/NAME.{png,pdf,json}``) are written with the
    page by :meth:`Report.write`; ``options``: keyword options per figure
    (the user's evaluate outputs for ``shift_lines``, the shift of the Taori figure)."""
    from replication.figures import render_all

    saved, files = render_all(reference_dir, Path(out_dir) / "figures", names, options)
    figs = [ReportFigure(s.name, files[s.png], s.data) for s in saved]
    return Report(
        title="Replication bias: paper figures from the reference data",
        intro=(f"Figures regenerated from the reference folder {Path(reference_dir)}. Real published data wherever "
               "they exist; figures marked simulated use the project's simulator because ImageNet-v2 selection "
               "frequencies were never published. Accuracies are top-1 in percent on the figures and fractions "
               "in the JSON."),
        figures=figs, files=files, command=f"replication report --reference {reference_dir} --out {out_dir}" + "".join(
            f" --{k} {v}" for opts in (options or {}).values() for k, v in opts.items()))


def add_design_section(report: Report, design: str | os.PathLike, out_dir: str | os.PathLike) -> Report:
    """Append the study-design section to ``report``: the table of ``replication
    design``'s JSON ``design``, its recommendation as a headline number, and its
    precision-against-cost figure (``out_dir/figures/``, written with the page)."""
    from replication.design.figure import figure_outputs
    from replication.design.results import design_table, read_design
    from replication.figures._provenance import file_record

    data = read_design(design)
    files = figure_outputs(data, Path(out_dir) / "figures")
    png, _, meta = files.values()
    report.files.update(files)
    report.figures.append(ReportFigure(meta["figure"], png, meta))
    rec = data["recommended"]
    report.headline_numbers["recommended study design"] = (
        "none meets the criteria" if rec is None else
        f"{rec['annotators']} annotators, {rec['reference_images']:,} reference / {rec['replication_images']:,} "
        f"replication images from a pool of {rec['pool_images']:,} ({rec['votes']:,} votes), {rec['method']}")
    table = design_table(data).drop(columns=["error"])
    report.tables.append(("Planning a replication: simulated designs (bias, RMSE, interval width in points; "
                          f"coverage in %; {data['scenario'].get('source', '')})", table, POINTS))
    report.inputs.append(file_record(design))
    return report
