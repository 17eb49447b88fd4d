"""The selection-frequency bias estimator and its results (statsmodels split).

>>> est = SelectionBiasEstimator(("naive", "jackknife"), n_bootstrap=1000, random_state=0)
>>> res = est.fit(annotations, correctness)          # doctest: +SKIP
>>> res.adjusted_gap["jackknife"], res.conf_int(0.05)  # doctest: +SKIP
>>> print(res.summary()); res.to_dict()               # doctest: +SKIP

Intervals are percentile intervals from a bootstrap over images (stratified
by class when class ids are known), one Generator for every replicate, all
methods evaluated on the same replicates.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from replication.bootstrap import bootstrap_levels, percentile_interval
from replication.errors import FitError, InputError
from replication.estimators.registry import METHODS, Adjusted
from replication.io.tables import validate_annotations, validate_correctness
from replication.priors import PRIORS
from replication.sampling import EDGES, SELECTION_EDGES
from replication.study import DEFAULT_REFERENCE, DEFAULT_REPLICATION, StudyData
from replication.summary import Summary

log = logging.getLogger(__name__)


def check_methods(methods: Sequence[str] | str) -> tuple[str, ...]:
    """Validate method names against the registry; return them as a tuple."""
    names = tuple(m.strip() for m in methods.split(",")) if isinstance(methods, str) else tuple(methods)
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise InputError(f"unknown method(s) {', '.join(unknown) or '(none given)'}; "
                         f"valid: {', '.join(sorted(METHODS))}")
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class BootstrapDistribution:
    """Bootstrap replicates (rows) of every estimate, per model (columns).

    reference_accuracy, replication_accuracy : ndarray of shape (B, M)
    adjusted_accuracy : dict method -> ndarray of shape (B, M)
    """

    reference_accuracy: np.ndarray
    replication_accuracy: np.ndarray
    adjusted_accuracy: dict[str, np.ndarray] = field(default_factory=dict)

    def gap(self, method: str | None = None) -> np.ndarray:
        """Replicates of the gap (raw when ``method`` is None), shape (B, M)."""
        rep = self.replication_accuracy if method is None else self.adjusted_accuracy[method]
        return self.reference_accuracy - rep


class BiasResults:
    """Results of :meth:`SelectionBiasEstimator.fit`. Accuracies and gaps are
    fractions; per-model values are :class:`pandas.Series` indexed by model.

    Attributes
    ----------
    params : Series
        Every point estimate, indexed by (model, quantity) like :meth:`conf_int`.
    reference_accuracy, replication_accuracy, gap : Series
        Raw accuracies and raw gap (reference minus replication).
    adjusted_accuracy, adjusted_gap : dict method -> Series
        Adjusted replication accuracy and the gap to it.
    bootstrap_distribution : BootstrapDistribution
    n_failed : dict method -> int
        Bootstrap replicates in which the method returned NaN (left out of
        the intervals).
    model : SelectionBiasEstimator
        The estimator that produced these results.
    """

    def __init__(self, *, model: "SelectionBiasEstimator", study: StudyData, methods: tuple[str, ...],
                 point: Mapping[str, Adjusted], reference_accuracy: np.ndarray,
                 replication_accuracy: np.ndarray, bootstrap: BootstrapDistribution,
                 reference: str, replication: str, skipped: Mapping[str, str] | None = None):
        self.model = model
        self.skipped = dict(skipped or {})
        self.study = study
        self.methods = methods
        self.reference = reference
        self.replication = replication
        self._point = dict(point)
        idx = pd.Index(study.models, name="model")
        self.reference_accuracy = pd.Series(reference_accuracy, index=idx, name="reference_accuracy")
        self.replication_accuracy = pd.Series(replication_accuracy, index=idx, name="replication_accuracy")
        self.gap = self.reference_accuracy - self.replication_accuracy
        self.gap.name = "gap"
        self.adjusted_accuracy = {m: pd.Series(point[m].accuracy, index=idx, name=m) for m in methods}
        self.adjusted_gap = {m: (self.reference_accuracy - self.adjusted_accuracy[m]).rename(m) for m in methods}
        self.bootstrap_distribution = bootstrap
        self.n_failed = {m: int(np.isnan(bootstrap.adjusted_accuracy[m]).any(axis=1).sum()) for m in methods}
        self._bounds_at: dict[float, dict[str, np.ndarray]] = {}

    def _alpha(self, alpha: float | None) -> float:
        """``alpha`` or, when None, the estimator's (1 - confidence level of the intervals)."""
        return float(self.model.alpha) if alpha is None else float(alpha)

    @property
    def n_bootstrap(self) -> int:
        """Bootstrap replicates kept (0: point estimates only)."""
        return int(self.bootstrap_distribution.reference_accuracy.shape[0])

    @property
    def mean_gap(self) -> float:
        """Raw gap averaged over models."""
        return float(self.gap.mean())

    @property
    def adjusted_mean_gap(self) -> dict[str, float]:
        """Adjusted gap averaged over models, per method."""
        return {m: float(self.adjusted_gap[m].mean()) for m in self.methods}

    def weights(self, method: str) -> pd.DataFrame:
        """Per-image importance weights of the replication images for ``method``:
        columns ``dataset, image_id, weight`` (mean weight 1; the weighted
        accuracy ``mean(weight * correct)`` equals the adjusted accuracy)."""
        if method not in self._point:
            raise KeyError(f"method {method!r} was not fitted; fitted: {', '.join(self.methods)}")
        lw = self._point[method].level_weights
        if lw is None:
            raise KeyError(f"method {method!r} has no per-image weights")
        _, _, rep_level = self.study.level_index()
        rep = self.study.replication
        return pd.DataFrame({"dataset": rep.name, "image_id": rep.image_id, "weight": np.asarray(lw)[rep_level]})

    def weights_frame(self) -> pd.DataFrame:
        """``dataset, image_id`` and one weight column per fitted method that has weights."""
        rep = self.study.replication
        out = pd.DataFrame({"dataset": rep.name, "image_id": rep.image_id})
        _, _, rep_level = self.study.level_index()
        for m in self.methods:
            lw = self._point[m].level_weights
            if lw is not None:
                out[m] = np.asarray(lw)[rep_level]
        return out

    def _quantities(self) -> dict[str, tuple[pd.Series, np.ndarray]]:
        """Quantity -> (point estimates per model, bootstrap replicates (B, M)):
        ``reference_accuracy``, ``replication_accuracy``, ``gap``, and per
        method ``adjusted_accuracy[m]``, ``adjusted_gap[m]``."""
        bd = self.bootstrap_distribution
        out = {"reference_accuracy": (self.reference_accuracy, bd.reference_accuracy),
               "replication_accuracy": (self.replication_accuracy, bd.replication_accuracy),
               "gap": (self.gap, bd.gap())}
        for m in self.methods:
            out[f"adjusted_accuracy[{m}]"] = (self.adjusted_accuracy[m], bd.adjusted_accuracy[m])
            out[f"adjusted_gap[{m}]"] = (self.adjusted_gap[m], bd.gap(m))
        return out

    def _bounds(self, alpha: float) -> dict[str, np.ndarray]:
        """Quantity -> percentile interval (2, M) at level 1 - alpha (computed once per alpha)."""
        if alpha not in self._bounds_at:
            self._bounds_at[alpha] = {q: percentile_interval(draws, alpha)
                                      for q, (_, draws) in self._quantities().items()}
        return self._bounds_at[alpha]

    def _by_model_and_quantity(self, values: list[np.ndarray], name: str | None = None) -> pd.Series:
        """One value per (model, quantity) from per-quantity arrays (M,), models outermost."""
        index = pd.MultiIndex.from_product([self.reference_accuracy.index, list(self._quantities())],
                                           names=["model", "quantity"])
        return pd.Series(np.column_stack(values).ravel(), index=index, name=name)

    @property
    def params(self) -> pd.Series:
        """Point estimates (fractions), one per (model, quantity), in the rows of
        :meth:`conf_int`: ``reference_accuracy``, ``replication_accuracy``,
        ``gap``, and per method ``adjusted_accuracy[m]``, ``adjusted_gap[m]``."""
        return self._by_model_and_quantity([p.to_numpy() for p, _ in self._quantities().values()], "params")

    def conf_int(self, alpha: float | None = None) -> pd.DataFrame:
        """Percentile bootstrap intervals at level ``1 - alpha`` (default: the
        estimator's ``alpha``) of :attr:`params`: one row per (model, quantity),
        columns ``lower, upper``; NaN without bootstrap replicates."""
        bounds = list(self._bounds(self._alpha(alpha)).values())
        return pd.DataFrame({"lower": self._by_model_and_quantity([b[0] for b in bounds]),
                             "upper": self._by_model_and_quantity([b[1] for b in bounds])})

    def mean_gap_conf_int(self, alpha: float | None = None) -> pd.DataFrame:
        """Intervals for the gap averaged over models: rows ``raw`` and each
        method, columns ``value, lower, upper``."""
        alpha = self._alpha(alpha)
        bd = self.bootstrap_distribution
        rows = {"raw": (self.mean_gap, bd.gap().mean(axis=1))}
        for m in self.methods:
            rows[m] = (self.adjusted_mean_gap[m], bd.gap(m).mean(axis=1))
        out = {}
        for name, (value, d) in rows.items():
            lo, hi = percentile_interval(d, alpha)
            out[name] = {"value": value, "lower": float(lo), "upper": float(hi)}
        return pd.DataFrame.from_dict(out, orient="index")

    def summary(self, alpha: float | None = None) -> Summary:
        """Per-model table in percentage points: reference and raw replication
        accuracy, raw gap, and each method's adjusted gap with its interval."""
        alpha = self._alpha(alpha)
        ci = self.conf_int(alpha)
        table = pd.DataFrame({"ref acc": 100 * self.reference_accuracy,
                              "rep acc": 100 * self.replication_accuracy,
                              "raw gap": 100 * self.gap})
        for m in self.methods:
            lo = ci.xs(f"adjusted_gap[{m}]", level="quantity")
            table[f"{m} gap"] = 100 * self.adjusted_gap[m]
            table[f"{m} lo"] = 100 * lo["lower"].reindex(table.index)
            table[f"{m} hi"] = 100 * lo["upper"].reindex(table.index)
        means = self.mean_gap_conf_int(alpha)
        level = round(100 * (1 - alpha), 1)
        notes = [f"{self.reference} -> {self.replication}: {len(self.study.reference)} / "
                 f"{len(self.study.replication)} images, {len(self.study.models)} models; "
                 f"percentage points; {level:g}% percentile bootstrap intervals, "
                 f"{self.n_bootstrap} replicates"]
        for name, row in means.iterrows():
            label = "raw gap" if name == "raw" else f"{name} adjusted gap"
            notes.append(f"mean {label}: {100 * row['value']:.2f} [{100 * row['lower']:.2f}, {100 * row['upper']:.2f}]")
        for m, k in self.n_failed.items():
            if k:
                notes.append(f"{m}: {k} bootstrap replicate(s) failed and were left out")
        notes += [f"{m}: not fitted ({why})" for m, why in self.skipped.items()]
        return Summary("Selection-frequency bias: adjusted replication gaps", table=table, notes=notes,
                       float_format="8.2f")

    def to_dict(self, alpha: float | None = None) -> dict:
        """The ``bias`` JSON of CONTRACTS.md. ``ci`` is the interval of the
        (adjusted) gap; ``replication_accuracy_ci`` and ``gap_ci`` are extra
        keys that say which interval is which."""
        alpha = self._alpha(alpha)
        point = {q: p.tolist() for q, (p, _) in self._quantities().items()}
        bounds = {q: [[None if np.isnan(v) else float(v) for v in b] for b in ci]
                  for q, ci in self._bounds(alpha).items()}

        def interval(i: int, quantity: str) -> list[float | None]:
            return [bounds[quantity][0][i], bounds[quantity][1][i]]

        models = {}
        for i, name in enumerate(self.reference_accuracy.index):
            adjusted = {}
            for m in self.methods:
                gap_ci = interval(i, f"adjusted_gap[{m}]")
                adjusted[m] = {"replication_accuracy": point[f"adjusted_accuracy[{m}]"][i],
                               "gap": point[f"adjusted_gap[{m}]"][i], "ci": gap_ci, "gap_ci": gap_ci,
                               "replication_accuracy_ci": interval(i, f"adjusted_accuracy[{m}]")}
            models[name] = {"reference_accuracy": point["reference_accuracy"][i],
                            "replication_accuracy": point["replication_accuracy"][i],
                            "gap": point["gap"][i], "gap_ci": interval(i, "gap"), "adjusted": adjusted}
        means = self.mean_gap_conf_int(alpha)

        def pair(row: pd.Series) -> list[float | None]:
            return [None if np.isnan(row["lower"]) else float(row["lower"]),
                    None if np.isnan(row["upper"]) else float(row["upper"])]

        summary = {"mean_gap": self.mean_gap, "mean_gap_ci": pair(means.loc["raw"]),
                   "adjusted_mean_gap": {m: {"value": float(means.loc[m, "value"]), "ci": pair(means.loc[m])}
                                         for m in self.methods}}
        return {"reference": self.reference, "replication": self.replication, "models": models,
                "summary": summary, "confidence_level": 1 - alpha, "n_bootstrap": self.n_bootstrap,
                "n_images": {"reference": len(self.study.reference), "replication": len(self.study.replication)},
                "bootstrap_failures": dict(self.n_failed), "skipped_methods": dict(self.skipped)}


