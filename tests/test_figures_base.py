"""Figure registry, fixed style and the deterministic PNG/PDF/JSON saver."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from replication.errors import InputError
from replication.figures import FIGURES, figure_bytes, generate_all, register_figure, render, save_figure
from replication.figures._base import data_notes, format_pvalue, new_figure
from replication.figures._provenance import file_record


def _tiny_figure():
    fig, axes = new_figure(width=3, height=2)
    axes[0, 0].plot([0, 1, 2], [1, 0, 2], marker="o")
    axes[0, 0].set_xlabel("x (units)")
    return fig


def test_saver_is_byte_reproducible(tmp_path):
    data = {"numbers": {"a": np.arange(3), "b": 0.5}}
    first = save_figure(_tiny_figure(), data, tmp_path / "one", "tiny")
    second = save_figure(_tiny_figure(), data, tmp_path / "two", "tiny")
    for ext in ("png", "pdf", "json"):
        a, b = (getattr(s, ext).read_bytes() for s in (first, second))
        assert a == b and len(a) > 50, ext
    assert first.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert first.pdf.read_bytes()[:5] == b"%PDF-"
    assert b"CreationDate" not in first.pdf.read_bytes()
    assert json.loads(first.json.read_text()) == {"numbers": {"a": [0, 1, 2], "b": 0.5}}


def test_png_dpi_is_fixed():
    png = figure_bytes(_tiny_figure(), "png")
    width = int.from_bytes(png[16:20], "big")
    assert width == 3 * 150


def test_register_twice_is_an_error():
    name = next(iter(FIGURES))
    with pytest.raises(ValueError, match="registered twice"):
        register_figure(name, title="t", paper="p")(lambda root: None)


def test_unknown_figure_and_missing_reference(tmp_path):
    with pytest.raises(InputError, match="unknown figure"):
        render("no-such-figure", tmp_path)
    with pytest.raises(InputError, match="reference folder not found"):
        render("real_votes", tmp_path / "absent")
    with pytest.raises(InputError, match="real_votes_annotations.csv"):
        render("real_votes", tmp_path)


def test_generate_all_writes_nothing_when_an_input_is_missing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError, match="missing input"):
        generate_all(tmp_path, out)
    assert not out.exists()


def test_file_record_reads_provenance(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "PROVENANCE.md").write_text("# title\nSource: github.com/x/y @ abc\nt.csv: copied verbatim\n")
    (folder / "t.csv").write_text("a,b\n1,2\n")
    rec = file_record(folder / "t.csv", tmp_path)
    assert rec["path"] == "src/t.csv" and rec["bytes"] == 8
    assert rec["sha256"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert rec["source"] == "Source: github.com/x/y @ abc"
    assert rec["provenance"] == "t.csv: copied verbatim"


def test_data_notes_keeps_quirks_out_of_the_default_output(caplog):
    import logging

    quirk = logging.getLogger("replication.fits.importers")
    caplog.set_level(logging.INFO, logger="replication")  # explicit: an in-process CLI run sets this logger's level
    with data_notes() as notes:
        quirk.warning("file %s: one row missing", "a.csv")
        logging.getLogger("replication.fits.lines").info("85 of 335 rows kept")
        quirk.error("a real error")
    assert notes == ["WARNING replication.fits.importers: file a.csv: one row missing",
                     "INFO replication.fits.lines: 85 of 335 rows kept"]
    shown = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert shown == [("ERROR", "a real error")]          # INFO level: the demoted quirks are not shown
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="replication")
    with data_notes():
        quirk.warning("again")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("DEBUG", "again")]
    assert logging.getLogger("replication").propagate


def test_format_pvalue():
    assert [format_pvalue(p) for p in (0.5, 0.0123, 0.0004)] == ["p = 0.500", "p = 0.012", "p < 0.001"]
    assert format_pvalue(0.0004, "") == "< 0.001" and format_pvalue(0.25, "") == "0.250"
