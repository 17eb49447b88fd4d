"""`replication design`: designs and cost, the scenario's truth against the
simulator's, agreement with the calibration study, pilots (simulated with a
known truth, and the real ImageNet-ReaL votes), the contract JSON, backends,
bad input, the report section."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import require_module
from replication.design import Design, Scenario, design_grid, evaluate_design
from replication.design.simulation import simulate_tables
from replication.errors import InputError
from replication.sampling import EDGES
from replication.simulate import SimulationConfig, accuracy_curve, simulate

DECONV = {m: {"selection_edges": EDGES} for m in ("betabinomial", "npmle")}


def test_design_grid_cost_and_validation():
    grid = design_grid((5, 10), (2000,), (1000,), ("12x", "3000"), classes=100)
    assert [(d.annotators, d.pool_images) for d in grid] == [(5, 3000), (5, 12000), (10, 3000), (10, 12000)]
    assert grid[-1].votes == 10 * (2000 + 12000) and grid[-1].cost(0.02) == pytest.approx(2800.0)
    with pytest.raises(InputError, match="not a positive multiple of the 100 classes"):
        design_grid((10,), (2050,), (1000,), ("12x",), classes=100)
    with pytest.raises(InputError, match="cannot give"):
        design_grid((10,), (2000,), (1000,), ("500",), classes=100)
    with pytest.raises(InputError, match="pool size"):
        design_grid((10,), (2000,), (1000,), ("many",), classes=100)


def test_preset_truth_is_the_simulators():
    """The scenario's estimand (quadrature over the reference prior's cell masses)
    equals the simulator's population truth for the same model curves."""
    scenario = Scenario.from_preset("engstrom2020", n_models=12, seed=4)
    config = SimulationConfig.preset("engstrom2020", n_models=12, n_classes=20)
    sim = simulate(config, np.random.default_rng(4))    # draws the same curves first
    assert scenario.models == tuple(sim.truth.index)
    assert scenario.true_mean_gap() == pytest.approx(float(sim.truth["gap"].mean()), abs=1e-6)
    assert 0.034 < scenario.true_mean_gap() < 0.038     # ~3.6 points, as the preset says


def test_simulated_tables_follow_the_design():
    design = Design(10, 2000, 1000, 12000, classes=100)
    table, drawn = simulate_tables(design, Scenario.from_preset("engstrom2020", n_models=5), 3, 4,
                                   np.random.default_rng(0))
    assert table.batch_shape == (3, 5) and table.levels.tolist() == [[10, k] for k in range(11)]
    assert (table.ref_count.sum(axis=-1) == 2000).all() and (table.rep_count.sum(axis=-1) == 1000).all()
    assert (drawn == 1000).all()
    # the MatchedFrequency set has the reference histogram over Recht's bins (per class, so up to rounding)
    bins = np.searchsorted(EDGES, np.arange(11) / 10, side="right")
    ref = np.bincount(bins, table.ref_count[0, 0]) / 2000
    rep = np.bincount(bins, table.rep_count[0, 0]) / 1000
    assert np.abs(ref - rep).max() < 0.03
    # replicates resample within classes: counts stay integers and correct counts stay below counts
    assert np.allclose(table.rep_count, np.round(table.rep_count))
    assert (table.rep_correct[..., 0] <= table.rep_count + 1e-9).all()


def test_design_agrees_with_the_calibration_study():
    """README's calibration table (benchmarks/calibration.py: 200 studies, 5,000 reference / 2,500
    replication images, 250 classes, a pool of 12x, 10 models, shift 0.11): bias of the gap in points.
    The design's own simulation and batched fits give the same bias within Monte-Carlo error, and
    say why 5 annotators cannot support the deconvolution methods."""
    calibration = {10: {"naive": 7.34, "jackknife": 6.05, "betabinomial": 0.00},
                   5: {"naive": 11.51, "jackknife": 10.63}}
    scenario = Scenario.from_preset("engstrom2020", n_models=10, seed=0)
    for n, expected in calibration.items():
        out = evaluate_design(Design(n, 5000, 2500, 30000, classes=250), scenario,
                              ("naive", "jackknife", "betabinomial"), n_studies=16, n_bootstrap=2, seed=0,
                              method_options=DECONV)
        for method, bias in expected.items():
            r = out.methods[method]
            assert r.error is None and r.studies == 16
            assert abs(100 * r.bias - bias) < 4 * 100 * r.bias_se + 0.15, (n, method, 100 * r.bias, 100 * r.bias_se)
        if n == 5:
            err = out.methods["betabinomial"].error
            assert "leaves 1 within-bin degree(s) of freedom with n = 5 annotators" in err


