"""Simulating a candidate design many times and scoring every method on it.

For one design, ``n_studies`` studies are drawn from a :class:`Scenario`
(reference images and a candidate pool with true s from their priors, k of n
selections, a MatchedFrequency replication set drawn per class on the noisy
k/n, each model right with probability f_m(s)), each with ``n_bootstrap``
image-bootstrap replicates (stratified by class, as ``replication bias``
does). Everything is kept as sufficient statistics: one batched
:class:`~replication.study.LevelTable` of shape (studies, 1 + replicates),
so each method runs once, vectorized over all studies and replicates.

Only the gap averaged over models is scored, and every method's adjusted
accuracy is linear in the correct counts given the level counts, so the
models are collapsed into one: each image's share of models that are right.

Per method: bias and RMSE of the mean adjusted gap against the population
truth, and the width and coverage of its 95% interval. ``replication bias``
reports percentile intervals from 1000 replicates; with few replicates per
study the design uses their normal approximation instead: the expected width
is 2 z E[SD] (the replicates' SD made unbiased by c4(B)), and a study is
covered when |bootstrap mean - truth| <= t_{B-1} SD (Student's quantile
accounts for an SD estimated from B replicates). Each figure comes with its
Monte-Carlo standard error over the simulated studies.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import special
from threadpoolctl import threadpool_limits

from replication.bootstrap import resample_counts
from replication.design.grid import Design
from replication.design.scenario import Scenario
from replication.errors import FitError
from replication.estimators import METHODS
from replication.priors import PRIORS
from replication.sampling import EDGES, ShortSampleWarning, matched_frequency
from replication.study import LevelTable

#: the single pseudo-model of the collapsed tables
MEAN_MODEL = ("mean over models",)


@dataclass(frozen=True)
class MethodOutcome:
    """One method on one design, over the simulated studies (gaps as fractions).

    ``error`` is set (and the numbers NaN) when the method cannot be fitted on
    such studies; ``failed`` counts studies whose point estimate was NaN.
    """

    bias: float = np.nan
    bias_se: float = np.nan
    rmse: float = np.nan
    rmse_se: float = np.nan
    ci_width: float = np.nan
    ci_width_se: float = np.nan
    coverage: float = np.nan
    coverage_se: float = np.nan
    studies: int = 0
    failed: int = 0
    error: str | None = None


@dataclass(frozen=True)
class DesignOutcome:
    """All methods on one design: ``true_gap`` (population), ``replication_drawn``
    (mean replication images the pool gave), per-method outcomes, wall seconds."""

    design: Design
    true_gap: float
    replication_drawn: float
    methods: dict[str, MethodOutcome] = field(default_factory=dict)
    seconds: float = 0.0


def _level_sums(weights: np.ndarray, k: np.ndarray, correct: np.ndarray, n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted image counts (R, L) and correct counts (R, L) per level k, from
    image weights (R, N) (one bincount; no BLAS threads on a busy machine)."""
    rows = weights.shape[0]
    index = (np.arange(rows)[:, None] * n_levels + k[None, :]).ravel()
    count = np.bincount(index, weights=weights.ravel(), minlength=rows * n_levels)
    right = np.bincount(index, weights=(weights * correct[None, :]).ravel(), minlength=rows * n_levels)
    return count.reshape(rows, n_levels), right.reshape(rows, n_levels)


