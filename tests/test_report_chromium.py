"""The report rendered by headless Chromium (Debian package ``chromium``):
every embedded image decodes and a screenshot is taken."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from conftest import missing

from replication.report import reference_report

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "report_screenshot.py"
_spec = importlib.util.spec_from_file_location("report_screenshot", _SCRIPT)
report_screenshot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report_screenshot)

CHROMIUM = report_screenshot.find_chromium()


def test_report_renders_in_chromium(reference_dir, tmp_path):
    if CHROMIUM is None:
        missing("chromium not installed (apt-get install -y chromium)")
    html_path = reference_report(reference_dir, tmp_path, names=["real_votes"]).write(tmp_path / "report.html")
    n_img, n_ok = report_screenshot.check_images(html_path, CHROMIUM)
    assert n_img == 1 and n_ok == 1
    shot = report_screenshot.screenshot(html_path, tmp_path / "shot.png", CHROMIUM, size=(1400, 1600))
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 1400 and int.from_bytes(data[20:24], "big") == 1600
