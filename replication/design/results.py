"""The outcome of a design study: the contract JSON, a table, the recommendation."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from replication.design.simulation import DesignOutcome, MethodOutcome, outcome_dict
from replication.errors import InputError
from replication.io.jsonfile import read_json
from replication.summary import Summary


#: share of its replication images a design's pool must give on average to be recommended
MIN_DRAWN = 0.99


@dataclass(frozen=True)
class Criteria:
    """What a recommended design must reach with at least one method (fractions):
    expected 95%-interval width of the mean adjusted gap, |bias|, coverage."""

    target_ci_width: float = 0.03
    max_bias: float = 0.01
    min_coverage: float = 0.85

    def met_by(self, r: MethodOutcome) -> bool:
        """Whether a method's expected interval width, |bias| and coverage meet the criteria."""
        return (r.error is None and r.studies > 0 and r.ci_width <= self.target_ci_width
                and abs(r.bias) <= self.max_bias and r.coverage >= self.min_coverage)

    def __str__(self) -> str:
        cov = f", coverage >= {100 * self.min_coverage:.0f}%" if self.min_coverage > 0 else ""
        return (f"95%-interval width <= {100 * self.target_ci_width:g} points and |bias| <= "
                f"{100 * self.max_bias:g} points{cov}")


@dataclass
class DesignResults:
    """Outcomes of every design (see :func:`~replication.design.runner.run_designs`).

    Attributes
    ----------
    outcomes : list of DesignOutcome
    criteria : Criteria
    price_per_vote : float
    scenario : dict
        :meth:`Scenario.describe`, plus ``source``.
    settings : dict
        Studies and bootstrap replicates per design, seed, methods, how intervals are judged.
    """

    outcomes: list[DesignOutcome]
    criteria: Criteria
    price_per_vote: float
    scenario: dict
    settings: dict = field(default_factory=dict)

    def recommended(self) -> tuple[DesignOutcome, str] | None:
        """The cheapest design (fewest votes; then the smallest RMSE) with a method
        that meets the criteria, and that method (the smallest RMSE among those
        that do); None when no design does. A design whose pool gives fewer than
        :data:`MIN_DRAWN` of its replication images is not a candidate (Recht et
        al.'s sampler marks such a set invalid)."""
        best = None
        for o in self.outcomes:
            if o.replication_drawn < MIN_DRAWN * o.design.replication_images:
                continue
            for m, r in o.methods.items():
                if self.criteria.met_by(r):
                    key = (o.design.votes, r.rmse, o.design.key)
                    if best is None or key < best[0]:
                        best = (key, o, m)
        return None if best is None else (best[1], best[2])

    def unfitted(self) -> dict[tuple[str, str], list[int]]:
        """``{(method, reason): [annotators, ...]}`` for methods that could not be fitted."""
        out: dict[tuple[str, str], list[int]] = {}
        for o in self.outcomes:
            for m, r in o.methods.items():
                if r.error is not None:
                    ns = out.setdefault((m, r.error), [])
                    if o.design.annotators not in ns:
                        ns.append(o.design.annotators)
        return out

    def _design_dict(self, o: DesignOutcome) -> dict:
        d = o.design
        return {"annotators": d.annotators, "reference_images": d.reference_images,
                "replication_images": d.replication_images, "pool_images": d.pool_images, "classes": d.classes,
                "votes": d.votes, "cost": d.cost(self.price_per_vote),
                "replication_images_drawn": o.replication_drawn, "true_gap": o.true_gap,
                "methods": {m: {**outcome_dict(r), "meets_criteria": self.criteria.met_by(r)}
                            for m, r in o.methods.items()}}

    def notes(self) -> list[str]:
        """Lines a reader must see: methods that cannot be fitted and why, short pools, the recommendation."""
        lines = []
        for (m, why), ns in self.unfitted().items():
            lines.append(f"{m}: cannot be fitted with {', '.join(map(str, sorted(ns)))} annotators per image "
                         f"under MatchedFrequency: {why}")
        for o in self.outcomes:
            if o.replication_drawn < 0.995 * o.design.replication_images:
                lines.append(f"{o.design.label()}: the pool gave only {o.replication_drawn:,.0f} of "
                             f"{o.design.replication_images:,} replication images on average (too few "
                             "candidates in the high-frequency bins)"
                             + ("; not recommended" if o.replication_drawn < MIN_DRAWN * o.design.replication_images
                                else ""))
        rec = self.recommended()
        if rec is None:
            lines.append(f"no design in the grid meets {self.criteria} with any method: enlarge the grid "
                         "(more annotators or images) or relax --target-ci-width, --max-bias or --min-coverage")
        else:
            o, m = rec
            r = o.methods[m]
            lines.append(f"recommended: {o.design.label()} with {m}: {o.design.votes:,} votes, cost "
                         f"{o.design.cost(self.price_per_vote):,.2f}; bias {100 * r.bias:+.2f} points, 95% interval "
                         f"width {100 * r.ci_width:.2f} points, coverage {100 * r.coverage:.0f}% "
                         f"(the cheapest design meeting {self.criteria})")
        return lines

    def to_dict(self) -> dict:
        """The ``design`` JSON of CONTRACTS.md (gaps and widths as fractions), with extra keys."""
        rec = self.recommended()
        recommended = None
        if rec is not None:
            recommended = {**self._design_dict(rec[0]), "method": rec[1]}
        return {"designs": [self._design_dict(o) for o in self.outcomes], "recommended": recommended,
                "criteria": {"target_ci_width": self.criteria.target_ci_width, "max_bias": self.criteria.max_bias,
                             "min_coverage": self.criteria.min_coverage},
                "price_per_vote": self.price_per_vote, "scenario": self.scenario, "settings": self.settings,
                "notes": self.notes()}

    def table(self) -> pd.DataFrame:
        """:func:`design_table` of :meth:`to_dict`."""
        return design_table(self.to_dict())

    def summary(self) -> Summary:
        """The table as text (statsmodels style), with the scenario and the notes."""
        t = self.table()
        t["meets"] = t["meets"].astype(bool)
        text = pd.DataFrame({
            "n": t["annotators"], "reference": t["reference"].map("{:,}".format),
            "replication": t["replication"].map("{:,}".format), "pool": t["pool"].map("{:,}".format),
            "votes": t["votes"].map("{:,}".format), "method": t["method"],
            "bias": _pm(t["bias"], t["bias_se"], 2, sign=True), "RMSE": _pm(t["rmse"], t["rmse_se"], 2),
            "CI width": _pm(t["ci_width"], t["ci_width_se"], 2),
            "coverage %": _pm(t["coverage"], t["coverage_se"], 0),
            "": np.where(t["meets"], "*", "")})
        rec = self.recommended()
        if rec is not None:
            o, m = rec
            at = (t["annotators"] == o.design.annotators) & (t["reference"] == o.design.reference_images) & \
                (t["replication"] == o.design.replication_images) & (t["pool"] == o.design.pool_images) & \
                (t["method"] == m)
            text.loc[at.to_numpy(), ""] = "* <- recommended"
        text.loc[t["bias"].isna().to_numpy(), "bias"] = "not fitted"
        s = self.settings
        info = [("scenario", self.scenario.get("source", "")),
                ("true mean gap", f"{100 * self.scenario['true_mean_gap']:.2f} points"),
                ("simulated", f"{s.get('studies')} studies per design, {s.get('bootstrap')} bootstrap replicates each"),
                ("criteria (*)", str(self.criteria)), ("price per vote", f"{self.price_per_vote:g}")]
        notes = [f"measured: {m}" for m in self.scenario.get("measured", [])]
        notes += [f"assumed: {a}" for a in self.scenario.get("assumed", [])]
        notes += ["gaps, bias, RMSE and interval widths in percentage points (± Monte-Carlo SE over the "
                  "simulated studies); votes = annotators x (reference + pool images)", *self.notes()]
        return Summary("Replication study designs: the mean adjusted gap per method", info=info,
                       table=text.set_index("n"), notes=notes)


