"""A printable results summary (statsmodels style): ``as_text()``, ``as_html()``."""
from __future__ import annotations

import html
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Summary:
    """Title, ``key : value`` info lines, a table and notes.

    ``float_format`` is a format spec applied to the table's floats
    (e.g. ``".4g"``, or ``"8.2f"`` for percentage points).
    """

    title: str
    info: list[tuple[str, str]] = field(default_factory=list)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    float_format: str = ".4g"

    def _fmt(self, v: float) -> str:
        return format(v, self.float_format)

    def as_text(self) -> str:
        """Plain-text block: centred title, ``key : value`` info lines, the table, notes."""
        body = self.table.to_string(float_format=self._fmt) if len(self.table) else ""
        width = max([72, len(self.title), *(len(line) for line in body.splitlines())])
        lines = [self.title.center(width), "=" * width]
        key_w = max((len(k) for k, _ in self.info), default=0)
        lines += [f"{k:<{key_w}} : {v}" for k, v in self.info]
        if body:
            lines += ["-" * width, body, "-" * width]
        lines += self.notes
        return "\n".join(lines)

    def as_html(self) -> str:
        """HTML fragment: ``<h4>`` title, info table, the table, notes as paragraphs."""
        info = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in self.info)
        notes = "".join(f"<p>{html.escape(n)}</p>" for n in self.notes)
        table = self.table.to_html(float_format=self._fmt) if len(self.table) else ""
        return f"<h4>{html.escape(self.title)}</h4>" + (f"<table>{info}</table>" if info else "") + table + notes

    def __str__(self) -> str:
        return self.as_text()

    __repr__ = __str__
