"""The `figures` and `report` commands through the CLI entry point."""
from __future__ import annotations

import json
import re

from replication.cli import main
from replication.figures import FIGURES


def test_figures_list(capsys):
    assert main(["figures", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in FIGURES)


def test_figures_one_by_name(reference_dir, tmp_path, capsys):
    assert main(["figures", "recht2019_v2_vs_v1", "--reference", str(reference_dir), "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "recht2019_v2_vs_v1.json", "recht2019_v2_vs_v1.pdf", "recht2019_v2_vs_v1.png"]
    data = json.loads((tmp_path / "recht2019_v2_vs_v1.json").read_text())
    assert data["inputs"][0]["path"] == "imagenetv2/recht2019_correct_top1.parquet"


def test_figures_bad_input_writes_nothing(tmp_path, capsys):
    out, ref = tmp_path / "out", tmp_path / "ref"
    ref.mkdir()
    assert main(["figures", "no_such_figure", "--reference", str(ref), "--out", str(out)]) == 1
    assert "unknown figure" in capsys.readouterr().err
    assert main(["figures", "all", "--reference", str(tmp_path / "missing"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("replication figures: error:") and len(err.strip().splitlines()) == 1
    assert main(["figures", "all", "--out", str(out)]) == 1
    assert not out.exists()


def test_report_without_reference_covers_the_demo(tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path), "--bootstrap", "20", "--seed", "1"]) == 0
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 6
    # gaps and accuracies in the demo's tables: two decimals throughout
    tables = page[page.index('id="table-0"'):page.index('id="fig-')]
    cells = re.findall(r"<td[^>]*>(-?[0-9.]+)</td>", tables)
    assert cells and all(re.fullmatch(r"-?[0-9]+\.[0-9]{2}", c) for c in cells)
    assert "true mean gap (the simulated shift)" in page and "Simulated data" in page
    truth = json.loads((tmp_path / "study" / "truth.json").read_text())
    assert f"{100 * truth['summary']['mean_true_gap']:.2f} points" in page
    assert (tmp_path / "figures" / "demo_adjusted.json").is_file()
