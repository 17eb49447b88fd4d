"""Engstrom et al.'s vote DataFrame in, `replication bias` out: a synthetic file in
exactly their schema (one row per vote, torch.save), imported and analysed,
against the estimators run on the simulated counts directly and against their
own delete-d jackknife, written here from its formula."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from conftest import require_module
from replication.classes import imagenet_classes
from replication.estimators.results import SelectionBiasEstimator
from replication.simulate import SimulationConfig, simulate

N_VOTES = 10
MODELS = 4
REF, REP = "imagenet-val", "imagenetv2-matched-frequency"


@pytest.fixture(scope="module")
def study():
    """10,000 images per set, 10 votes each, 4 models; image ids as in the real sets."""
    config = SimulationConfig.preset("engstrom2020", n_classes=1000, reference_per_class=10,
                                     replication_per_class=10, candidates_per_class=120, n_models=MODELS)
    sim = simulate(config, np.random.default_rng(7))
    ann, cor = sim.annotations.copy(), sim.correctness.copy()
    is_ref = (ann["dataset"] == REF).to_numpy()
    ids = np.where(is_ref, [f"ILSVRC2012_val_{i + 1:08d}" for i in range(len(ann))],
                   [hashlib.sha1(str(i).encode()).hexdigest() for i in range(len(ann))])
    ann["image_id"], cor["image_id"] = ids, ids
    return ann, cor


def madrylab_frame(ann: pd.DataFrame, cor: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One row per vote in their schema: url, path, dataset v1/v2, selected (bool),
    wnid, id, correct_<model> (bool, constant over an image's rows); rows shuffled."""
    n, k = ann["n_annotators"].to_numpy(), ann["n_selected"].to_numpy()
    image = np.repeat(np.arange(len(ann)), n)
    vote = np.arange(len(image)) - np.repeat(np.cumsum(n) - n, n)
    wnids = np.asarray(imagenet_classes().wnids)[ann["class_id"].to_numpy()]
    is_ref = (ann["dataset"] == REF).to_numpy()
    folder = np.where(is_ref, "imagenet/val/" + wnids, "imagenetv2-matched-frequency/" + ann["class_id"].astype(str))
    ext = np.where(is_ref, ".JPEG", ".jpeg")
    path = "/datasets/" + folder + "/" + ann["image_id"].to_numpy() + ext
    df = pd.DataFrame({
        "url": ("https://example.org" + path)[image],
        "path": path[image],
        "dataset": np.where(is_ref, "v1", "v2")[image],
        "selected": vote < k[image],
        "wnid": wnids[image],
        "id": image,
    })
    models = [c for c in cor.columns if c.startswith("sim_model_")]
    correct = cor.set_index("image_id").loc[ann["image_id"], models].to_numpy().astype(bool)
    for j, m in enumerate(models):
        df[f"correct_{m}"] = correct[image, j]
    return df.sample(frac=1.0, random_state=rng.integers(2**31)).reset_index(drop=True)


def their_delete_d(df: pd.DataFrame, d: int, replicates: int, rng: np.random.Generator) -> tuple[pd.Series, float]:
    """Engstrom et al.'s delete-d jackknife, from its formula: A(m) = sum over
    observed selection frequencies f of P_v1(f) * (v2 accuracy among images at f),
    with each image's frequency taken over m of its votes drawn at random;
    estimate = (n A(n) - (n - d) mean_r A_r(n - d)) / d, the mean over
    ``replicates`` random draws. Returns the estimate per model and the largest
    Monte-Carlo standard error of it."""
    models = [c for c in df.columns if c.startswith("correct_")]
    order = df.sort_values(["path"], kind="stable")
    paths = order["path"].to_numpy()
    starts = np.flatnonzero(np.r_[True, paths[1:] != paths[:-1]])
    n = np.diff(np.r_[starts, len(paths)])
    assert (n == N_VOTES).all()
    votes = order["selected"].to_numpy().reshape(-1, N_VOTES)
    first = order.iloc[starts]
    v1 = (first["dataset"] == "v1").to_numpy()
    correct = first[models].to_numpy(float)

    def adjusted(sel_counts: np.ndarray, m: int) -> np.ndarray:
        f1 = np.bincount(sel_counts[v1], minlength=m + 1) / v1.sum()
        count2 = np.bincount(sel_counts[~v1], minlength=m + 1)
        acc2 = np.stack([np.bincount(sel_counts[~v1], weights=correct[~v1, j], minlength=m + 1)
                         for j in range(len(models))], axis=1)
        both = (f1 > 0) & (count2 > 0)           # pandas' mul then sum skips frequencies missing on either side
        return (f1[both, None] * acc2[both] / count2[both, None]).sum(axis=0)

    full = adjusted(votes.sum(axis=1), N_VOTES)
    keep = N_VOTES - d
    draws = []
    for _ in range(replicates):
        kept = np.argsort(rng.random(votes.shape), axis=1)[:, :keep]
        draws.append(adjusted(np.take_along_axis(votes, kept, axis=1).sum(axis=1), keep))
    draws = np.array(draws)
    estimate = (N_VOTES * full - keep * draws.mean(axis=0)) / d
    se = keep / d * draws.std(axis=0, ddof=1) / np.sqrt(replicates)
    return pd.Series(estimate, index=[m[len("correct_"):] for m in models]), float(se.max())


