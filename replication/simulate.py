"""A simulated dataset replication with known truth.

Per class, a reference pool and a candidate pool of images have true
selection frequencies s drawn from different Beta distributions; each image
is shown to n annotators who each select it with probability s (n fixed or
drawn per image). A MatchedFrequency replication set is drawn from the
candidates on the noisy k/n, exactly as Recht et al. did
(:func:`replication.sampling.matched_frequency`). Model m is correct on an
image with probability ``Phi(a_m + b_m * (s - pivot))`` on the reference set
and ``Phi(a_m + b_m * (s - pivot) - shift)`` on the replication set (``shift`` = a true
distribution shift in probit units, 0 for none).

The truth, per model, is computed on the populations (by quadrature over the
reference Beta), not on the drawn images:

* ``reference_accuracy`` = E_ref[Phi(a + b (s - pivot))]
* ``adjusted_replication_accuracy`` = E_ref[Phi(a + b (s - pivot) - shift)] (the
  estimand of ``replication bias``: replication accuracy at the reference
  images' distribution of TRUE selection frequency)
* ``gap`` = their difference (0 without a shift)

``expected_replication_accuracy`` (mean of the replication curve over the
drawn replication images' true s) shows what the raw gap is made of.

>>> study = simulate(SimulationConfig.preset("engstrom2020"), np.random.default_rng(0))  # doctest: +SKIP
>>> write_study(study, "sim/")                                                          # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from replication.io.atomic import write_outputs
from replication.io.tables import N_CLASSES
from replication.sampling import EDGES, matched_frequency, threshold, top_images
from replication.study import DEFAULT_REFERENCE, DEFAULT_REPLICATION

#: quadrature points (midpoints on [0, 1]) for the population truth
_GRID = (np.arange(4000) + 0.5) / 4000


@dataclass(frozen=True)
class SimulationConfig:
    """Parameters of a simulated replication study.

    Parameters
    ----------
    n_classes : int, default=1000
    reference_per_class : int, default=20
        Annotated reference images per class (like ImageNet's 20,000 annotated val images).
    candidates_per_class : int, default=120
        Candidate pool per class from which the replication set is drawn.
    replication_per_class : int, default=10
    reference_prior, candidate_prior : (float, float)
        Beta(a, b) of the true selection frequency in each pool.
    n_annotators : int or tuple of int, default=10
        Annotators per image; a tuple draws each image's count uniformly from it.
    n_models : int, default=67
    skill_range : (float, float), default=(0.15, 1.0)
        Model intercepts a_m, evenly spaced over this range (probit units); the
        default gives reference accuracies from about 56% to 83%, like Recht et al.'s models.
    slope : float, default=2.4
        Median slope b_m of the probit accuracy curve in s.
    slope_spread : float, default=0.15
        Standard deviation of log(b_m) across models.
    pivot : float, default=0.8
        Selection frequency at which a model's probit accuracy is a_m (so
        the slope spread hardly moves the models' accuracies).
    shift : float, default=0.0
        True distribution shift: probit units subtracted on replication images.
    edges : tuple of float, default=(0.2, 0.4, 0.6, 0.8)
        MatchedFrequency bin edges.
    reference : str, replication : str
        Dataset ids written to the tables. The replication id also picks the
        sampling procedure: ``imagenetv2-threshold0.7`` draws by Threshold,
        ``imagenetv2-top-images`` by TopImages, any other by MatchedFrequency.
    """

    n_classes: int = 1000
    reference_per_class: int = 20
    candidates_per_class: int = 120
    replication_per_class: int = 10
    reference_prior: tuple[float, float] = (8.0, 2.0)
    candidate_prior: tuple[float, float] = (2.0, 2.0)
    n_annotators: int | tuple[int, ...] = 10
    n_models: int = 67
    skill_range: tuple[float, float] = (0.15, 1.0)
    pivot: float = 0.8
    slope: float = 2.4
    slope_spread: float = 0.15
    shift: float = 0.0
    edges: tuple[float, ...] = EDGES
    reference: str = DEFAULT_REFERENCE
    replication: str = DEFAULT_REPLICATION

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "SimulationConfig":
        """A named configuration, optionally with some fields overridden.

        ``engstrom2020``: the published ImageNet-v2 picture -- a raw
        MatchedFrequency drop of about 11.7 points (mean over 67 models), of
        which about 3.6 is a true shift and the rest selection bias
        (reference s ~ Beta(8, 2), candidates Beta(2, 2), 10 annotators).
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; valid: {', '.join(sorted(PRESETS))}")
        return dataclasses.replace(cls(**PRESETS[name]), **overrides)

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        for name in ("n_classes", "reference_per_class", "candidates_per_class",
                     "replication_per_class", "n_models"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_classes > N_CLASSES:
            raise ValueError(f"n_classes must be at most {N_CLASSES} (class ids are ILSVRC-2012 indices), "
                             f"got {self.n_classes}")
        if not abs(self.shift) <= MAX_SHIFT:
            raise ValueError(f"shift must lie within +-{MAX_SHIFT:g} probit units, got {self.shift}")
        for name in ("reference_prior", "candidate_prior"):
            a, b = getattr(self, name)
            if a <= 0 or b <= 0:
                raise ValueError(f"{name} must hold two positive Beta parameters, got {(a, b)}")
        counts = np.atleast_1d(self.n_annotators)
        if counts.size == 0 or np.any(counts < 1):
            raise ValueError(f"n_annotators must be >= 1, got {self.n_annotators}")
        if self.slope <= 0:
            raise ValueError(f"slope must be > 0 (accuracy rises with s), got {self.slope}")
        if self.reference == self.replication:
            raise ValueError("reference and replication dataset ids must differ")


#: largest true shift (probit units) a study may simulate: beyond it every accuracy is 0 or 1
MAX_SHIFT = 10.0

PRESETS: dict[str, dict[str, Any]] = {
    "engstrom2020": dict(shift=0.11),
}


@dataclass(frozen=True)
class SimulatedStudy:
    """A simulated study in the contract formats, with its truth.

    annotations : DataFrame ``dataset, image_id, n_annotators, n_selected, class_id``
    correctness : DataFrame ``dataset, image_id, label`` and one 0/1 column per model
    truth : DataFrame indexed by model: ``reference_accuracy``,
        ``adjusted_replication_accuracy``, ``gap``, ``shift``,
        ``expected_replication_accuracy``, ``expected_raw_gap``, ``intercept``, ``slope``
    images : DataFrame ``dataset, image_id, class_id, true_s`` (the hidden truth per image)
    config : SimulationConfig
    """

    annotations: pd.DataFrame
    correctness: pd.DataFrame
    truth: pd.DataFrame
    images: pd.DataFrame
    config: SimulationConfig

    def truth_dict(self) -> dict:
        """The truth file's content: per-model truth, its means, and the config."""
        t = self.truth
        return {
            "reference": self.config.reference,
            "replication": self.config.replication,
            "models": {m: {k: float(v) for k, v in row.items()} for m, row in t.iterrows()},
            "summary": {
                "mean_true_gap": float(t["gap"].mean()),
                "mean_expected_raw_gap": float(t["expected_raw_gap"].mean()),
                "mean_true_s": self.images.groupby("dataset")["true_s"].mean().to_dict(),
            },
            "config": dataclasses.asdict(self.config),
            "notes": "accuracies and gaps are fractions; reference_accuracy, adjusted_replication_accuracy "
                     "and gap are population values (quadrature over the reference Beta); "
                     "expected_replication_accuracy averages the replication curve over the drawn "
                     "replication images' true selection frequencies",
        }


def _annotators(counts: int | tuple[int, ...], size: int, rng: np.random.Generator) -> np.ndarray:
    choices = np.atleast_1d(np.asarray(counts, dtype=np.int64))
    if choices.size == 1:
        return np.full(size, choices[0], dtype=np.int64)
    return rng.choice(choices, size=size)


def model_curves(config: SimulationConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Intercepts and slopes of the models' probit accuracy curves, indexed by model name."""
    m = config.n_models
    intercept = np.linspace(*config.skill_range, m) if m > 1 else np.array([np.mean(config.skill_range)])
    slope = config.slope * np.exp(config.slope_spread * rng.standard_normal(m))
    names = [f"sim_model_{i:02d}" for i in range(m)]
    return pd.DataFrame({"intercept": intercept, "slope": slope}, index=pd.Index(names, name="model"))


def accuracy_curve(s: np.ndarray, curves: pd.DataFrame, pivot: float, shift: float = 0.0) -> np.ndarray:
    """P(correct | s) for every model, shape (len(s), M)."""
    z = curves["intercept"].to_numpy()[None, :] + np.outer(s - pivot, curves["slope"].to_numpy()) - shift
    return special.ndtr(z)


def _select_replication(config: SimulationConfig, ref_freq: np.ndarray, ref_class: np.ndarray,
                        cand_freq: np.ndarray, cand_class: np.ndarray, cand_n: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
    """Indices of the candidates that form the replication set, drawn by the
    procedure its dataset id names: Threshold (k/n >= 0.7), TopImages, or
    MatchedFrequency (any other id)."""
    per_class = config.replication_per_class
    if config.replication == "imagenetv2-threshold0.7":
        return threshold(cand_freq, cand_class, per_class, rng, min_annotators=None)
    if config.replication == "imagenetv2-top-images":
        return top_images(cand_freq, cand_class, per_class, cand_annotators=cand_n, min_annotators=None)
    return matched_frequency(ref_freq, ref_class, cand_freq, cand_class, per_class, rng,
                             edges=config.edges, min_annotators=None)


def simulate(config: SimulationConfig, rng: np.random.Generator) -> SimulatedStudy:
    """Draw one simulated study (see module doc). All randomness comes from ``rng``."""
    config.validate()
    c = config.n_classes
    curves = model_curves(config, rng)

    ref_class = np.repeat(np.arange(c), config.reference_per_class)
    ref_s = rng.beta(*config.reference_prior, size=len(ref_class))
    ref_n = _annotators(config.n_annotators, len(ref_class), rng)
    ref_k = rng.binomial(ref_n, ref_s)

    cand_class = np.repeat(np.arange(c), config.candidates_per_class)
    cand_s = rng.beta(*config.candidate_prior, size=len(cand_class))
    cand_n = _annotators(config.n_annotators, len(cand_class), rng)
    cand_k = rng.binomial(cand_n, cand_s)
    chosen = _select_replication(config, ref_k / ref_n, ref_class, cand_k / cand_n, cand_class, cand_n, rng)
    rep_class, rep_s, rep_n, rep_k = cand_class[chosen], cand_s[chosen], cand_n[chosen], cand_k[chosen]

    ref_p = accuracy_curve(ref_s, curves, config.pivot)
    rep_p = accuracy_curve(rep_s, curves, config.pivot, config.shift)
    ref_correct = (rng.random(ref_p.shape) < ref_p).astype(np.int8)
    rep_correct = (rng.random(rep_p.shape) < rep_p).astype(np.int8)

    ref_ids = np.char.add("sim-ref-", np.char.zfill(np.arange(len(ref_class)).astype(str), 7))
    rep_ids = np.char.add("sim-rep-", np.char.zfill(np.arange(len(rep_class)).astype(str), 7))
    datasets = np.repeat([config.reference, config.replication], [len(ref_class), len(rep_class)])
    image_id = np.concatenate([ref_ids, rep_ids])
    class_id = np.concatenate([ref_class, rep_class])
    annotations = pd.DataFrame({"dataset": datasets, "image_id": image_id,
                                "n_annotators": np.concatenate([ref_n, rep_n]),
                                "n_selected": np.concatenate([ref_k, rep_k]), "class_id": class_id})
    correctness = pd.concat([
        pd.DataFrame({"dataset": datasets, "image_id": image_id, "label": class_id}),
        pd.DataFrame(np.concatenate([ref_correct, rep_correct]), columns=list(curves.index)),
    ], axis=1)
    images = pd.DataFrame({"dataset": datasets, "image_id": image_id, "class_id": class_id,
                           "true_s": np.concatenate([ref_s, rep_s])})
    return SimulatedStudy(annotations=annotations, correctness=correctness,
                          truth=population_truth(config, curves, rep_s), images=images, config=config)


def population_truth(config: SimulationConfig, curves: pd.DataFrame, rep_s: np.ndarray) -> pd.DataFrame:
    """Per-model truth (see module doc), indexed by model."""
    a, b = config.reference_prior
    density = np.exp((a - 1) * np.log(_GRID) + (b - 1) * np.log1p(-_GRID) - special.betaln(a, b))
    return truth_at_masses(density / density.sum(), curves, config.pivot, config.shift, rep_s)


def truth_grid() -> np.ndarray:
    """The quadrature points of the population truth (midpoints of 4000 cells of [0, 1])."""
    return _GRID


def truth_at_masses(masses: np.ndarray, curves: pd.DataFrame, pivot: float, shift: float,
                    rep_s: np.ndarray) -> pd.DataFrame:
    """Per-model truth (see module doc) for a reference distribution given as
    masses (summing to 1) on :func:`truth_grid`, indexed by model."""
    ref_acc = masses @ accuracy_curve(_GRID, curves, pivot)
    adj_acc = masses @ accuracy_curve(_GRID, curves, pivot, shift)
    expected_rep = accuracy_curve(rep_s, curves, pivot, shift).mean(axis=0)
    return pd.DataFrame({
        "reference_accuracy": ref_acc,
        "adjusted_replication_accuracy": adj_acc,
        "gap": ref_acc - adj_acc,
        "shift": shift,
        "expected_replication_accuracy": expected_rep,
        "expected_raw_gap": ref_acc - expected_rep,
        "intercept": curves["intercept"].to_numpy(),
        "slope": curves["slope"].to_numpy(),
    }, index=curves.index)


def study_files(study: SimulatedStudy, out_dir: str | os.PathLike, *,
                annotations_format: str = "csv") -> dict[str, tuple[Path, Any]]:
    """Where the study's files go in ``out_dir`` and what they hold:
    ``{"annotations": (path, frame), "correct": ..., "truth": (path, dict)}``
    (see :func:`write_study`). Nothing is written."""
    if annotations_format not in ("csv", "parquet"):
        raise ValueError(f"annotations_format must be 'csv' or 'parquet', got {annotations_format!r}")
    out = Path(out_dir)
    return {"annotations": (out / f"annotations.{annotations_format}", study.annotations),
            "correct": (out / "correct.parquet", study.correctness),
            "truth": (out / "truth.json", study.truth_dict())}


def write_study(study: SimulatedStudy, out_dir: str | os.PathLike, *, annotations_format: str = "csv") -> dict[str, Path]:
    """Write ``annotations.csv`` (or ``.parquet``), ``correct.parquet`` and
    ``truth.json`` into ``out_dir``, atomically all three or none. Returns the paths."""
    files = study_files(study, out_dir, annotations_format=annotations_format)
    write_outputs(dict(files.values()))
    return {key: path for key, (path, _) in files.items()}
