"""Independent computations written out for the tests to compare the library with.

The plug-in (naive) estimate and Engstrom et al.'s delete-d jackknife, from
per-image tables with pandas and scipy, for studies where every image has the
same number of annotators.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def plug_in_by_hand(ann: pd.DataFrame, cor: pd.DataFrame, model: str, d: int = 0,
                    reference: str = "imagenet-val", replication: str = "imagenetv2-matched-frequency") -> float:
    """The replication accuracy per observed k/n, weighted by the reference's
    share of images at that k/n, on the counts expected after dropping ``d`` of
    the n annotators of every image (hypergeometric: k' of the n - d kept
    annotators select, of the image's k among n)."""
    df = ann.merge(cor[["dataset", "image_id", model]], on=["dataset", "image_id"])
    n = int(df["n_annotators"].iloc[0])
    assert (df["n_annotators"] == n).all()
    ref, rep = df[df["dataset"] == reference], df[df["dataset"] == replication]
    move = stats.hypergeom.pmf(np.arange(n - d + 1)[None, :], n, np.arange(n + 1)[:, None], n - d)
    ref_k = np.bincount(ref["n_selected"], minlength=n + 1) @ move
    rep_k = np.bincount(rep["n_selected"], minlength=n + 1) @ move
    rep_correct = np.bincount(rep["n_selected"], weights=rep[model], minlength=n + 1) @ move
    present = rep_k > 0
    share = ref_k[present] / ref_k[present].sum()
    return float(np.sum(share * rep_correct[present] / rep_k[present]))


def delete_d_by_hand(ann: pd.DataFrame, cor: pd.DataFrame, model: str, d: int = 1) -> float:
    """Delete-d jackknife: the line through the plug-in estimates at 1/n and
    1/(n - d), extrapolated to 1/n = 0."""
    n = int(ann["n_annotators"].iloc[0])
    full, thinned = plug_in_by_hand(ann, cor, model, 0), plug_in_by_hand(ann, cor, model, d)
    return full + (full - thinned) * (1 / n) / (1 / (n - d) - 1 / n)
