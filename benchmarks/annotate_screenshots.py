"""Screenshots of the annotation app in headless Chromium: the task page (a
few images selected, one focused by keyboard) and the admin page, plus the
time a scripted annotator needs per task through the real browser.

    python benchmarks/annotate_screenshots.py [--out DIR] [--tasks N]

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``annotate``
extra (selenium is in the ``test`` extra). Builds a small plan from
scikit-image's photos (espresso and tabby-cat classes), serves it on a free
port of 127.0.0.1, and prints where the PNGs are.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from annotate_e2e import free_port  # noqa: E402
from images import make_images  # noqa: E402

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@contextlib.contextmanager
def serving(app, port: int):
    """Run ``app`` with uvicorn in a background thread on 127.0.0.1:``port``."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def chrome(profile: Path, size: tuple[int, int] = (1440, 1000), chromium: str = CHROMIUM,
           chromedriver: str = CHROMEDRIVER):
    """A headless Chromium driven by Debian's chromedriver (nothing downloaded)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def demo_plan(root: Path, annotators: int = 3, n_ref: int = 40, n_cand: int = 100):
    """A plan over scikit-image photo crops: reference and candidate images of
    classes 967 (espresso) and 281 (tabby); returns the plan folder."""
    from replication.annotate.plan import PlanSettings, build_plan, validate_images

    rows = []
    for name, n in (("imagenet-val", n_ref), ("candidates", n_cand)):
        folder = make_images(root / name, n, n_classes=2, procs=2)
        for path in sorted(folder.rglob("*.jpeg")):
            rows.append((name, f"{name[:3]}-{path.stem}", (967, 281)[int(path.parent.name)], str(path)))
    table = pd.DataFrame(rows, columns=["dataset", "image_id", "class_id", "path"])
    plan = build_plan(validate_images(table), PlanSettings(annotators=annotators, seed=0))
    plan.write(root / "plan")
    return root / "plan"


def wait_for_grid(driver, n_min: int = 1, timeout: float = 20):
    """Wait until the task grid shows at least ``n_min`` loaded images."""
    deadline = time.time() + timeout
    script = ("return Array.from(document.querySelectorAll('#grid img'))"
              ".filter(function(i){return i.complete && i.naturalWidth > 0;}).length;")
    while time.time() < deadline:
        if driver.execute_script(script) >= n_min:
            return
        time.sleep(0.05)
    raise RuntimeError("the task's images did not load")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("annotate-screenshots"))
    ap.add_argument("--tasks", type=int, default=3, help="tasks the scripted annotator submits (timed)")
    args = ap.parse_args(argv)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from replication.annotate.app import Settings, create_app
    from replication.annotate.store import add_annotators

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        plan_dir = demo_plan(tmp)
        app = create_app(Settings(plan_dir, f"sqlite:///{tmp / 'votes.db'}", "admin-secret"))
        db = app.state.service.db
        links = add_annotators(db, ["alice", "bob", "carol"])
        with serving(app, free_port()) as base, chrome(tmp / "profile") as driver:
            driver.get(f"{base}/a/{links[0][1]}")
            wait_for_grid(driver, 30)
            tiles = driver.find_elements(By.CSS_SELECTOR, "#grid .tile")
            for i in (0, 3, 9, 10, 17):
                tiles[i].click()
            body = driver.find_element(By.TAG_NAME, "body")
            body.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_DOWN, Keys.SPACE, Keys.ARROW_RIGHT)
            task_png = args.out / "annotate_task.png"
            driver.save_screenshot(str(task_png))
            times = []
            for _ in range(args.tasks):  # a scripted annotator: click 8 images, Enter, wait for the next grid
                t0 = time.perf_counter()
                first = driver.execute_script("return document.querySelector('#grid img').src;")
                for tile in driver.find_elements(By.CSS_SELECTOR, "#grid .tile")[:8]:
                    tile.click()
                body.send_keys(Keys.ENTER)
                deadline = time.time() + 20
                while time.time() < deadline:
                    state = driver.execute_script(
                        "var i=document.querySelector('#grid img');return [i?i.src:null, !document.getElementById('done').hidden];")
                    if state[1] or (state[0] and state[0] != first):
                        break
                    time.sleep(0.02)
                if state[1]:
                    break
                wait_for_grid(driver, 1)
                times.append(time.perf_counter() - t0)
            for name, token in links[1:]:  # two more annotators with one task each, for the admin page
                driver.get(f"{base}/a/{token}")
                wait_for_grid(driver, 1)
                for tile in driver.find_elements(By.CSS_SELECTOR, "#grid .tile")[1:30:3]:
                    tile.click()
                driver.find_element(By.ID, "submit").click()
                time.sleep(0.5)
            driver.set_window_size(1440, 1250)
            driver.get(f"{base}/admin/admin-secret")
            admin_png = args.out / "annotate_admin.png"
            driver.save_screenshot(str(admin_png))
            driver.set_window_size(420, 900)
            driver.get(f"{base}/a/{links[2][1]}")
            wait_for_grid(driver, 10)
            phone_png = args.out / "annotate_task_phone.png"
            driver.save_screenshot(str(phone_png))
    print(f"task page: {task_png}\nadmin page: {admin_png}\nnarrow screen: {phone_png}")
    if times:
        print(f"scripted annotator (8 clicks + Enter, until the next task's images show): "
              f"{sum(times) / len(times) * 1000:.0f} ms per task over {len(times)} tasks (server overhead per task)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
