"""Accuracy against human votes: ImageNet-ReaL raters (5 per image) judged
whether each val image shows its original label; mean top-1 of Recht et al.'s
67 models at each vote count, by model family."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from replication.errors import InputError
from replication.figures._base import PALETTE, new_figure, register_figure
from replication.figures._data import CORRECT_TOP1, REAL_VOTES, correctness, real_votes
from replication.figures._families import families
from replication.io.tables import model_columns


def accuracy_by_votes(annotations: pd.DataFrame, correct: pd.DataFrame, *,
                      dataset: str = "imagenet-val", confidence: float = 0.95) -> dict:
    """Mean top-1 at each vote level, per model and per model family.

    Parameters
    ----------
    annotations : DataFrame with ``dataset, image_id, n_annotators, n_selected``;
        every image of ``dataset`` must have the same number of annotators.
    correct : correctness matrix (``dataset, image_id[, label]``, 0/1 model columns).

    Returns
    -------
    dict with ``levels`` (0..n), ``n_images`` per level, ``models`` {model: acc
    per level}, ``families`` {family: {"models", "mean", "ci_low", "ci_high"}}.
    Accuracies are fractions. A family's interval is the normal interval of
    the mean over images of the family-averaged correctness (images are the
    independent units; models within a family are not).
    """
    ann = annotations[annotations["dataset"] == dataset]
    cor = correct[correct["dataset"] == dataset]
    if ann.empty:
        raise InputError(f"annotations: no images of dataset {dataset!r}")
    n_values = np.unique(ann["n_annotators"].to_numpy())
    if len(n_values) != 1:
        raise InputError(f"annotations: images of {dataset!r} have different numbers of annotators {n_values.tolist()}")
    models = model_columns(cor)
    joined = ann[["image_id", "n_selected"]].merge(cor[["image_id", *models]], on="image_id", how="left",
                                                   indicator=True)
    missing = joined["_merge"] != "both"
    if missing.any():
        ids = joined.loc[missing, "image_id"].head(3).tolist()
        raise InputError(f"correctness: {int(missing.sum())} annotated images of {dataset!r} have no correctness row (e.g. {', '.join(ids)})")
    n = int(n_values[0])
    k = joined["n_selected"].to_numpy()
    acc = joined[models].to_numpy(dtype=np.float64)                      # (N, M)
    onehot = (k[:, None] == np.arange(n + 1)[None, :]).astype(np.float64)  # (N, L)
    count = onehot.sum(axis=0)                                            # (L,)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_model = (onehot.T @ acc) / count[:, None]                      # (L, M)
    z = stats.norm.ppf(0.5 + confidence / 2)
    fam_out = {}
    for fam, members in families(models).items():
        idx = [models.index(m) for m in members]
        a = acc[:, idx].mean(axis=1)                                      # (N,)
        mean = (onehot.T @ a) / count
        var = (onehot.T @ a**2) / count - mean**2
        se = np.sqrt(np.maximum(var, 0.0) / np.maximum(count - 1, 1))
        fam_out[fam] = {"models": members, "mean": mean, "ci_low": mean - z * se, "ci_high": mean + z * se}
    return {"dataset": dataset, "n_annotators": n, "levels": np.arange(n + 1), "n_images": count.astype(int),
            "models": {m: per_model[:, j] for j, m in enumerate(models)}, "families": fam_out}


@register_figure("real_votes", title="Top-1 accuracy against ImageNet-ReaL human votes, by model family",
                 paper="Beyer et al. 2020 votes; Recht et al. 2019 models", inputs=(REAL_VOTES, CORRECT_TOP1))
def draw_real_votes(reference_dir: Path) -> tuple[Figure, dict]:
    """Left: mean top-1 (%) at each number of the 5 raters who accepted the
    original label, per family with 95% intervals. Right: images per level."""
    res = accuracy_by_votes(real_votes(reference_dir), correctness(reference_dir))
    fig, axes = new_figure(1, 2, width=10.0, height=4.4, gridspec_kw={"width_ratios": [3, 1]})
    ax, axn = axes[0]
    levels = res["levels"]
    fams = list(res["families"].items())
    offsets = np.linspace(-0.2, 0.2, len(fams))
    for (fam, r), dx, colour in zip(fams, offsets, PALETTE):
        mean = 100 * r["mean"]
        err = 100 * np.vstack([r["mean"] - r["ci_low"], r["ci_high"] - r["mean"]])
        ax.errorbar(levels + dx, mean, yerr=err, marker="o", ms=4, capsize=2, color=colour,
                    label=f"{fam} ({len(r['models'])})")
    ax.set_xticks(levels)
    ax.set_xlabel(f"raters (of {res['n_annotators']}) who say the original label is correct")
    ax.set_ylabel("mean top-1 accuracy on these val images (%)")
    ax.set_title("Accuracy rises with human agreement (ImageNet val, ReaL raters)")
    ax.legend(title="model family (models)", loc="upper left", ncols=2)
    ax.set_ylim(0, 100)
    axn.bar(levels, res["n_images"], color="#999999")
    axn.set_xticks(levels)
    axn.set_xlabel("raters accepting the label")
    axn.set_ylabel("images")
    axn.set_title(f"{int(res['n_images'].sum()):,} rated val images")
    table = [{"family": fam, "models": len(r["models"]),
              **{f"{k} votes (%)": round(100 * float(v), 2) for k, v in zip(levels, r["mean"])}}
             for fam, r in fams]
    cnn = np.mean([v for m, v in res["models"].items() if not m.startswith("fv_")], axis=0)
    headline = {f"mean top-1 of the 64 CNNs on val images with {k}/{res['n_annotators']} votes": f"{100 * cnn[k]:.1f}%"
                for k in (0, levels[-1])}
    return fig, {"inputs": [reference_dir / REAL_VOTES, reference_dir / CORRECT_TOP1], "numbers": res,
                 "table": table, "headline": headline,
                 "caption": "Each point is the mean top-1 accuracy, over the family's models, on the ImageNet val images "
                            "that k of 5 ReaL raters accepted; bars are 95% intervals over images. "
                            "Real votes (Beyer et al. 2020), real per-image correctness (Recht et al. 2019)."}