class SelectionBiasEstimator:
    """Estimate how much of a replication gap is selection-frequency bias.

    Parameters
    ----------
    methods : sequence of str, default=("naive", "jackknife")
        Names in :data:`replication.estimators.METHODS`.
    n_bootstrap : int, default=1000
        Bootstrap replicates over images (0 for point estimates only).
    alpha : float, default=0.05
        1 - confidence level of the intervals in ``conf_int()``, ``summary()``
        and ``to_dict()`` (as in :class:`~replication.fits.LineFit`).
    stratify : bool, default=True
        Resample within classes when class ids are known.
    random_state : None, int or numpy.random.Generator, default=None
    on_fit_error : {"raise", "skip"}, default="raise"
        What a method that cannot be fitted on the data does (e.g. the
        deconvolution methods with too few annotators): raise its
        :class:`FitError`, or be left out, its reason kept in
        ``BiasResults.skipped``.
    method_options : dict, default=None
        Keyword arguments per method, e.g. ``{"jackknife": {"d": 2}}``. The
        deconvolution methods' (one per prior family of
        :data:`replication.priors.PRIORS`) ``selection_edges`` defaults to the
        replication set's own sampling rule
        (:data:`replication.sampling.SELECTION_EDGES`), and their
        ``random_state`` is the estimator's Generator: one Generator drives
        the bootstrap, the priors' random starts and the pool's resampling.
    """

    def __init__(self, methods: Sequence[str] = ("naive", "jackknife"), *, n_bootstrap: int = 1000,
                 alpha: float = 0.05, stratify: bool = True, random_state: Any = None,
                 on_fit_error: str = "raise", method_options: Mapping[str, Mapping[str, Any]] | None = None):
        self.methods = methods
        self.n_bootstrap = n_bootstrap
        self.alpha = alpha
        self.stratify = stratify
        self.random_state = random_state
        self.on_fit_error = on_fit_error
        self.method_options = method_options

    def _estimate(self, name: str, table, replication: str, rng: np.random.Generator,
                  point: Adjusted | None = None) -> Adjusted:
        """Method ``name`` on ``table``; bootstrap chunks pass the ``point``
        estimate, whose fitted state warm-starts theirs."""
        options = dict((self.method_options or {}).get(name, {}))
        if name in PRIORS:  # deconvolution: the replication set's own sampling rule unless told otherwise
            options.setdefault("selection_edges", SELECTION_EDGES.get(replication, EDGES))
            options["random_state"] = rng
        if point is not None and point.warm_start is not None:
            options["warm_start"] = point.warm_start
        return METHODS[name](table, **options)

    def fit(self, annotations: pd.DataFrame | StudyData, correctness: pd.DataFrame | None = None, *,
            reference: str = DEFAULT_REFERENCE, replication: str = DEFAULT_REPLICATION,
            annotations_path: str = "<annotations>", correctness_path: str = "<correctness>") -> BiasResults:
        """Fit on contract tables (validated here) or on a :class:`StudyData`.

        Returns a new :class:`BiasResults`; the estimator itself is unchanged.
        """
        methods = check_methods(self.methods)
        if int(self.n_bootstrap) < 0:
            raise InputError(f"n_bootstrap must be >= 0, got {self.n_bootstrap}")
        if not 0 < float(self.alpha) < 1:
            raise InputError(f"alpha must lie in (0, 1), got {self.alpha}")
        unknown_opts = set(self.method_options or {}) - set(methods)
        if unknown_opts:
            raise InputError(f"method_options for method(s) not fitted: {', '.join(sorted(unknown_opts))}")
        if isinstance(annotations, StudyData):
            study = annotations
            reference, replication = study.reference.name, study.replication.name
        else:
            if correctness is None:
                raise InputError("fit() needs a correctness matrix with the annotation table")
            study = StudyData.from_tables(validate_annotations(annotations, annotations_path),
                                          validate_correctness(correctness, correctness_path),
                                          reference=reference, replication=replication,
                                          annotations_path=annotations_path, correctness_path=correctness_path)
        if self.on_fit_error not in ("raise", "skip"):
            raise InputError(f"on_fit_error must be 'raise' or 'skip', got {self.on_fit_error!r}")
        table = study.levels()
        rng = np.random.default_rng(self.random_state)  # a Generator passes through unchanged
        point, skipped = {}, {}
        for m in methods:
            try:
                point[m] = self._estimate(m, table, replication, rng)
            except FitError as exc:
                if self.on_fit_error == "raise" or len(skipped) == len(methods) - 1:
                    raise
                skipped[m] = str(exc)
                log.warning("%s left out: %s", m, exc)
        methods = tuple(m for m in methods if m not in skipped)
        for m, adj in point.items():
            if np.isnan(adj.accuracy).any():
                raise FitError(f"method {m!r} gives no estimate: no reference image shares an observed "
                               "selection frequency with any replication image")
        ref_b, rep_b, adj_b = [], [], {m: [] for m in methods}
        for chunk in bootstrap_levels(study, int(self.n_bootstrap), rng, stratify=self.stratify):
            ref_b.append(chunk.reference_accuracy())
            rep_b.append(chunk.replication_accuracy())
            for m in methods:
                adj_b[m].append(np.asarray(self._estimate(m, chunk, replication, rng, point[m]).accuracy))
        n_models = len(study.models)

        def stack(parts: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(parts, axis=0) if parts else np.empty((0, n_models))

        boot = BootstrapDistribution(reference_accuracy=stack(ref_b), replication_accuracy=stack(rep_b),
                                     adjusted_accuracy={m: stack(v) for m, v in adj_b.items()})
        results = BiasResults(model=self, study=study, methods=methods, point=point,
                              reference_accuracy=table.reference_accuracy(),
                              replication_accuracy=table.replication_accuracy(), bootstrap=boot,
                              reference=reference, replication=replication, skipped=skipped)
        for m, k in results.n_failed.items():
            if k:
                log.warning("%s: %d of %d bootstrap replicates gave no estimate; intervals use the rest",
                            m, k, results.n_bootstrap)
        return results
