"""ImageNet-v2's selection bias from the public record (replication.v2public):
the construction simulator against Recht's rules, the expected memberships
against the samplers, the curve fit, the bounds, the real record's counts, and
the estimator on a handful of simulated constructions."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special

from replication.classes import imagenet_classes
from replication.errors import InputError
from replication.sampling import largest_remainder, matched_frequency, threshold, top_images
from replication.v2public import (ConstructionConfig, ConstructionModel, PoolLayout, PublicData, PublicDataEstimator,
                                  load_public_data, simulate_construction)
from replication.v2public.curves import fit_curves, midpoints
from replication.v2public.data import CORRECT_FILE, POOL_FILE, SET_IDS, THRESHOLDS_FILE
from replication.v2public.estimator import _shape_free_bounds
from replication.v2public.real_check import REAL_VOTES_FILE, real_cross_check
from replication.v2public.expected import (ClassLayout, ConfigurationSampler, LevelGrid, _matched_frequency_prob,
                                           _threshold_prob, _top_images_prob, observed_summaries)

GOOD_POOL = ConstructionModel(pool_location=-0.3, pool_size_slope=-0.5, pool_spread=0.4, pool_shape=3.0,
                              ref_location=1.2, ref_shape=10.0, ref_class_share=0.3)


def small_layout(n_classes: int, seed: int = 0, median: int = 90) -> PoolLayout:
    return PoolLayout.synthetic(n_classes, np.random.default_rng(seed), median_size=median)


# ----------------------------------------------------------------------------- expected memberships
def test_inclusion_probabilities_match_recht_samplers():
    """One class configuration copied 3,000 times: each sampler's empirical
    inclusion frequency per level against the closed forms used by the estimator."""
    grid = LevelGrid(2)
    rng = np.random.default_rng(1)
    counts = np.zeros(len(grid.n))
    for n, k, c in [(10, 10, 4), (10, 9, 5), (20, 20, 2), (20, 18, 3), (10, 8, 6), (10, 7, 9), (10, 6, 7),
                    (20, 13, 4), (10, 5, 2), (10, 3, 20), (10, 1, 30), (10, 0, 25)]:
        counts[(grid.n == n) & (grid.k == k)] = c
    reps = 3000
    level = np.repeat(np.arange(len(grid.n)), counts.astype(int))
    cand_level = np.tile(level, reps)
    cand_class = np.repeat(np.arange(reps), len(level))
    freq, n = grid.x[cand_level], grid.n[cand_level]
    # a reference histogram of 20 images per class; its bin 2 asks for 4 of the 2 candidates there,
    # so 2 are filled from bin 3 (upward sampling)
    hist = np.array([2, 3, 8, 3, 4])
    ref_freq = np.tile(np.array([0.1, 0.3, 0.5, 0.7, 0.9])[np.repeat(np.arange(5), hist)], reps)
    ref_class = np.repeat(np.arange(reps), 20)
    target = largest_remainder(hist[None], 10).astype(float)
    assert target.tolist() == [[1, 1, 4, 2, 2]]

    def empirical(idx):
        hit = np.zeros(len(cand_level))
        hit[idx] = 1
        return np.bincount(cand_level, weights=hit, minlength=len(grid.n)) / np.maximum(counts * reps, 1)

    mf = empirical(matched_frequency(ref_freq, ref_class, freq, cand_class, 10, rng, cand_annotators=n))
    t = empirical(threshold(freq, cand_class, 10, rng, cand_annotators=n))
    ti = empirical(top_images(freq, cand_class, 10, cand_annotators=n, cand_ids=rng.permutation(len(freq))))
    bins = np.eye(5)[grid.mf_bin]
    seen = counts > 0
    np.testing.assert_allclose(mf[seen], _matched_frequency_prob(counts[None], target, bins)[0][seen], atol=0.02)
    np.testing.assert_allclose(t[seen], _threshold_prob(counts[None], grid.x[None] >= 0.7, 10)[0][seen], atol=0.02)
    np.testing.assert_allclose(ti[seen], _top_images_prob(counts[None], grid.order, 10)[0][seen], atol=0.02)
    # bin [0.6, 0.8) holds 20 candidates: its own 2 plus the 2 bin 2 lacks, so 1 in 5 are taken
    assert mf[(grid.n == 10) & (grid.k == 7)][0] == pytest.approx(0.2, abs=0.02)
    assert mf[(grid.n == 10) & (grid.k == 5)][0] == 1.0


def test_expected_overlaps_match_simulated_constructions():
    """The Monte-Carlo expectations of the class summaries (over all
    configurations, short classes included) against the mean of 16 exact
    simulations (the samplers on per-candidate draws, pools not grown)."""
    layout = small_layout(80, seed=2)
    config = ConstructionConfig(model=GOOD_POOL, n_models=2, grow_short_pools=False)
    sims = [simulate_construction(config, layout, np.random.default_rng(s)) for s in range(12)]
    data = sims[0].public_data(classes="all")
    cls_layout = ClassLayout.from_public(data)
    assert np.allclose(cls_layout.log_size, layout.log_sizes()[1])
    observed = np.mean([observed_summaries(s.public_data(classes="all"), cls_layout.classes) for s in sims], axis=0)
    conf = ConfigurationSampler(cls_layout, n_reps=24, seed=3).evaluate(GOOD_POOL)
    expected = conf.per_class(conf.summaries).mean(axis=1)
    se = np.std([observed_summaries(s.public_data(classes="all"), cls_layout.classes).mean(axis=0) for s in sims],
                axis=0) / np.sqrt(len(sims))
    np.testing.assert_allclose(expected.mean(axis=0), observed.mean(axis=0), atol=0.05 + 4 * se.max())
    # conditioning on full Threshold0.7 sets: weights per class sum to 1 and drop short configurations
    per = conf.per_class(conf.weights)
    assert np.allclose(per.sum(axis=1), 1.0)
    assert (conf.class_mean(conf.summaries)[:, 4] >= 10 - 1e-9).mean() > 0.9


# ----------------------------------------------------------------------------- the simulator
def test_simulated_construction_follows_the_rules_and_hides_the_truth():
    layout = small_layout(40, seed=4)
    sim = simulate_construction(ConstructionConfig(model=GOOD_POOL, n_models=3), layout, np.random.default_rng(5))
    cand = sim.candidates.assign(x=lambda d: d["n_selected"] / d["n_annotators"])
    assert set(sim.pool.columns) == {"image_id", "cid", "n_hits_to_label", "in_matched_frequency",
                                     "in_threshold0.7", "in_top_images"}
    assert len(sim.short_classes) <= 4
    for cid, g in cand.groupby("cid"):
        t, ti = g["in_threshold0.7"] == 1, g["in_top_images"] == 1
        assert ti.sum() == 10 and (g["in_matched_frequency"].sum() == 10 or cid in sim.short_classes)
        assert (g.loc[t, "x"] >= 0.7).all()
        assert t.sum() == min(10, (g["x"] >= 0.7).sum())
        best = g.sort_values(["x", "n_annotators"], ascending=False)
        assert (g.loc[ti, "x"].min() >= g.loc[~ti, "x"].max())
        assert set(best["image_id"].head(10)) == set(g.loc[ti, "image_id"]) or \
            best["x"].iloc[9] == best["x"].iloc[10]
    # an image in two sets has one correctness, and the public record reads back
    data = sim.public_data()
    assert data.member.sum(axis=0).tolist() == cand[["in_matched_frequency", "in_threshold0.7",
                                                     "in_top_images"]].sum().tolist()
    assert data.member.sum(axis=0)[2] == 400
    truth = sim.truth()
    assert np.allclose(truth["gap"], 0.0) and (truth["expected_raw_gap"] > 0).all()


def test_short_pools_grow_until_threshold07_is_full():
    poor = ConstructionModel(pool_location=-3.0, pool_size_slope=0.0, pool_spread=0.3, pool_shape=4.0,
                             pool_family="mixture", pool_tail=1.0)
    layout = small_layout(20, seed=6, median=60)
    grown = simulate_construction(ConstructionConfig(model=poor, n_models=2), layout, np.random.default_rng(7))
    fixed = simulate_construction(ConstructionConfig(model=poor, n_models=2, grow_short_pools=False), layout,
                                  np.random.default_rng(7))
    t_size = lambda sim: sim.candidates.groupby("cid")["in_threshold0.7"].sum()  # noqa: E731
    assert (t_size(fixed) < 10).sum() > 10 and (t_size(grown) == 10).all()
    assert len(grown.pool) > len(fixed.pool) and (len(grown.pool) - len(layout.cand_class)) % 42 == 0


# ----------------------------------------------------------------------------- curves and bounds
def test_fit_curves_recovers_probit_curves_with_class_effects():
    rng = np.random.default_rng(8)
    n_classes, cells = 150, 25
    mids = midpoints(cells)
    a, b = np.array([-1.2, -0.4, 0.3]), np.array([2.5, 2.0, 1.2])
    delta = rng.normal(0, 0.5, n_classes)
    delta -= delta.mean()
    cls = np.repeat(np.arange(n_classes), 6)
    design = np.zeros((len(cls), cells))
    design[np.arange(len(cls)), rng.integers(5, cells, len(cls))] = 1.0
    count = np.full(len(cls), 40.0)
    s = design @ mids
    p = special.ndtr(a[None] + delta[cls, None] + b[None] * s[:, None])
    correct = rng.binomial(40, p).astype(float)
    fit = fit_curves(design, cls, count, correct, n_classes)
    np.testing.assert_allclose(fit.a, a, atol=0.12)
    np.testing.assert_allclose(fit.b, b, atol=0.2)
    assert np.corrcoef(fit.delta, delta)[0, 1] > 0.9
    assert np.abs(fit.class_scores.sum(axis=0)).max() < 1e-2 * count.sum()


def test_shape_free_bounds_match_a_linear_programme():
    rng = np.random.default_rng(9)
    cells = 25
    mids = midpoints(cells)
    reference = special.softmax(-((mids - 0.75) / 0.15) ** 2 + 0.1 * rng.standard_normal((4, cells)), axis=1)

    class _Fit:
        pass

    fit = _Fit()
    fit.reference = reference
    fit.curves = type("C", (), {"a": np.array([-0.5, 0.2]), "b": np.array([2.0, 1.0]), "delta": np.zeros(4)})()
    layout = type("L", (), {"ref_hit_shares": np.array([0.8, 0.2])})()
    val = np.array([0.7, 0.8])
    bounds = _shape_free_bounds(fit, layout, val)
    from replication.v2public.estimator import _bin_probability
    bins = _bin_probability(layout, mids)
    a_eq = np.vstack([np.ones(cells), bins[:, 3], bins[:, 4]])
    b_eq = a_eq @ reference.mean(axis=0)
    for m in range(2):
        f = special.ndtr(fit.curves.a[m] + fit.curves.b[m] * mids)
        low = optimize.linprog(f, A_eq=a_eq, b_eq=b_eq, bounds=(0, None)).fun
        high = -optimize.linprog(-f, A_eq=a_eq, b_eq=b_eq, bounds=(0, None)).fun
        assert bounds["accuracy_low"][m] == pytest.approx(low, abs=1e-8)
        assert bounds["accuracy_high"][m] == pytest.approx(high, abs=1e-8)
        assert bounds["gap_low"][m] == pytest.approx(val[m] - high, abs=1e-8)


# ----------------------------------------------------------------------------- the public record
def test_real_public_record(reference_dir):
    data = load_public_data(reference_dir)
    assert len(data.classes) == 708 and len(data.cand_class) == 140_807
    assert data.member.sum(axis=0).tolist() == [7080, 7080, 7080]
    assert data.info["unlisted_set_images"] == 508 and data.info["classes_with_unlisted_images"] == 292
    assert data.class_thresholds == {492: 0.6, 168: 0.6, 677: 0.5}
    # raw accuracies against an independent pandas computation on the same classes
    correct = pd.read_parquet(reference_dir / CORRECT_FILE)
    sub = correct[correct["label"].isin(data.classes)]
    acc = data.set_accuracy()
    for ds in ("imagenet-val", *SET_IDS):
        assert acc.loc["resnet50", ds] == pytest.approx(sub.loc[sub["dataset"] == ds, "resnet50"].mean())
    everything = load_public_data(reference_dir, classes="all")
    assert everything.member.sum(axis=0).tolist() == [10_000, 10_000, 10_000]
    assert int(everything.cand_unlisted.sum()) == 508


def test_real_cross_check_counts_votes(reference_dir):
    path = reference_dir / REAL_VOTES_FILE
    flat = np.full(25, 1 / 25)
    check = real_cross_check(path, np.arange(100), flat)
    votes = pd.read_csv(path)
    votes = votes[votes["cid"] < 100]
    yes = np.where(votes["rated"] == 1, votes["yes"].fillna(0), 5).astype(int)
    assert check["images"] == len(votes) == 5000
    np.testing.assert_allclose(check["observed_yes_of_5"], np.bincount(yes, minlength=6) / len(yes))
    # s uniform on [0, 1]: every count of 5 binomial votes is equally likely
    np.testing.assert_allclose(check["predicted_yes_of_5"], np.full(6, 1 / 6), atol=1e-3)
    assert 0 < check["beta_concentration"] < 2


def _sim_tables(n_classes=30, seed=10):
    sim = simulate_construction(ConstructionConfig(model=GOOD_POOL, n_models=2), small_layout(n_classes, seed),
                                np.random.default_rng(seed))
    return sim.pool, sim.correctness


def test_public_data_refuses_inconsistent_tables():
    pool, correct = _sim_tables()
    PublicData.from_tables(pool, correct)
    bad = pool.copy()
    member = np.flatnonzero(bad["in_top_images"].to_numpy() == 1)[0]
    bad.loc[member, "in_top_images"] = 0
    with pytest.raises(InputError, match="set flags disagree"):
        PublicData.from_tables(bad, correct, pool_path="pool.parquet")
    clash = correct.copy()
    both = clash.groupby("image_id")["dataset"].transform("size") > 1
    row = np.flatnonzero(both.to_numpy() & (clash["dataset"] != "imagenet-val").to_numpy())[0]
    clash.iloc[row, clash.columns.get_loc("sim_model_00")] ^= 1
    with pytest.raises(InputError, match="different correctness in two sets"):
        PublicData.from_tables(pool, clash, correctness_path="c.parquet")
    with pytest.raises(InputError, match="no rows for dataset"):
        PublicData.from_tables(pool, correct[correct["dataset"] != "imagenetv2-top-images"])
    with pytest.raises(InputError, match="n_hits_to_label < 1"):
        PublicData.from_tables(pool.assign(n_hits_to_label=0), correct)


# ----------------------------------------------------------------------------- the estimator, end to end
def write_reference(folder, n_classes=60, seed=11, shift=0.2):
    """A small reference folder laid out like ../shared/reference/imagenetv2 from a simulation."""
    config = ConstructionConfig.preset("imagenetv2", n_models=4, shift=shift)
    sim = simulate_construction(config, small_layout(n_classes, seed), np.random.default_rng(seed))
    (folder / "imagenetv2" / "raw").mkdir(parents=True)
    sim.pool.to_parquet(folder / POOL_FILE)
    sim.correctness.to_parquet(folder / CORRECT_FILE)
    (folder / THRESHOLDS_FILE).write_text(json.dumps({imagenet_classes().wnids[3]: 0.6}))  # class 3 relaxed
    return sim


@pytest.mark.slow
def test_v2_public_command(tmp_path, run):
    write_reference(tmp_path / "ref")
    out = tmp_path / "out.json"
    code, stdout, err = run("v2-public", "--reference", tmp_path / "ref", "--json", out, "--bootstrap", "50",
                            "--ref-shapes", "16,32")
    assert code == 0, err
    d = json.loads(out.read_text())
    assert set(d["models"]) == {f"sim_model_{i:02d}" for i in range(4)}
    assert {"identified_range", "shape_free_bounds", "engstrom2020"} <= set(d["summary"])
    assert "Engstrom et al. 2020" in stdout and "Recht et al. raw drop" in stdout
    # the JSON adds up: gaps are val minus MatchedFrequency, intervals hold their points, the mean is the mean
    for m in d["models"].values():
        adj = m["adjusted"]["v2public"]
        assert m["gap"] == pytest.approx(m["reference_accuracy"] - m["replication_accuracy"])
        assert adj["gap"] == pytest.approx(m["reference_accuracy"] - adj["replication_accuracy"])
        assert adj["ci"][0] <= adj["gap"] <= adj["ci"][1] and m["gap_ci"][0] <= m["gap"] <= m["gap_ci"][1]
        assert adj["identified_range_ci"][0] <= adj["identified_range"][0] <= adj["identified_range"][1]
    s = d["summary"]
    assert s["mean_gap"] == pytest.approx(np.mean([m["gap"] for m in d["models"].values()]))
    assert s["adjusted_mean_gap"]["v2public"]["value"] == pytest.approx(
        np.mean([m["adjusted"]["v2public"]["gap"] for m in d["models"].values()]))
    assert set(d["kept_ref_shapes"]) <= {16.0, 32.0} and d["ref_shape"] in d["kept_ref_shapes"]
    assert f"{100 * s['mean_gap']:6.2f}" in stdout
    # bad input: one line, nothing written
    out2 = tmp_path / "out2.json"
    code, _, err = run("v2-public", "--reference", tmp_path / "ref", "--json", out2, "--impute-unlisted")
    assert code == 1 and "needs --classes all" in err and not out2.exists()
    code, _, err = run("v2-public", "--reference", tmp_path / "ref", "--json", tmp_path / "ref" / POOL_FILE)
    assert code == 1 and "refusing to overwrite an input" in err
    code, _, err = run("v2-public", "--reference", tmp_path / "missing", "--json", out2)
    assert code == 1 and len(err.strip().splitlines()) == 1 and not out2.exists()


def test_v2_public_bad_input_is_one_line(tmp_path, run):
    """Usage errors (exit 2) and input errors (exit 1) before any fitting: one
    line naming the flag or file, nothing written."""
    write_reference(tmp_path / "ref", n_classes=20)
    out = tmp_path / "out.json"
    for flags, code, what in [
        (("--ref-shapes", "16,-4"), 2, "argument --ref-shapes: must be > 0, got -4"),
        (("--ref-shapes", "16,x"), 2, "argument --ref-shapes: expected a number, got 'x'"),
        (("--max-hits", "0"), 2, "argument --max-hits: must be >= 1, got 0"),
        (("--pool-family", "gamma"), 2, "argument --pool-family: invalid choice"),
        (("--bootstrap", "1"), 1, "--bootstrap must be >= 2"),
        (("--models", "sim_model_00,nope"), 1, "nope"),
    ]:
        got, _, err = run("v2-public", "--reference", tmp_path / "ref", "--json", out, *flags)
        assert got == code and err.count("\n") == 1 and what in err, (flags, err)
    # a pool listing without its HIT counts names the file and the column
    pool = tmp_path / "ref" / POOL_FILE
    pd.read_parquet(pool).drop(columns="n_hits_to_label").to_parquet(pool)
    got, _, err = run("v2-public", "--reference", tmp_path / "ref", "--json", out)
    assert got == 1 and err.count("\n") == 1 and POOL_FILE.split("/")[-1] in err and "n_hits_to_label" in err, err
    assert not out.exists()


def test_cell_masses_at_extreme_locations():
    """A trial step of the moment fit can ask for a location of 1e12 (logit scale)
    among ordinary ones: the masses come back (all in the last cell), not a
    billion-knot interpolation table."""
    from replication.v2public.model import _beta_cells, cell_edges

    edges = cell_edges()
    loc = np.r_[np.linspace(-2, 2, 100), 1e12, -1e12]
    cells = _beta_cells(loc, 8.0, 0.0, edges)
    np.testing.assert_allclose(cells.sum(axis=1), 1.0, atol=1e-9)
    assert cells[-2, -1] > 1 - 1e-9 and cells[-1, 0] > 1 - 1e-9
    np.testing.assert_allclose(cells[:100], _beta_cells(loc[:100], 8.0, 0.0, edges), atol=1e-3)


def test_command_defaults_are_the_estimators():
    """The command line (which imports no numpy) lists the same pool families and
    reference shapes as the estimator."""
    from replication.cli import build_parser
    from replication.cli.v2_public import POOL_FAMILIES
    from replication.v2public.estimator import DEFAULT_REF_SHAPES
    from replication.v2public.model import FAMILIES

    assert sorted(POOL_FAMILIES) == sorted(FAMILIES)
    args = build_parser().parse_args(["v2-public", "--reference", "r", "--json", "o.json"])
    assert args.ref_shapes == DEFAULT_REF_SHAPES and args.pool_family == PublicDataEstimator().pool_family
