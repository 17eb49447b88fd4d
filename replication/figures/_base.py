"""Figure registry, fixed style and a deterministic saver.

A figure is a function ``draw(reference_dir, **options) -> (Figure, data)``
registered with :func:`register_figure`. ``data`` is a JSON-able dict with

- ``"inputs"``: list of the files read (paths; turned into provenance records
  by :func:`render`),
- ``"numbers"``: the numbers drawn (points, fitted parameters, intervals),
- optionally ``"simulated"`` (bool), ``"caption"`` (str), ``"headline"``
  ({label: formatted value}, the few numbers a reader wants first),
  ``"table"`` (list of row dicts shown in the report) and ``"notes"`` (lines
  on quirks of the inputs; :func:`render` adds what was logged).

:func:`save_figure` writes ``NAME.png``, ``NAME.pdf`` and ``NAME.json``
atomically and byte-for-byte reproducibly (Agg backend, fixed rcParams and dpi,
no dates in the metadata); :func:`generate_all` writes every figure's files
together or none of them.
"""
from __future__ import annotations

import io
import logging
import textwrap
import os
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import matplotlib
import numpy as np

matplotlib.use("Agg", force=True)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from replication.errors import InputError  # noqa: E402
from replication.figures._provenance import file_record  # noqa: E402
from replication.io.atomic import write_outputs  # noqa: E402

log = logging.getLogger(__name__)

#: resolution of the PNG files (dots per inch)
DPI = 150

#: rcParams applied while drawing and saving every figure
STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.labelsize": 9.0,
    "legend.fontsize": 8.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "figure.dpi": 100,
    "figure.constrained_layout.use": True,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.4,
    "lines.markersize": 4.0,
    "legend.frameon": False,
    "savefig.dpi": DPI,
    "svg.hashsalt": "replication",
    "pdf.fonttype": 42,
    "image.cmap": "viridis",
}

#: colours for categorical series, colour-blind safe (Okabe-Ito)
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999", "#F0E442")

PNG_METADATA = {"Software": None}
PDF_METADATA = {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}

DrawFunc = Callable[..., "tuple[Figure, dict]"]


@dataclass(frozen=True)
class FigureSpec:
    """A registered figure: its name, drawing function, one-line title, the
    paper it follows and the reference-folder files it reads (relative paths)."""

    name: str
    draw: DrawFunc
    title: str
    paper: str
    inputs: tuple[str, ...]


#: figure name -> spec, in registration order
FIGURES: dict[str, FigureSpec] = {}


def register_figure(name: str, *, title: str, paper: str, inputs: tuple[str, ...] = ()) -> Callable[[DrawFunc], DrawFunc]:
    """Decorator that adds a drawing function to :data:`FIGURES` (a second
    registration under the same name is a programming error)."""

    def deco(func: DrawFunc) -> DrawFunc:
        if name in FIGURES:
            raise ValueError(f"figure {name!r} registered twice")
        FIGURES[name] = FigureSpec(name, func, title, paper, tuple(inputs))
        return func

    return deco


def style() -> AbstractContextManager:
    """Context manager with the fixed figure style (:data:`STYLE`)."""
    return matplotlib.rc_context(STYLE)


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 7.0, height: float = 4.0,
               **kw: Any) -> tuple[Figure, np.ndarray]:
    """``plt.subplots`` in the fixed style; sizes in inches. Returns the Figure
    and an object array of Axes of shape (nrows, ncols)."""
    with style():
        return plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, **kw)


def format_pvalue(p: float, prefix: str = "p") -> str:
    """A p-value as text: ``"p = 0.042"`` (3 decimals), ``"p < 0.001"`` below
    that; ``prefix=""`` gives ``"0.042"`` and ``"< 0.001"``."""
    lead = f"{prefix} " if prefix else ""
    if p < 0.001:
        return f"{lead}< 0.001"
    return f"{lead}= {p:.3f}" if prefix else f"{p:.3f}"


def mark_simulated(fig: Figure, text: str) -> None:
    """Stamp a figure as drawn from simulated data (red text at the top,
    wrapped to the figure's width)."""
    width_chars = int(fig.get_figwidth() * 11)
    fig.suptitle(textwrap.fill(f"SIMULATED DATA: {text}", width_chars), color="#B00020", fontsize=9,
                 fontweight="bold")


def check_inputs(spec: FigureSpec, reference_dir: str | os.PathLike) -> Path:
    """Return ``reference_dir`` as a Path after checking every input exists;
    otherwise one InputError naming the missing file and the expected place."""
    root = Path(reference_dir)
    if not root.is_dir():
        raise InputError(f"{root}: reference folder not found (expected a folder laid out like ../shared/reference)")
    for rel in spec.inputs:
        if not (root / rel).is_file():
            raise InputError(f"{root / rel}: missing input of figure {spec.name!r} (expected at {rel} under the reference folder)")
    return root


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def data_notes() -> Iterator[list[str]]:
    """Collect what the ``replication`` loggers say while a figure is drawn.

    INFO and WARNING records (known quirks of the reference data, e.g. a timm
    configuration present in one results file only) are returned as lines
    ``"LEVEL logger: message"`` for the figure's JSON and the report, and
    passed on at DEBUG level only (``--debug`` shows them). Other records
    are passed on unchanged, after the block.
    """
    top = logging.getLogger("replication")
    handler, propagate = _Collect(), top.propagate
    notes: list[str] = []
    top.addHandler(handler)
    top.propagate = False
    try:
        yield notes
    finally:
        top.removeHandler(handler)
        top.propagate = propagate
        for record in handler.records:
            if logging.INFO <= record.levelno < logging.ERROR:
                notes.append(f"{record.levelname} {record.name}: {record.getMessage()}")
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            logger = logging.getLogger(record.name)
            if logger.isEnabledFor(record.levelno):
                logger.handle(record)


