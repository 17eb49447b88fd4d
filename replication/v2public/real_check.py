"""ImageNet-ReaL's votes on ImageNet val as a cross-check of the reference
distribution's shape (a different protocol, so not data for it).

ReaL's raters judged each val image's original label among candidate labels;
images whose label every model agreed with were not sent to raters and keep it
(``real.json`` lists exactly the original label), so they count as 5 of 5 here.
The cross-check compares, on the classes of the fit, ReaL's distribution of
"yes" votes (of 5) with what 5 MTurk-style annotators would give under the
fitted reference distribution, and ReaL's single-Beta fit with the profiled
reference shapes.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from replication.errors import InputError
from replication.io.tables import read_table, require_columns

REAL_VOTES_FILE = "real-reassessed-imagenet/real_original_label_votes.csv"
RATERS = 5


def real_cross_check(path: str | os.PathLike, classes: np.ndarray, reference: np.ndarray) -> dict:
    """ReaL's votes against the fitted reference distribution.

    Parameters
    ----------
    path : the ``real_original_label_votes.csv`` file
    classes : (C,) the classes of the fit
    reference : (J,) the fitted reference distribution of s (cell masses, averaged over classes)
    """
    from replication.priors import BetaMixturePrior

    table = read_table(path)
    require_columns(path, table, ("cid", "rated", "yes"))
    rows = table[table["cid"].isin(classes)]
    if rows.empty:
        raise InputError(f"{Path(path)}: no images of the fitted classes")
    rated = rows["rated"].to_numpy() == 1
    yes = np.where(rated, pd.to_numeric(rows["yes"], errors="coerce").fillna(-1).to_numpy(), RATERS).astype(int)
    if np.any((yes < 0) | (yes > RATERS)):
        raise InputError(f"{Path(path)}: a rated image has no vote count in 0..{RATERS}")
    observed = np.bincount(yes, minlength=RATERS + 1) / len(yes)
    mids = (np.arange(len(reference)) + 0.5) / len(reference)
    predicted = reference @ stats.binom.pmf(np.arange(RATERS + 1)[None, :], RATERS, mids[:, None])
    prior = BetaMixturePrior(n_components=1).fit(yes, np.full(len(yes), RATERS))
    a, b = float(prior.alpha_[0]), float(prior.beta_[0])
    return {"images": int(len(yes)), "rated_share": float(rated.mean()),
            "observed_yes_of_5": observed.tolist(), "predicted_yes_of_5": predicted.tolist(),
            "beta_mean": a / (a + b), "beta_concentration": a + b,
            "note": "ReaL raters judged labels among candidates (a different protocol); unrated images count as 5 of 5"}