def test_pilot_scenario_recovers_a_known_world():
    """A simulated pilot (10 annotators; its replication images drawn by MatchedFrequency):
    the fitted reference prior, the selection-aware pool prior and the f(s) curves
    are close to the simulator's Beta(8, 2), Beta(2, 2) and probit curves, also
    where the pool's images lie (below most reference images)."""
    config = SimulationConfig.preset("engstrom2020", n_classes=400, n_models=4)
    sim = simulate(config, np.random.default_rng(2))
    scenario = Scenario.from_pilot(sim.annotations, sim.correctness, reference="imagenet-val",
                                   replication="imagenetv2-matched-frequency", selection_edges=EDGES)
    edges = np.linspace(0, 1, 1001)
    mid = (edges[1:] + edges[:-1]) / 2
    mean = lambda prior: float(prior.cell_mass(edges) @ mid)  # noqa: E731
    assert mean(scenario.reference_prior) == pytest.approx(0.8, abs=0.01)
    assert mean(scenario.pool_prior) == pytest.approx(0.5, abs=0.04)
    truth = accuracy_curve(mid, sim.truth[["intercept", "slope"]], config.pivot)
    error = np.abs(scenario.curves(mid) - truth)
    assert (scenario.reference_prior.cell_mass(edges) @ error).max() < 0.02
    assert (scenario.pool_prior.cell_mass(edges) @ error).max() < 0.03
    assert scenario.true_mean_gap() == pytest.approx(float(sim.truth["gap"].mean()), abs=0.005)
    assert len(scenario.measured) == 3 and "true shift" in scenario.assumed[0]


def _design(run, tmp_path, *extra, name="d.json"):
    out = tmp_path / name
    code, stdout, err = run("design", "--preset", "engstrom2020", "--models", 5, "--classes", 50,
                            "--annotators", "5,10", "--reference-images", 1000, "--replication-images", 500,
                            "--pool-images", "12x", "--methods", "naive,jackknife", "--studies", 4,
                            "--bootstrap", 3, "--json", out, *extra)
    return code, stdout, err, out


def test_design_cli_contract_json(run, tmp_path):
    code, stdout, err, out = _design(run, tmp_path, "--jobs", 1, "--price-per-vote", 0.05, "--max-bias", 0.99,
                                     "--target-ci-width", 0.5, "--min-coverage", 0, "--figures", tmp_path / "fig")
    assert code == 0, err
    data = json.loads(out.read_text())
    assert len(data["designs"]) == 2
    for d in data["designs"]:
        assert set(d) >= {"annotators", "reference_images", "replication_images", "pool_images", "votes", "cost",
                          "methods"}
        assert d["votes"] == d["annotators"] * (d["reference_images"] + d["pool_images"])
        assert d["cost"] == pytest.approx(0.05 * d["votes"])
        for r in d["methods"].values():
            assert set(r) >= {"bias", "rmse", "ci_width", "coverage"}
            assert 0 < r["bias"] < 0.2 and 0 < r["ci_width"] < 0.5 and 0 <= r["coverage"] <= 1   # fractions
    rec = data["recommended"]
    assert rec["annotators"] == 5 and rec["method"] in ("naive", "jackknife")   # the cheaper design
    assert {k: v for k, v in rec.items() if k != "method"} == data["designs"][0]
    assert "<- recommended" in stdout and "coverage %" in stdout
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == [
        "design_precision_cost.json", "design_precision_cost.pdf", "design_precision_cost.png"]
    # seeded: two processes give the very same file
    code, _, err, out2 = _design(run, tmp_path, "--jobs", 2, "--price-per-vote", 0.05, "--max-bias", 0.99,
                                 "--target-ci-width", 0.5, "--min-coverage", 0, name="d2.json")
    assert code == 0, err
    assert out2.read_text() == out.read_text()


def test_recommendation_needs_coverage():
    """A narrow interval that misses the truth is not recommended (default
    --min-coverage 0.85), however cheap; with 0 it would be. Nor is a design
    whose pool cannot give its replication images."""
    from replication.design import Criteria, DesignOutcome, DesignResults, MethodOutcome

    cheap, dear = Design(5, 1000, 500, 6000, classes=50), Design(10, 1000, 500, 6000, classes=50)
    narrow_but_wrong = MethodOutcome(bias=0.005, rmse=0.005, ci_width=0.002, coverage=0.0, studies=16)
    honest = MethodOutcome(bias=0.001, rmse=0.003, ci_width=0.012, coverage=0.94, studies=16)
    outs = [DesignOutcome(cheap, 0.036, 500.0, {"naive": narrow_but_wrong}),
            DesignOutcome(dear, 0.036, 500.0, {"naive": narrow_but_wrong, "betabinomial": honest})]
    assert DesignResults(outs, Criteria(0.03, 0.01), 1.0, {}).recommended() == (outs[1], "betabinomial")
    assert DesignResults(outs, Criteria(0.03, 0.01, 0.0), 1.0, {}).recommended() == (outs[0], "naive")
    short = [outs[0], DesignOutcome(dear, 0.036, 480.0, outs[1].methods)]   # the pool gives 96% of the images
    res = DesignResults(short, Criteria(0.03, 0.01), 1.0, {})
    assert res.recommended() is None and any("not recommended" in line for line in res.notes())


def test_design_says_when_no_design_meets_the_targets(run, tmp_path):
    code, stdout, err, out = _design(run, tmp_path, "--jobs", 1, "--max-bias", 0.001)
    assert code == 0, err
    assert json.loads(out.read_text())["recommended"] is None
    assert "no design in the grid meets" in stdout