def test_madrylab_round_trip(study, tmp_path, run):
    torch = require_module("torch")
    ann, cor = study
    df = madrylab_frame(ann, cor, np.random.default_rng(1))
    pt, parquet = tmp_path / "df_clean.pt", tmp_path / "df_clean.parquet"
    torch.save(df, pt)
    df.to_parquet(parquet, index=False)
    a, c = tmp_path / "ann.parquet", tmp_path / "cor.csv"

    # a pickle is refused without --trust-pickle: one line, nothing written
    code, out, err = run("import-annotations", "--source", "madrylab", "--path", pt, "--out", a, "--correct-out", c)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "--trust-pickle" in err and "arbitrary code" in err
    assert not a.exists() and not c.exists()

    code, out, err = run("import-annotations", "--source", "madrylab", "--path", pt, "--trust-pickle",
                         "--out", a, "--correct-out", c)
    assert code == 0, err
    assert "madrylab: 20,000 images (imagenet-val 10,000, imagenetv2-matched-frequency 10,000)" in out
    assert "annotators per image 10-10" in out and "correctness of 4 model(s)" in out
    imported, imported_cor = pd.read_parquet(a), pd.read_csv(c, dtype={"image_id": str})
    # the same table as Parquet needs no flag and gives the same tables
    a2, c2 = tmp_path / "ann2.parquet", tmp_path / "cor2.csv"
    assert run("import-annotations", "--source", "madrylab", "--path", parquet, "--out", a2, "--correct-out", c2)[0] == 0
    pd.testing.assert_frame_equal(pd.read_parquet(a2), imported)

    expected = ann.sort_values(["dataset", "image_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(imported[list(expected.columns)], expected, check_dtype=False)
    models = [f"sim_model_{i:02d}" for i in range(MODELS)]
    merged = expected.merge(imported_cor, on=["dataset", "image_id"])
    assert (merged["label"] == merged["class_id"]).all()
    truth = cor.set_index("image_id").loc[merged["image_id"], models].to_numpy()
    assert (merged[models].to_numpy() == truth).all()

    # import -> replication bias == the estimators on the simulated counts directly
    for d in (1, 2):
        out_json = tmp_path / f"bias_d{d}.json"
        code, _, err = run("bias", "--annotations", a, "--correct", c, "--methods", "naive,jackknife",
                           "--jackknife-d", d, "--bootstrap", 20, "--seed", 3, "--json", out_json)
        assert code == 0, err
        got = json.loads(out_json.read_text())
        direct = SelectionBiasEstimator(("naive", "jackknife"), n_bootstrap=20, random_state=3,
                                        method_options={"jackknife": {"d": d}}).fit(ann, cor).to_dict()
        for model in models:
            for key in ("reference_accuracy", "replication_accuracy", "gap"):
                assert got["models"][model][key] == pytest.approx(direct["models"][model][key], abs=1e-12)
            for m in ("naive", "jackknife"):
                g, e = got["models"][model]["adjusted"][m], direct["models"][model]["adjusted"][m]
                assert g["replication_accuracy"] == pytest.approx(e["replication_accuracy"], abs=1e-12)
                assert g["ci"] == pytest.approx(e["ci"], abs=1e-12)

        # ... and the jackknife is their delete-d estimator (theirs draws the dropped votes at random;
        # ours takes the exact expectation, so they agree within their Monte-Carlo error)
        theirs, se = their_delete_d(df, d, replicates=150, rng=np.random.default_rng(d))
        ours = pd.Series({m: got["models"][m]["adjusted"]["jackknife"]["replication_accuracy"] for m in models})
        assert (ours - theirs[models]).abs().max() < 4 * se + 2e-4, (ours - theirs[models], se)
        naive = pd.Series({m: got["models"][m]["adjusted"]["naive"]["replication_accuracy"] for m in models})
        assert (ours - naive).abs().min() > 10 * se        # the comparison can fail: jackknife != plug-in


def _write_csv(tmp_path, df: pd.DataFrame, name="votes.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def small_frame():
    ann = pd.DataFrame({"dataset": [REF] * 3 + [REP] * 3, "image_id": [f"ILSVRC2012_val_{i:08d}" for i in range(1, 4)]
                        + ["a" * 40, "b" * 40, "c" * 40], "n_annotators": [3, 4, 3, 3, 2, 5],
                        "n_selected": [3, 1, 0, 2, 2, 4], "class_id": [0, 1, 2, 0, 1, 2]})
    cor = ann[["dataset", "image_id"]].assign(label=ann["class_id"], sim_model_00=[1, 0, 1, 1, 0, 0])
    return madrylab_frame(ann, cor, np.random.default_rng(0)), ann


def test_madrylab_varying_n_and_models_left_out(small_frame, tmp_path, run, caplog):
    df, ann = small_frame
    df = df.assign(correct_swsl_resnext=df["correct_sim_model_00"])
    a, c = tmp_path / "a.csv", tmp_path / "c.csv"
    code, out, err = run("import-annotations", "--source", "madrylab", "--path", _write_csv(tmp_path, df),
                         "--exclude-models", "swsl_,ig_", "--out", a, "--correct-out", c)
    assert code == 0, err
    got = pd.read_csv(a)
    assert got["n_annotators"].tolist() == [3, 4, 3, 3, 2, 5] and got["n_selected"].tolist() == [3, 1, 0, 2, 2, 4]
    assert list(pd.read_csv(c).columns) == ["dataset", "image_id", "label", "sim_model_00"]
    assert "dropped 1 model(s): names contain swsl_, ig_ (--exclude-models): swsl_resnext" in out
    assert any("dropped 1 model(s)" in r.getMessage() for r in caplog.records)      # and logged


def _set(col, row, value):
    def f(df):
        df = df.copy()
        df[col] = df[col].astype(object)
        df.loc[row, col] = value
        return df
    return f


def _split_correctness(df):
    df = df.copy()
    rows = np.flatnonzero(df["path"] == df["path"].iloc[0])
    df.loc[rows[1], "correct_sim_model_00"] = not df.loc[rows[0], "correct_sim_model_00"]
    return df


MADRYLAB_BAD = {
    "selected not boolean": (_set("selected", 4, "yes"), "row 5", "selected is not 0/1 or True/False"),
    "selected blank": (_set("selected", 2, np.nan), "row 3", "selected is not 0/1"),
    "unknown dataset": (_set("dataset", 6, "v3"), "row 7", "dataset is 'v3'"),
    "correctness differs within an image": (_split_correctness, "correct_sim_model_00 differs between the rows "
                                                                "of one image", "constant per image"),
    "unknown wnid": (lambda df: df.assign(wnid=np.where(df["path"] == df["path"].iloc[1], "n99999999", df["wnid"])),
                     "rows 2, ", "wnid 'n99999999' is not an ILSVRC-2012 class"),
    "no key": (lambda df: df.drop(columns=["path", "url", "id"]), "no image key column", "path, url, id"),
}


@pytest.mark.parametrize("case", list(MADRYLAB_BAD))
def test_madrylab_bad_input_is_one_line(small_frame, tmp_path, run, case):
    corrupt, where, what = MADRYLAB_BAD[case]
    src = _write_csv(tmp_path, corrupt(small_frame[0]))
    out = tmp_path / "a.csv"
    code, _, err = run("import-annotations", "--source", "madrylab", "--path", src, "--out", out)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert str(src) in err and where in err and what in err, err
    assert not out.exists()


def test_truncated_files_are_errors(small_frame, tmp_path, run):
    torch = require_module("torch")
    df = small_frame[0]
    pt = tmp_path / "df.pt"
    torch.save(df, pt)
    pt.write_bytes(pt.read_bytes()[: pt.stat().st_size // 2])
    code, _, err = run("import-annotations", "--source", "madrylab", "--path", pt, "--trust-pickle", "--out",
                       tmp_path / "a.csv")
    assert code == 1 and str(pt) in err and "cannot unpickle" in err, err
    csv = _write_csv(tmp_path, df)
    lines = csv.read_text().rstrip("\n").split("\n")
    csv.write_text("\n".join(lines[:-1] + [",".join(lines[-1].split(",")[:3]) + ","]))  # cut after `dataset`
    code, _, err = run("import-annotations", "--source", "madrylab", "--path", csv, "--out", tmp_path / "a.csv")
    assert code == 1 and str(csv) in err and "the file is cut short" in err, err
    assert not (tmp_path / "a.csv").exists()