def _weights(strata: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """Image weights (1 + B, N): the study itself, then B stratified bootstrap replicates."""
    boot = resample_counts(strata, len(strata), n_bootstrap, rng)
    return np.vstack([np.ones((1, len(strata)), boot.dtype), boot])


def simulate_tables(design: Design, scenario: Scenario, n_studies: int, n_bootstrap: int,
                    rng: np.random.Generator) -> tuple[LevelTable, np.ndarray]:
    """``n_studies`` simulated studies of ``design`` with their bootstrap replicates.

    Returns a LevelTable with batch shape (n_studies, 1 + n_bootstrap) (index 0
    of the second axis: the study itself) over the levels (n, 0..n), and the
    number of replication images each study's pool gave, shape (n_studies,).
    """
    n, n_levels, classes = design.annotators, design.annotators + 1, design.classes
    ref_class = np.repeat(np.arange(classes), design.reference_images // classes)
    pool_class = np.repeat(np.arange(classes), design.pool_images // classes)
    shape = (n_studies, n_bootstrap + 1)
    ref_count, rep_count = np.empty(shape + (n_levels,)), np.empty(shape + (n_levels,))
    ref_correct, rep_correct = np.empty(shape + (1,)), np.empty(shape + (n_levels, 1))
    drawn = np.empty(n_studies, np.int64)
    for i in range(n_studies):  # a loop over studies (tens); each is vectorized over images
        s_ref = scenario.reference_prior.sample(len(ref_class), rng)
        k_ref = rng.binomial(n, s_ref)
        s_pool = scenario.pool_prior.sample(len(pool_class), rng)
        k_pool = rng.binomial(n, s_pool)
        with warnings.catch_warnings():  # a short pool is recorded in `drawn`, not warned about per study
            warnings.simplefilter("ignore", ShortSampleWarning)
            chosen = matched_frequency(k_ref / n, ref_class, k_pool / n, pool_class,
                                       design.replication_images // classes, rng, edges=EDGES, min_annotators=None)
        drawn[i] = len(chosen)
        counts, correct = _level_sums(_weights(ref_class, n_bootstrap, rng), k_ref,
                                      scenario.mean_correct(s_ref, rng), n_levels)
        ref_count[i], ref_correct[i, :, 0] = counts, correct.sum(axis=1)
        counts, correct = _level_sums(_weights(pool_class[chosen], n_bootstrap, rng), k_pool[chosen],
                                      scenario.mean_correct(s_pool[chosen], rng, scenario.shift), n_levels)
        rep_count[i], rep_correct[i, :, :, 0] = counts, correct
    levels = np.stack([np.full(n_levels, n), np.arange(n_levels)], axis=1)
    return LevelTable(levels=levels, ref_count=ref_count, rep_count=rep_count, rep_correct=rep_correct,
                      ref_correct=ref_correct, models=MEAN_MODEL), drawn


def score(point: np.ndarray, boot: np.ndarray, truth: float, confidence_level: float = 0.95) -> MethodOutcome:
    """Bias, RMSE, interval width and coverage from per-study point estimates
    (S,) and bootstrap replicates (S, B) of the gap, with Monte-Carlo SEs (see
    the module doc for the interval)."""
    ok = np.isfinite(point)
    if not ok.any():
        return MethodOutcome(studies=0, failed=int(len(point)), error="no study gave an estimate")
    point, boot = point[ok], boot[ok]
    s, b = boot.shape
    err = point - truth
    with warnings.catch_warnings():  # a study whose replicates all failed gives a NaN interval
        warnings.simplefilter("ignore", RuntimeWarning)
        center, sd = np.nanmean(boot, axis=1), np.nanstd(boot, axis=1, ddof=1)
    replicates = np.isfinite(boot).sum(axis=1)
    width = 2 * NormalDist().inv_cdf(0.5 + confidence_level / 2) * sd / _c4(replicates)
    half = special.stdtrit(np.maximum(replicates - 1, 1), 0.5 + confidence_level / 2) * sd
    covered = np.where(np.isfinite(sd), (np.abs(center - truth) <= half).astype(float), np.nan)
    sq = err ** 2
    rmse = float(np.sqrt(sq.mean()))
    coverage = float(np.nanmean(covered))
    root = np.sqrt(s)
    return MethodOutcome(
        bias=float(err.mean()), bias_se=float(err.std(ddof=1) / root) if s > 1 else np.nan,
        rmse=rmse, rmse_se=float(sq.std(ddof=1) / root / (2 * rmse)) if s > 1 and rmse > 0 else np.nan,
        ci_width=float(np.nanmean(width)), ci_width_se=float(np.nanstd(width, ddof=1) / root) if s > 1 else np.nan,
        coverage=coverage, coverage_se=float(np.sqrt(coverage * (1 - coverage) / s)),
        studies=s, failed=int((~ok).sum()))


def _c4(n: np.ndarray) -> np.ndarray:
    """E[SD] / sigma for n normal draws (the SD's small-sample bias factor)."""
    n = np.maximum(np.asarray(n, float), 2.0)
    return np.sqrt(2.0 / (n - 1)) * np.exp(special.gammaln(n / 2) - special.gammaln((n - 1) / 2))


def evaluate_design(design: Design, scenario: Scenario, methods: Sequence[str], *, n_studies: int,
                    n_bootstrap: int, seed: int, method_options: Mapping[str, Mapping[str, Any]] | None = None,
                    confidence_level: float = 0.95) -> DesignOutcome:
    """Simulate ``design`` and score every method. The random stream depends on
    ``seed`` and the design only, so results do not depend on the order or the
    process in which designs run. BLAS runs single-threaded: designs run in parallel."""
    start = time.perf_counter()
    rng = np.random.default_rng([int(seed), *design.key])
    outcomes = {}
    with threadpool_limits(1):  # one design per core: BLAS threads would only fight over the cores
        table, drawn = simulate_tables(design, scenario, n_studies, n_bootstrap, rng)
        truth = scenario.true_mean_gap()
        reference = table.reference_accuracy()[..., 0]
        for m in methods:
            options = dict((method_options or {}).get(m, {}))
            if m in PRIORS:  # the deconvolution's random starts come from this design's stream
                options["random_state"] = rng
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    adjusted = METHODS[m](table, **options).accuracy[..., 0]
            except FitError as exc:
                outcomes[m] = MethodOutcome(error=str(exc))
                continue
            gap = reference - adjusted
            outcomes[m] = score(gap[:, 0], gap[:, 1:], truth, confidence_level)
    return DesignOutcome(design, truth, float(drawn.mean()), outcomes, time.perf_counter() - start)


def outcome_dict(outcome: MethodOutcome) -> dict:
    """A method's outcome as JSON-able values (NaN as None)."""
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(outcome).items()}