def test_design_ray_backend_gives_the_same_designs(run, tmp_path):
    require_module("ray")
    code, _, err, local = _design(run, tmp_path, "--jobs", 1)
    assert code == 0, err
    code, _, err, remote = _design(run, tmp_path, "--backend", "ray", name="ray.json")
    assert code == 0, err
    assert remote.read_text() == local.read_text()


@pytest.mark.parametrize("args,code,what", [
    (["--target-ci-width", "3"], 2, "argument --target-ci-width: must lie strictly between 0 and 1"),
    (["--max-bias", "-0.1"], 2, "argument --max-bias: must be >= 0"),
    (["--max-bias", "2"], 1, "--max-bias is a fraction"),
    (["--max-bias", "1"], 1, "--max-bias is a fraction (0 <= X < 1; 0.01 = 1 point), got 1"),
    (["--min-coverage", "1.5"], 1, "--min-coverage is a fraction (0 <= X <= 1), got 1.5"),
    (["--studies", "1"], 2, "argument --studies: must be >= 2"),
    (["--bootstrap", "1"], 1, "--bootstrap must be >= 2"),
    (["--reference-images", "1010"], 1, "not a positive multiple of the 50 classes"),
    (["--pool-prior", "2"], 1, "--pool-prior: expected two positive Beta parameters"),
    (["--methods", "magic"], 1, "unknown method(s) magic"),
])
def test_design_bad_input(run, tmp_path, args, code, what):
    got, _, err, out = _design(run, tmp_path, *args)
    assert got == code and len(err.strip().splitlines()) == 1 and what in err, err
    assert not out.exists()


def test_design_bad_pilot(run, tmp_path):
    pilot = tmp_path / "pilot.csv"
    pd.DataFrame({"dataset": ["imagenetv2-matched-frequency"] * 3, "image_id": list("abc"),
                  "n_annotators": [10] * 3, "n_selected": [3, 9, 5]}).to_csv(pilot, index=False)
    out = tmp_path / "d.json"
    code, _, err = run("design", "--pilot", pilot, "--json", out)
    assert code == 1 and "the pilot has no imagenet-val (reference) images" in err
    code, _, err = run("design", "--preset", "engstrom2021", "--json", out)
    assert code == 1 and "unknown preset 'engstrom2021'" in err
    code, _, err = run("design", "--preset", "engstrom2020", "--pilot-correct", pilot, "--json", out)
    assert code == 1 and "--pilot-correct: only with --pilot" in err
    assert not out.exists()


def test_design_on_the_real_votes_pilot(reference_dir, run, tmp_path):
    """ImageNet-ReaL's votes as the pilot (24,889 val images, 5 raters) with Recht et al.'s
    67 models' correctness: the reference prior and the f(s) curves are measured; the pool is
    not (the pilot holds no replication images), so it is assumed and the output says so."""
    out = tmp_path / "real.json"
    code, stdout, err = run("design", "--pilot", reference_dir / "real-reassessed-imagenet/real_votes_annotations.csv",
                            "--pilot-correct", reference_dir / "imagenetv2/recht2019_correct_top1.parquet",
                            "--classes", 50, "--annotators", "5,10", "--reference-images", 1000,
                            "--replication-images", 500, "--pool-images", "12x",
                            "--methods", "naive,betabinomial", "--studies", 3, "--bootstrap", 2, "--jobs", 1,
                            "--json", out)
    assert code == 0, err
    data = json.loads(out.read_text())
    sc = data["scenario"]
    assert "24,889 imagenet-val images (5 annotators)" in sc["measured"][0]
    assert "probit curves of 67 models" in sc["measured"][1]
    assert any("pool prior: Beta(2, 2)" in a and "reference images say nothing about the pool" in a
               for a in sc["assumed"])
    five = next(d for d in data["designs"] if d["annotators"] == 5)
    assert "1 within-bin degree(s) of freedom with n = 5" in five["methods"]["betabinomial"]["error"]
    assert "betabinomial: cannot be fitted with 5 annotators per image under MatchedFrequency" in stdout
    assert "assumed: pool prior" in stdout


def test_report_design_section(tmp_path, run):
    from replication.report import Report, add_design_section

    code, _, err, out = _design(run, tmp_path, "--jobs", 1)
    assert code == 0, err
    report = add_design_section(Report("t", "intro"), out, tmp_path / "report")
    assert not (tmp_path / "report").exists()                # written with the page, all or none
    html = report.write(tmp_path / "report/report.html").read_text()
    assert "Planning a replication: simulated designs" in html and "recommended study design" in html
    assert 'alt="design_precision_cost"' in html and "data:image/png;base64," in html
    assert (tmp_path / "report/figures/design_precision_cost.png").read_bytes() == report.figures[0].png
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"designs": 3}))
    with pytest.raises(InputError, match="not the JSON of `replication design`"):
        add_design_section(Report("t", "intro"), bad, tmp_path / "report")
