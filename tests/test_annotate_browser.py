"""The annotator's page in real headless Chromium (Debian's chromium and
chromium-driver): open the link, select by click and by keyboard, submit with
Enter, and read the votes back from the database."""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from annotate_fixtures import make_plan
from conftest import require_module, require_program

from replication.annotate import store

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "annotate_screenshots.py"
_spec = importlib.util.spec_from_file_location("annotate_screenshots", _SCRIPT)
shots = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shots)


def test_select_by_click_and_keyboard_in_chromium(tmp_path):
    chromium, chromedriver = require_program("chromium"), require_program("chromedriver")
    require_module("selenium")
    require_module("uvicorn")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from replication.annotate.app import Settings, create_app

    plan, plan_dir = make_plan(tmp_path)
    app = create_app(Settings(plan_dir, f"sqlite:///{tmp_path / 'votes.db'}", "admin-secret"))
    db = app.state.service.db
    (_, token), = store.add_annotators(db, ["alice"])
    with shots.serving(app, shots.free_port()) as base, \
            shots.chrome(tmp_path / "profile", chromium=chromium, chromedriver=chromedriver) as driver:
        driver.get(f"{base}/a/{token}")
        shots.wait_for_grid(driver, 10)
        tiles = driver.find_elements(By.CSS_SELECTOR, "#grid .tile")
        n = len(tiles)
        cols = driver.execute_script(
            "var t=document.querySelectorAll('#grid .tile');var n=0;"
            "while(n<t.length&&t[n].offsetTop===t[0].offsetTop)n++;return n;")
        assert 1 < cols < n
        tiles[2].click()
        tiles[5].click()
        tiles[5].click()                       # clicked twice: unselected again
        body = driver.find_element(By.TAG_NAME, "body")
        # focus follows the last click (5); right, down, Space selects 5 + 1 + cols; x toggles too
        body.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_DOWN, Keys.SPACE, Keys.ARROW_LEFT, "x")
        expected = sorted({2, 5 + 1 + cols, 5 + cols})
        shown = driver.execute_script("return Array.from(document.querySelectorAll('#grid .tile.on'))"
                                      ".map(function(t){return Number(t.dataset.pos);});")
        assert sorted(shown) == expected
        assert driver.find_element(By.ID, "n-selected").text == str(len(expected))
        assert driver.find_element(By.ID, "cls-name").text in {d.names[0] for d in plan.classes.values()}
        first = driver.execute_script("return document.querySelector('#grid img').src;")
        body.send_keys(Keys.ENTER)
        deadline = time.time() + 20
        while driver.execute_script("return document.querySelector('#grid img').src;") == first:
            assert time.time() < deadline, "the next task did not load"
            time.sleep(0.05)
        assert driver.find_element(By.ID, "progress").text.startswith("1 task")
    votes = store.votes_frame(db)
    assert len(votes) == n and (votes["annotator_id"] == "alice").all()
    with db.transaction(write=False) as tx:
        picked = [r[0] for r in tx.all("SELECT position FROM votes WHERE selected = 1 ORDER BY position")]
    assert picked == expected
    db.close()