def render(name: str, reference_dir: str | os.PathLike, **options: Any) -> tuple[Figure, dict]:
    """Draw figure ``name`` from the reference folder; returns the Figure and
    its data with ``inputs`` as provenance records (path, bytes, sha256, source)
    and ``notes``, what was logged while reading them (see :func:`data_notes`)."""
    if name not in FIGURES:
        raise InputError(f"unknown figure {name!r}; known: {', '.join(FIGURES)}")
    spec = FIGURES[name]
    root = check_inputs(spec, reference_dir)
    with style(), data_notes() as notes:
        fig, data = spec.draw(root, **options)
    return fig, describe(name, spec.title, spec.paper, {**data, "notes": [*data.get("notes", []), *notes]}, root)


def describe(name: str, title: str, paper: str, data: dict, root: str | os.PathLike | None = None) -> dict:
    """The full JSON content of a figure from what its drawing function
    returned: identity, flags, headline, table, input provenance, numbers."""
    records = [file_record(p, root) for p in dict.fromkeys(Path(p) for p in data.get("inputs", []))]
    return {"figure": name, "title": title, "paper": paper,
            "simulated": bool(data.get("simulated", False)), "caption": data.get("caption", ""),
            "headline": data.get("headline", {}), "table": data.get("table", []),
            "inputs": records, "notes": list(data.get("notes", [])), "numbers": data["numbers"]}


@dataclass(frozen=True)
class SavedFigure:
    """Paths written for one figure, and its data (the JSON's content)."""

    name: str
    png: Path
    pdf: Path
    json: Path
    data: dict


def figure_bytes(fig: Figure, fmt: str) -> bytes:
    """The figure encoded as ``png`` or ``pdf``, reproducibly."""
    buf = io.BytesIO()
    with style():
        fig.savefig(buf, format=fmt, dpi=DPI, metadata=PNG_METADATA if fmt == "png" else PDF_METADATA)
    return buf.getvalue()


def figure_files(fig: Figure, data: dict, out_dir: str | os.PathLike, name: str) -> tuple[SavedFigure, dict]:
    """Encode ``fig`` (then close it): where its ``NAME.png``, ``NAME.pdf`` and
    ``NAME.json`` go in ``out_dir``, and ``{path: content}`` for
    :func:`~replication.io.write_outputs`. Nothing is written."""
    out = Path(out_dir)
    try:
        png, pdf = figure_bytes(fig, "png"), figure_bytes(fig, "pdf")
    finally:
        plt.close(fig)
    saved = SavedFigure(name, out / f"{name}.png", out / f"{name}.pdf", out / f"{name}.json", data)
    return saved, {saved.png: png, saved.pdf: pdf, saved.json: data}


def save_figure(fig: Figure, data: dict, out_dir: str | os.PathLike, name: str) -> SavedFigure:
    """Write ``NAME.png``, ``NAME.pdf`` and ``NAME.json`` into ``out_dir``
    (all three or none), then close the figure."""
    saved, files = figure_files(fig, data, out_dir, name)
    write_outputs(files)
    return saved


def generate(name: str, reference_dir: str | os.PathLike, out_dir: str | os.PathLike,
             **options: Any) -> SavedFigure:
    """Draw figure ``name`` from ``reference_dir`` and save it in ``out_dir``."""
    fig, data = render(name, reference_dir, **options)
    return save_figure(fig, data, out_dir, name)


def generate_all(reference_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 names: list[str] | None = None, options: dict[str, dict] | None = None) -> list[SavedFigure]:
    """Generate the named figures (default: all registered), with a progress
    bar on stderr; ``options``: keyword options per figure name. Every input
    is checked and every figure drawn before the files are written, all
    together, so a failure writes nothing."""
    saved, files = render_all(reference_dir, out_dir, names, options)
    write_outputs(files)
    return saved


def render_all(reference_dir: str | os.PathLike, out_dir: str | os.PathLike,
               names: list[str] | None = None, options: dict[str, dict] | None = None) -> tuple[list[SavedFigure], dict]:
    """Draw and encode the named figures (default: all registered) as
    :func:`generate_all` does, writing nothing: their :class:`SavedFigure`
    records and ``{path: content}`` of all their files."""
    from tqdm.auto import tqdm

    chosen = list(FIGURES) if names is None else list(names)
    unknown = [n for n in chosen if n not in FIGURES]
    if unknown:
        raise InputError(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(FIGURES)}")
    for name in chosen:
        check_inputs(FIGURES[name], reference_dir)
    drawn = []
    try:
        for name in tqdm(chosen, desc="figures", unit="fig", disable=None):
            drawn.append((name, *render(name, reference_dir, **(options or {}).get(name, {}))))
    except BaseException:
        for _, fig, _ in drawn:
            plt.close(fig)
        raise
    saved, files = [], {}
    for name, fig, data in drawn:
        one, more = figure_files(fig, data, out_dir, name)
        saved.append(one)
        files.update(more)
    return saved, files
