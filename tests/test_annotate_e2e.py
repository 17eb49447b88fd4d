"""The full loop end to end: simulated annotators with known true selection
frequencies vote through HTTP against a running server (two of them click at
random and fail the controls); export with quality control; MatchedFrequency
selection; ``replication bias`` recovers the simulated truth. A study of
calibration size runs in ``benchmarks/annotate_e2e.py``."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from annotate_fixtures import annotate_e2e as e2e
from conftest import require_module

#: README calibration table: betabinomial gap RMSE with 10 annotators, 2500 replication images (true shift 0.11)
CALIBRATION_RMSE, CALIBRATION_REPLICATION = 1.62, 2500


@pytest.mark.slow
def test_simulated_annotators_to_replication_bias(tmp_path):
    require_module("requests")
    require_module("uvicorn")
    cfg = e2e.LoopConfig(classes=20, reference=20, candidates=40, per_class=15, careful=10, careless=2,
                         models=12, bootstrap=40, methods="naive,betabinomial", seed=1)
    res = e2e.run_loop(tmp_path, cfg)
    # 20 + 40 images to label per class: two tasks of 30, each with 3 positive and 3 negative controls
    assert res["votes"] == cfg.classes * 2 * cfg.annotators * 36
    # quality control dropped exactly the two annotators who clicked at random
    assert res["dropped"] == ["careless00", "careless01"] and res["qc"]["n_annotators_dropped"] == 2
    votes = pd.read_csv(tmp_path / "votes.csv", dtype={"image_id": str})
    collected = pd.read_csv(tmp_path / "collected.csv", dtype={"image_id": str})
    kept = votes[(votes["is_control"] == 0) & ~votes["annotator_id"].str.startswith("careless")]
    recount = kept.groupby(["dataset", "image_id"])["selected"].agg(["size", "sum"]).reset_index()
    merged = collected.merge(recount, on=["dataset", "image_id"], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all()
    assert (merged["n_annotators"] == merged["size"]).all() and (merged["n_selected"] == merged["sum"]).all()
    # classes short of high-frequency candidates stay short (Recht's rule never fills a bin from below)
    assert 0.5 * cfg.classes * cfg.per_class < res["replication_images"] <= cfg.classes * cfg.per_class
    # the truth within twice the calibration RMSE at this study's size; the naive estimate is far off
    truth, bb, naive = (100 * res["true_mean_gap"], 100 * res["adjusted"]["betabinomial"]["value"],
                        100 * res["adjusted"]["naive"]["value"])
    tolerance = 2 * CALIBRATION_RMSE * math.sqrt(CALIBRATION_REPLICATION / res["replication_images"])
    print(f"truth {truth:.2f}, betabinomial {bb:.2f}, naive {naive:.2f} points (tolerance {tolerance:.2f}); "
          f"{res['votes']} votes through HTTP in {res['http_seconds']:.0f} s")
    assert abs(bb - truth) < tolerance, (bb, truth, tolerance)
    assert naive - truth > 4 and abs(bb - truth) < (naive - truth) / 2