def design_table(data: dict) -> pd.DataFrame:
    """One row per (design, method) of a design JSON (:meth:`DesignResults.to_dict`):
    sizes, votes, cost, and bias, RMSE and interval width in percentage points and
    coverage in percent, each with its Monte-Carlo SE; ``meets``: meets the criteria."""
    rows = []
    for d in data["designs"]:
        for m, r in d["methods"].items():
            value = {k: np.nan if r.get(k) is None else 100 * r[k]
                     for k in ("bias", "bias_se", "rmse", "rmse_se", "ci_width", "ci_width_se", "coverage",
                               "coverage_se")}
            rows.append({"annotators": d["annotators"], "reference": d["reference_images"],
                         "replication": d["replication_images"], "pool": d["pool_images"], "votes": d["votes"],
                         "cost": d["cost"], "method": m, **value, "studies": r["studies"],
                         "meets": r["meets_criteria"], "error": r["error"]})
    return pd.DataFrame(rows)


def _pm(value: pd.Series, se: pd.Series, decimals: int, sign: bool = False) -> pd.Series:
    """``value ± se`` as text with ``decimals`` decimals ('' for NaN)."""
    spec = f"{'+' if sign else ''}.{decimals}f"
    return pd.Series(["" if not np.isfinite(v) else format(v, spec) + ("" if not np.isfinite(e) else
                      f" ± {e:.{decimals}f}") for v, e in zip(value, se)], index=value.index)


def read_design(path: str | os.PathLike) -> dict:
    """A ``replication design`` JSON, checked for the contract keys (InputError otherwise)."""
    p = Path(path)
    data = read_json(p, dict, "the JSON of `replication design` (needs designs, recommended, criteria)")
    if not isinstance(data.get("designs"), list) or "recommended" not in data \
            or "criteria" not in data:
        raise InputError(f"{p}: not the JSON of `replication design` (needs designs, recommended, criteria)")
    return data
