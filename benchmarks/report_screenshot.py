"""Open the HTML report in headless Chromium: take a screenshot and check that
every embedded image decoded (naturalWidth > 0).

    python benchmarks/report_screenshot.py [--reference DIR] [--report FILE] [--out DIR]

Without ``--report`` it first builds the report (``replication report``) into
``--out``. Needs Debian's ``chromium`` (``apt-get install -y chromium``).
Prints the image counts, the screenshot path and the timings.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--virtual-time-budget=10000")

#: appended to a copy of the page: writes "<images> <decoded>" into the title once loaded
_CHECK_SCRIPT = ("<script>window.addEventListener('load',function(){var im=Array.from(document.images);"
                 "document.title='IMGCHECK '+im.length+' '+im.filter(function(i){return i.complete&&i.naturalWidth>0;})"
                 ".length;});</script>")


def find_chromium() -> str | None:
    """Path of a Chromium binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(chromium: str, args: list[str], profile: str, timeout: float) -> subprocess.CompletedProcess:
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def check_images(html_path: Path, chromium: str, timeout: float = 120) -> tuple[int, int]:
    """(number of <img> elements, number decoded) after Chromium loads the page."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.html"
        probe.write_text(html_path.read_text(encoding="utf-8").replace("</body>", _CHECK_SCRIPT + "</body>", 1),
                         encoding="utf-8")
        res = _run(chromium, ["--dump-dom", probe.as_uri()], str(Path(tmp) / "profile"), timeout)
    m = re.search(r"<title>IMGCHECK (\d+) (\d+)</title>", res.stdout)
    if m is None:
        raise RuntimeError(f"chromium did not report images (rc {res.returncode}): {res.stderr.strip()[-500:]}")
    return int(m.group(1)), int(m.group(2))


def screenshot(html_path: Path, png_path: Path, chromium: str, size: tuple[int, int] = (1400, 4000),
               timeout: float = 120) -> Path:
    """Screenshot of the page's top ``size`` (width, height) pixels."""
    with tempfile.TemporaryDirectory() as tmp:
        res = _run(chromium, [f"--screenshot={png_path}", f"--window-size={size[0]},{size[1]}",
                              html_path.resolve().as_uri()], str(Path(tmp) / "profile"), timeout)
    if not png_path.is_file() or png_path.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot (rc {res.returncode}): {res.stderr.strip()[-500:]}")
    return png_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "reference")
    ap.add_argument("--report", type=Path, default=None, help="an existing report.html (default: build one)")
    ap.add_argument("--out", type=Path, default=Path("report-check"))
    args = ap.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("chromium not found: apt-get update && apt-get install -y chromium", file=sys.stderr)
        return 1
    html_path = args.report
    if html_path is None:
        from replication.demo import run_demo
        from replication.report import REPORT_NAME, reference_report

        t0 = time.perf_counter()
        if args.reference.is_dir():
            html_path = reference_report(args.reference, args.out).write(args.out / REPORT_NAME)
        else:
            html_path = run_demo(args.out)["paths"]["report_html"]
        print(f"built {html_path} ({html_path.stat().st_size / 1e6:.2f} MB) in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    n_img, n_ok = check_images(html_path, chromium)
    t1 = time.perf_counter()
    shot = screenshot(html_path, html_path.parent / "report_screenshot.png", chromium)
    t2 = time.perf_counter()
    print(f"images: {n_ok}/{n_img} decoded ({t1 - t0:.1f} s); screenshot {shot} ({t2 - t1:.1f} s)")
    return 0 if n_img > 0 and n_ok == n_img else 1


if __name__ == "__main__":
    sys.exit(main())
