"""Simulate ImageNet-v2's whole three-set construction, with known truth.

Per class, a candidate pool of the real size (or any layout): every candidate
gets a true selection frequency from its class's pool distribution
(:class:`~replication.v2public.model.ConstructionModel`), 10 annotations per
HIT that showed it, and an observed k/n. From that ONE pool the three sets are
drawn exactly as Recht et al.'s samplers do (:mod:`replication.sampling`):
MatchedFrequency (bins matched to the class's reference histogram),
Threshold0.7 (10 uniformly among k/n >= 0.7, the per-class exceptions of
``sampling_thresholds_a.json``) and TopImages (the 10 highest). The reference
(ImageNet val) has ``reference_per_class`` images per class from the class's
reference distribution, of which ``reference_annotated`` were annotated; their
k/n histogram is the one MatchedFrequency matches. Models are correct with
probability ``Phi(a_m + b_m (s - pivot))`` on val and ``... - shift`` on the
new sets (:func:`replication.simulate.model_curves`).

:class:`SimulatedConstruction` keeps apart what is public in reality (the pool
listing with HIT counts and memberships, and the correctness matrix) and the
hidden truth (every s, n and k, the class effects, and the per-model truth).

>>> sim = simulate_construction(ConstructionConfig.preset("imagenetv2"), layout, np.random.default_rng(0))  # doctest: +SKIP
>>> data = sim.public_data(); sim.truth()                                                             # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from replication.sampling import (THRESHOLD, ShortSampleWarning, frequency_bin, largest_remainder,
                                 matched_frequency, threshold, top_images)
from replication.simulate import SimulationConfig, accuracy_curve, model_curves, truth_at_masses, truth_grid
from replication.v2public.data import ANNOTATIONS_PER_HIT, POOL_COLUMNS, REFERENCE_ID, SET_IDS, PublicData
from replication.v2public.model import ConstructionModel


@dataclass(frozen=True)
class PoolLayout:
    """Which candidates each class has and how often each was shown.

    cand_class : ndarray of shape (N,), int64
    cand_hits : ndarray of shape (N,), int64 (HITs, 10 annotations each; >= 1)
    class_thresholds : dict class -> float, Threshold0.7's per-class exceptions
    """

    cand_class: np.ndarray
    cand_hits: np.ndarray
    class_thresholds: dict[int, float] = field(default_factory=dict)

    @classmethod
    def from_public(cls, data: PublicData) -> "PoolLayout":
        """The layout of a public record (real or simulated)."""
        return cls(data.cand_class, data.cand_hits, dict(data.class_thresholds))

    @classmethod
    def synthetic(cls, n_classes: int, rng: np.random.Generator, *, median_size: int = 140,
                  hit_shares: tuple[float, ...] = (0.75, 0.23, 0.02)) -> "PoolLayout":
        """A random layout: log-normal pool sizes (at least 15) around ``median_size``;
        HIT counts 1, 2, 3, ... with ``hit_shares``."""
        sizes = np.maximum(15, np.round(median_size * np.exp(0.6 * rng.standard_normal(n_classes)))).astype(np.int64)
        cand_class = np.repeat(np.arange(n_classes), sizes)
        hits = 1 + rng.choice(len(hit_shares), size=len(cand_class), p=np.asarray(hit_shares) / np.sum(hit_shares))
        return cls(cand_class, hits.astype(np.int64))

    def log_sizes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(classes, x)``: the classes and their centred log pool sizes (mean 0)."""
        classes, sizes = np.unique(self.cand_class, return_counts=True)
        logs = np.log(sizes)
        return classes, logs - logs.mean()


