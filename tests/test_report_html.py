"""The self-contained HTML report."""
from __future__ import annotations

import base64
import re

import pandas as pd

from replication.figures._provenance import sha256_file
from replication.report import Report, ReportFigure, reference_report, table_html


def test_reference_report_embeds_figures_and_provenance(reference_dir, tmp_path):
    report = reference_report(reference_dir, tmp_path, names=["real_votes"])
    path = report.write(tmp_path / "report.html")
    page = path.read_text(encoding="utf-8")
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == 1
    assert base64.b64decode(embedded[0]) == (tmp_path / "figures" / "real_votes.png").read_bytes()
    # self-contained: no external resources
    assert not re.search(r'(src|href)="(https?:|file:|//)', page) and "<link" not in page
    for rel in ("real-reassessed-imagenet/real_votes_annotations.csv", "imagenetv2/recht2019_correct_top1.parquet"):
        assert sha256_file(reference_dir / rel) in page and rel in page
    assert "Source repo: github.com/google-research/reassessed-imagenet" in page
    assert "mean top-1 of the 64 CNNs" in page          # headline numbers
    assert "NASNet / PNASNet" in page                    # the figure's table
    assert (tmp_path / "figures" / "real_votes.pdf").is_file()


def test_report_html_escapes_and_marks_simulated():
    fig = ReportFigure("sim", b"\x89PNG", {"title": "a <b> & c", "simulated": True, "numbers": {"x": 1.0},
                                           "inputs": [], "headline": {"gap": "1.0 points"}})
    page = Report(title="T <1>", intro="i", figures=[fig]).to_html()
    assert "T &lt;1&gt;" in page and "a &lt;b&gt; &amp; c" in page
    assert "Simulated data" in page and "(simulated)" in page and "1.0 points" in page


def test_table_html_formats_and_truncates():
    frame = pd.DataFrame({"model": ["a", "b", "c"], "acc": [0.123456, 0.5, 1.0]})
    page = table_html(frame, max_rows=2)
    assert "0.1235" in page and ">c<" not in page and "1 more rows" in page


def test_table_html_decimals_per_column():
    frame = pd.DataFrame({"estimate": pd.Series(["raw", "naive"], dtype="str"), "gap": [11.8512, 3.6231],
                          "rounded": [56.27, 42.5], "fine": [-0.033, 0.1], "p-value": ["< 0.001", "0.250"],
                          "n": [3, 4]})
    page = table_html(frame, decimals=2)
    assert ">11.85<" in page and ">3.62<" in page and ">42.50<" in page and ">-0.03<" in page
    page = table_html(frame)                            # default: each column as rounded upstream
    assert ">11.8512<" in page and ">42.50<" in page and ">-0.033<" in page and ">0.100<" in page and ">3<" in page
    assert '<td class="l">raw</td>' in page and '<td class="l">&lt; 0.001</td>' in page