@dataclass(frozen=True)
class ConstructionConfig:
    """Parameters of a simulated construction.

    Parameters
    ----------
    model : ConstructionModel
        Pool and reference distributions of true selection frequency.
    per_class : int, default=10
        Images per class in each of the three sets.
    reference_per_class : int, default=50
        ImageNet val images per class (all scored by the models).
    reference_annotated : int, default=20
        Of those, the annotated ones whose k/n histogram MatchedFrequency matches.
    reference_hits : int or None, default=None
        HITs (10 annotations each) per annotated reference image; None draws
        them from the layout's distribution of candidate HIT counts.
    unlisted_share : float, default=0.0
        Share of candidates missing from the public pool listing (as with the
        missing HIT file), each independently.
    n_models, skill_range, slope, slope_spread, pivot, shift
        The models' probit accuracy curves, as in :class:`replication.simulate.SimulationConfig`;
        ``shift`` (probit units) is subtracted on the three new sets.
    grow_short_pools : bool, default=True
        Like Recht et al., add candidates (one HIT's worth, 42, per round, at
        most ``max_growth_rounds``) to classes whose Threshold0.7 or
        MatchedFrequency set would come out short; the public pool sizes are the
        grown ones.
    difficulty_slope, difficulty_sd : float, default=0.0
        Class difficulty: every model's probit on class c's images (val and new)
        is raised by ``difficulty_slope * u_c + difficulty_sd * xi_c`` (u_c the
        class's deviation, xi_c standard normal): classes whose candidates are
        rarely good are also hard, as in the real data.
    """

    model: ConstructionModel = ConstructionModel()
    per_class: int = 10
    reference_per_class: int = 50
    reference_annotated: int = 20
    reference_hits: int | None = None
    unlisted_share: float = 0.0
    n_models: int = 67
    skill_range: tuple[float, float] = (0.15, 1.0)
    slope: float = 2.4
    slope_spread: float = 0.15
    pivot: float = 0.8
    shift: float = 0.0
    difficulty_slope: float = 0.0
    difficulty_sd: float = 0.0
    grow_short_pools: bool = True
    max_growth_rounds: int = 60

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "ConstructionConfig":
        """A named configuration (:data:`PRESETS`) with some fields overridden;
        ``model`` overrides may be given as a dict of model fields."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; valid: {', '.join(sorted(PRESETS))}")
        base = dict(PRESETS[name])
        model = overrides.pop("model", {})
        if isinstance(model, dict):
            model = dataclasses.replace(base.pop("model"), **model)
        else:
            base.pop("model")
        return cls(model=model, **{**base, **overrides})

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        self.model.validate()
        for name in ("per_class", "reference_per_class", "reference_annotated", "n_models"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.reference_annotated > self.reference_per_class:
            raise ValueError("reference_annotated must not exceed reference_per_class")
        if self.reference_hits is not None and self.reference_hits < 1:
            raise ValueError(f"reference_hits must be >= 1 or None, got {self.reference_hits}")
        if not 0 <= self.unlisted_share < 1:
            raise ValueError(f"unlisted_share must lie in [0, 1), got {self.unlisted_share}")
        if self.slope <= 0:
            raise ValueError(f"slope must be > 0, got {self.slope}")

    def curve_config(self) -> SimulationConfig:
        """The model-curve fields as a :class:`~replication.simulate.SimulationConfig`."""
        return SimulationConfig(n_models=self.n_models, skill_range=self.skill_range, slope=self.slope,
                                slope_spread=self.slope_spread, pivot=self.pivot, shift=self.shift)


#: near the construction model fitted to the real public record (708 complete classes, see the
#: README), with the pool's class effects recalibrated so that a simulation, whose short pools
#: grow, reproduces the real overlap counts (|T & TI| 5.3 vs 4.9, |MF & T| 3.2, |MF & TI| 3.0, |all| 1.9)
FITTED = ConstructionModel(pool_location=-1.5, pool_size_slope=-1.6, pool_spread=0.8, pool_shape=5.9,
                           pool_tail=1.1, ref_location=0.85, ref_shape=32.0, ref_class_share=0.11,
                           pool_family="mixture")
#: ``imagenetv2``: :data:`FITTED`, models about as accurate as Recht et al.'s, class difficulty
#: tied to pool quality, no true shift; ``imagenetv2-shift``: the same with a true shift of 0.3
#: probit units (about the adjusted gap the public data give)
PRESETS: dict[str, dict[str, Any]] = {
    "imagenetv2": dict(model=FITTED, skill_range=(0.4, 1.4), difficulty_slope=0.15, difficulty_sd=0.5),
    "imagenetv2-shift": dict(model=FITTED, skill_range=(0.4, 1.4), difficulty_slope=0.15, difficulty_sd=0.5,
                             shift=0.3),
}


@dataclass(frozen=True)
class SimulatedConstruction:
    """One simulated construction.

    Public (what exists in reality):
        pool : DataFrame ``image_id, cid, n_hits_to_label, in_matched_frequency,
            in_threshold0.7, in_top_images`` (the listed candidates)
        correctness : DataFrame ``dataset, image_id, label`` + one 0/1 column per model,
            for ``imagenet-val`` and the three sets
        class_thresholds : Threshold0.7's per-class exceptions
    Hidden (the truth):
        candidates : DataFrame per candidate: ``image_id, cid, n_annotators, n_selected,
            true_s, listed`` and the three memberships
        classes : DataFrame per class: ``cid, log_size, eta, deviation, difficulty``
        curves : DataFrame per model: ``intercept, slope``
        config : ConstructionConfig
        short_classes : classes that some sampler left short (as Recht's code warns)
    """

    pool: pd.DataFrame
    correctness: pd.DataFrame
    class_thresholds: dict[int, float]
    candidates: pd.DataFrame
    classes: pd.DataFrame
    curves: pd.DataFrame
    config: ConstructionConfig
    short_classes: tuple[int, ...] = ()

    def public_data(self, *, classes: str = "complete") -> PublicData:
        """The public record, as :func:`~replication.v2public.data.load_public_data` reads a real one."""
        return PublicData.from_tables(self.pool, self.correctness, class_thresholds=self.class_thresholds,
                                      classes=classes)

    def reference_masses(self, classes: np.ndarray | None = None) -> np.ndarray:
        """The reference distribution of s averaged over ``classes`` (default all),
        as masses on :func:`replication.simulate.truth_grid`."""
        grid = truth_grid()
        edges = np.concatenate([[0.0], (grid[1:] + grid[:-1]) / 2, [1.0]])
        rows = self.classes if classes is None else self.classes[self.classes["cid"].isin(np.asarray(classes))]
        return self.config.model.ref_cells(rows["deviation"].to_numpy(), edges).mean(axis=0)

    def truth(self, classes: np.ndarray | None = None) -> pd.DataFrame:
        """Per-model truth over ``classes`` (default all), indexed by model:
        ``reference_accuracy`` and ``adjusted_replication_accuracy`` (val and
        MatchedFrequency accuracy at the reference's TRUE s distribution, by
        quadrature), their ``gap`` (0 without a shift), and
        ``expected_replication_accuracy`` over the drawn MatchedFrequency images."""
        cand = self.candidates
        mf = cand["in_matched_frequency"].to_numpy(bool)
        rows = self.classes if classes is None else self.classes[self.classes["cid"].isin(classes)]
        if classes is not None:
            mf &= cand["cid"].isin(classes).to_numpy()
        cfg = self.config
        rep_s = cand.loc[mf, "true_s"].to_numpy()
        if not np.any(rows["difficulty"].to_numpy()):
            return truth_at_masses(self.reference_masses(rows["cid"]), self.curves, cfg.pivot, cfg.shift, rep_s)
        grid = truth_grid()
        edges = np.concatenate([[0.0], (grid[1:] + grid[:-1]) / 2, [1.0]])
        masses = cfg.model.ref_cells(rows["deviation"].to_numpy(), edges)
        per_class = [truth_at_masses(m, self.curves.assign(intercept=self.curves["intercept"] + d), cfg.pivot,
                                     cfg.shift, rep_s)
                     for m, d in zip(masses, rows["difficulty"].to_numpy())]     # a loop over classes
        out = sum(per_class) / len(per_class)
        mf_difficulty = self.classes.set_index("cid").loc[cand.loc[mf, "cid"], "difficulty"].to_numpy()
        out["expected_replication_accuracy"] = accuracy_curve(rep_s, self.curves, cfg.pivot,
                                                              cfg.shift - mf_difficulty[:, None]).mean(axis=0)
        out["expected_raw_gap"] = out["reference_accuracy"] - out["expected_replication_accuracy"]
        return out


def _reference_hits(config: ConstructionConfig, layout: PoolLayout, size: int, rng: np.random.Generator) -> np.ndarray:
    if config.reference_hits is not None:
        return np.full(size, int(config.reference_hits), np.int64)
    return rng.choice(layout.cand_hits, size=size)


def simulate_construction(config: ConstructionConfig, layout: PoolLayout,
                          rng: np.random.Generator) -> SimulatedConstruction:
    """Draw one construction (module doc). All randomness comes from ``rng``."""
    config.validate()
    model = config.model
    classes, log_size = layout.log_sizes()
    eta = rng.standard_normal(len(classes))
    deviation = model.class_deviation(log_size, eta)
    difficulty = config.difficulty_slope * deviation + config.difficulty_sd * rng.standard_normal(len(classes))
    code = np.searchsorted(classes, layout.cand_class)
    hits = layout.cand_hits
    s = model.sample_pool(deviation[code], rng)
    k = rng.binomial(ANNOTATIONS_PER_HIT * hits, s)
    n_val = config.reference_per_class
    val_code = np.repeat(np.arange(len(classes)), n_val)
    val_s = model.sample_ref(deviation[val_code], rng)
    annotated = np.tile(np.arange(n_val) < config.reference_annotated, len(classes))
    ref_n = ANNOTATIONS_PER_HIT * _reference_hits(config, layout, int(annotated.sum()), rng)
    ref_k = rng.binomial(ref_n, val_s[annotated])
    if config.grow_short_pools:
        target = largest_remainder(np.stack([np.bincount(val_code[annotated] * 5 + frequency_bin(ref_k / ref_n),
                                                         minlength=5 * len(classes))]).reshape(-1, 5),
                                   config.per_class)
        code, hits, s, k = _grow_short_pools(config, layout, classes, deviation, target, code, hits, s, k, rng)
    cand_class = classes[code]
    n = ANNOTATIONS_PER_HIT * hits

    freq = k / n
    per = config.per_class
    ids = rng.permutation(len(freq))
    with warnings.catch_warnings():  # short classes are reported in ``short_classes``
        warnings.simplefilter("ignore", ShortSampleWarning)
        chosen = {
            SET_IDS[0]: matched_frequency(ref_k / ref_n, classes[val_code[annotated]], freq, cand_class, per,
                                          rng, ref_annotators=ref_n, cand_annotators=n),
            SET_IDS[1]: threshold(freq, cand_class, per, rng, class_thresholds=layout.class_thresholds,
                                  cand_annotators=n),
            SET_IDS[2]: top_images(freq, cand_class, per, cand_annotators=n, cand_ids=ids),
        }
    short = _short_classes(cand_class, chosen, per)

    curves = model_curves(config.curve_config(), rng)
    cand_ids = np.char.add("simcand-", np.char.zfill(np.arange(len(freq)).astype(str), 7))
    member = np.zeros((len(freq), 3), bool)
    for j, ds in enumerate(SET_IDS):
        member[chosen[ds], j] = True
    union = np.flatnonzero(member.any(axis=1))
    # class difficulty enters as a per-image offset of the probit (subtracted "shift")
    p_union = accuracy_curve(s[union], curves, config.pivot, config.shift - difficulty[code[union], None])
    union_correct = (rng.random(p_union.shape) < p_union).astype(np.int8)
    p_val = accuracy_curve(val_s, curves, config.pivot, -difficulty[val_code, None])
    val_correct = (rng.random(p_val.shape) < p_val).astype(np.int8)
    listed = rng.random(len(freq)) >= config.unlisted_share

    candidates = pd.DataFrame({"image_id": cand_ids, "cid": cand_class, "n_annotators": n, "n_selected": k,
                               "true_s": s, "listed": listed,
                               **{POOL_COLUMNS[ds]: member[:, j].astype(np.int8) for j, ds in enumerate(SET_IDS)}})
    pool = candidates.loc[listed, ["image_id", "cid"]].assign(n_hits_to_label=hits[listed])
    for ds in SET_IDS:
        pool[POOL_COLUMNS[ds]] = candidates.loc[listed, POOL_COLUMNS[ds]]
    correctness = _correctness_table(curves, classes, val_code, val_correct, cand_ids, cand_class,
                                     member, union, union_correct)
    class_table = pd.DataFrame({"cid": classes, "log_size": log_size, "eta": eta, "deviation": deviation,
                                "difficulty": difficulty})
    return SimulatedConstruction(pool=pool.reset_index(drop=True), correctness=correctness,
                                 class_thresholds=dict(layout.class_thresholds), candidates=candidates,
                                 classes=class_table, curves=curves, config=config, short_classes=short)


#: candidates shown per HIT (48 images, 3 + 3 of them controls; sample_args_10.json)
CANDIDATES_PER_HIT = 42


def _grow_short_pools(config: ConstructionConfig, layout: PoolLayout, classes: np.ndarray, deviation: np.ndarray,
                      target: np.ndarray, code: np.ndarray, hits: np.ndarray, s: np.ndarray, k: np.ndarray,
                      rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Recht et al. collected candidates until every class's sets could be drawn:
    classes with fewer than ``per_class`` above Threshold0.7's threshold, or whose
    MatchedFrequency ``target`` (C, 5) the bins cannot meet even with upward
    filling, get one more HIT's worth of new candidates (one HIT each) per round,
    up to ``max_growth_rounds`` rounds. Returns the grown (code, hits, s, k)."""
    limit = np.array([layout.class_thresholds.get(int(c), THRESHOLD) for c in classes])
    need = np.cumsum(target[:, ::-1], axis=1)          # candidates needed in bins >= b, highest first
    for _ in range(config.max_growth_rounds):
        freq = k / (ANNOTATIONS_PER_HIT * hits)
        above = np.bincount(code, weights=freq >= limit[code] - 1e-12, minlength=len(classes))
        have = np.bincount(code * 5 + frequency_bin(freq), minlength=5 * len(classes)).reshape(-1, 5)
        mf_short = (np.cumsum(have[:, ::-1], axis=1) < need).any(axis=1)
        short = np.flatnonzero((above < config.per_class) | mf_short)
        if len(short) == 0:
            break
        new_code = np.repeat(short, CANDIDATES_PER_HIT)
        new_s = config.model.sample_pool(deviation[new_code], rng)
        code, hits = np.concatenate([code, new_code]), np.concatenate([hits, np.ones(len(new_code), np.int64)])
        s, k = np.concatenate([s, new_s]), np.concatenate([k, rng.binomial(ANNOTATIONS_PER_HIT, new_s)])
    return code, hits, s, k


def _short_classes(cand_class: np.ndarray, chosen: dict[str, np.ndarray], per: int) -> tuple[int, ...]:
    classes = np.unique(cand_class)
    short = np.zeros(len(classes), bool)
    for idx in chosen.values():
        counts = np.bincount(np.searchsorted(classes, cand_class[idx]), minlength=len(classes))
        short |= counts < per
    return tuple(int(c) for c in classes[short])


def _correctness_table(curves: pd.DataFrame, classes: np.ndarray, val_code: np.ndarray, val_correct: np.ndarray,
                       cand_ids: np.ndarray, cand_class: np.ndarray, member: np.ndarray, union: np.ndarray,
                       union_correct: np.ndarray) -> pd.DataFrame:
    models = list(curves.index)
    val_ids = np.char.add("simval-", np.char.zfill(np.arange(len(val_code)).astype(str), 7))
    parts = [pd.concat([pd.DataFrame({"dataset": REFERENCE_ID, "image_id": val_ids, "label": classes[val_code]}),
                        pd.DataFrame(val_correct, columns=models)], axis=1)]
    for j, ds in enumerate(SET_IDS):
        rows = member[union, j]
        idx = union[rows]
        parts.append(pd.concat([pd.DataFrame({"dataset": ds, "image_id": cand_ids[idx], "label": cand_class[idx]}),
                                pd.DataFrame(union_correct[rows], columns=models)], axis=1))
    return pd.concat(parts, ignore_index=True)
