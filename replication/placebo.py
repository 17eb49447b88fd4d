"""A placebo replication study staged inside ONE real dataset (no true shift).

Steps (issue 3, item 6), all driven by one Generator:

1. keep the images with at least m + 1 votes;
2. split each image's votes at random into m MATCHING votes (a hypergeometric
   draw of selections) and the held-out rest;
3. split the images at random (within each class) into a reference half and
   a candidate pool;
4. thin the pool so that its true selection frequencies are lower: keep an
   image with probability (1 - held-out share) ** power (default power 2).
   The held-out votes are independent of the matching votes given the image's
   true s, so the thinning acts on s only, as a real pool's lower quality does;
5. draw a MatchedFrequency replication set from the thinned pool on the
   matching votes' frequency k/m, matched to the reference half's histogram
   (Recht et al.'s bins);
6. estimate, from the matching votes only, every method's adjusted gap.

Both halves come from the same dataset, so the true gap is zero; the naive
gap is selection bias alone. The deconvolution methods get the thinned pool's
matching votes as the replication set's candidate pool (as Engstrom et al.
used the ImageNet-v2 candidates' annotations): with m <= 4 votes every k/m
lies in its own MatchedFrequency bin, so the replication images alone carry
no information on their pool. Bootstrap replicates resample the pool too.

With about 25 rated images per class (ImageNet-ReaL), a thinned pool holds a
handful of images per class, too few to match per class; by default the
matching is done over all classes together, with the largest set size that the
thinned pool fills in every bin (``size_per_class`` matches per class instead).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from replication.errors import InputError
from replication.estimators import METHODS
from replication.estimators.results import BiasResults, SelectionBiasEstimator
from replication.io.tables import model_columns
from replication.priors import PRIORS
from replication.sampling import EDGES, frequency_bin, largest_remainder, matched_frequency, rank_within
from replication.study import StudyData

REFERENCE_SUFFIX = "placebo-reference"
REPLICATION_SUFFIX = "placebo-replication"
DEFAULT_MATCHING_VOTES = 2


@dataclass(frozen=True)
class PlaceboStudy:
    """A staged study: contract tables for its two halves and the pool.

    annotations : DataFrame ``dataset, image_id, n_annotators (= m), n_selected, class_id``
    correctness : DataFrame ``dataset, image_id, label`` and one 0/1 column per model
    pool : DataFrame ``image_id, n_annotators, n_selected, class_id``, the thinned pool's matching votes
    reference, replication : the two dataset ids
    info : dict of counts describing the staging
    """

    annotations: pd.DataFrame
    correctness: pd.DataFrame
    pool: pd.DataFrame
    reference: str
    replication: str
    info: dict


def _join(annotations: pd.DataFrame, correctness: pd.DataFrame, dataset: str, annotations_path: str,
          correctness_path: str) -> pd.DataFrame:
    ann = annotations[annotations["dataset"] == dataset]
    if ann.empty:
        present = ", ".join(sorted(annotations["dataset"].unique()))
        raise InputError(f"{annotations_path}: no annotation rows for dataset {dataset!r}; present: {present}")
    cor = correctness[correctness["dataset"] == dataset]
    merged = ann.merge(cor.drop(columns=["dataset"]), on="image_id", how="left", indicator=True)
    missing = (merged["_merge"] == "left_only").to_numpy()
    if missing.any():
        ids = merged.loc[missing, "image_id"].head(3).tolist()
        raise InputError(f"{correctness_path}: {missing.sum()} annotated {dataset} image(s) have no correctness "
                         f"row (first: {', '.join(ids)})")
    merged = merged.drop(columns="_merge")
    if "class_id" not in merged.columns:
        if "label" not in merged.columns:
            raise InputError(f"{annotations_path}: the placebo needs class ids (class_id in the annotations "
                             "or label in the correctness matrix)")
        merged["class_id"] = merged["label"]
    return merged.sort_values("image_id", kind="stable").reset_index(drop=True)


def _global_size(ref_freq: np.ndarray, cand_freq: np.ndarray, edges) -> int:
    """Largest set size whose largest-remainder target histogram (the reference
    histogram scaled to it) the candidates fill in every bin."""
    n_bins = len(edges) + 1
    ref_hist = np.bincount(frequency_bin(ref_freq, edges), minlength=n_bins)
    avail = np.bincount(frequency_bin(cand_freq, edges), minlength=n_bins)
    share = ref_hist / ref_hist.sum()
    size = int(np.floor(np.min(np.where(share > 0, avail / np.where(share > 0, share, 1), np.inf))))
    while size > 0 and np.any(largest_remainder(ref_hist, size) > avail):
        size -= 1
    return size


def stage_placebo(annotations: pd.DataFrame, correctness: pd.DataFrame, rng: np.random.Generator, *,
                  dataset: str = "imagenet-val", matching_votes: int = DEFAULT_MATCHING_VOTES,
                  thinning_power: float = 2.0, size_per_class: int | None = None,
                  edges: tuple[float, ...] = EDGES,
                  annotations_path: str = "<annotations>", correctness_path: str = "<correctness>") -> PlaceboStudy:
    """Stage a placebo replication study inside ``dataset`` (see module doc).

    Parameters
    ----------
    annotations, correctness : DataFrame
        Validated contract tables; annotated images of ``dataset`` must have a
        correctness row.
    rng : numpy.random.Generator
        Drives every random split, thinning and draw.
    dataset : str, default="imagenet-val"
        Dataset id (in ``annotations``) the placebo is staged inside.
    matching_votes : int, default=2
        Votes per image used for matching and estimation (m).
    thinning_power : float, default=2
        Pool images are kept with probability (1 - held-out share) ** power.
    size_per_class : int or None, default=None
        Match per class with this many images per class; None matches over all
        classes together (see module doc).
    edges : tuple of float, default=EDGES
        MatchedFrequency bin edges on k/m, in (0, 1).
    annotations_path, correctness_path : str
        File names used in error messages.

    Returns
    -------
    PlaceboStudy

    Raises
    ------
    InputError
        On a bad argument or tables that cannot stage a placebo.
    """
    m = int(matching_votes)
    if m < 1:
        raise InputError(f"--matching-votes must be >= 1, got {matching_votes}")
    if thinning_power < 0:
        raise InputError(f"thinning power must be >= 0, got {thinning_power}")
    data = _join(annotations, correctness, dataset, annotations_path, correctness_path)
    data = data[data["n_annotators"] >= m + 1].reset_index(drop=True)
    if len(data) < 100:
        raise InputError(f"{annotations_path}: only {len(data)} {dataset} image(s) have at least {m + 1} votes; "
                         f"the placebo needs more (lower --matching-votes)")
    n = data["n_annotators"].to_numpy(np.int64)
    k = data["n_selected"].to_numpy(np.int64)
    cls = data["class_id"].to_numpy(np.int64)
    k_match = rng.hypergeometric(k, n - k, m)
    held_share = (k - k_match) / (n - m)

    rank = rank_within(cls, rng.random(len(data)))              # random order within class
    coin = rng.random(np.max(cls) + 1) < 0.5                     # which half gets a class's odd image
    in_ref = (rank % 2 == 0) == coin[cls]
    kept = ~in_ref & (rng.random(len(data)) < (1.0 - held_share) ** thinning_power)

    ref_idx, pool_idx = np.flatnonzero(in_ref), np.flatnonzero(kept)
    ref_freq, pool_freq = k_match[ref_idx] / m, k_match[pool_idx] / m
    if size_per_class is None:
        size = _global_size(ref_freq, pool_freq, edges)
        chosen = matched_frequency(ref_freq, np.zeros(len(ref_idx), np.int64), pool_freq,
                                   np.zeros(len(pool_idx), np.int64), size, rng, edges=tuple(edges),
                                   min_annotators=None)
    else:
        chosen = matched_frequency(ref_freq, cls[ref_idx], pool_freq, cls[pool_idx], int(size_per_class), rng,
                                   edges=tuple(edges), min_annotators=None)
    rep_idx = pool_idx[chosen]
    if len(rep_idx) < 50:
        asked = "matched over all classes" if size_per_class is None else f"{size_per_class} per class asked"
        raise InputError(f"{annotations_path}: the thinned pool fills a matched set of only {len(rep_idx)} images "
                         f"({asked}); too few for a fit (more images with votes, a lower --thinning-power"
                         f"{'' if size_per_class is None else ' or --size-per-class'})")

    reference, replication = f"{dataset}:{REFERENCE_SUFFIX}", f"{dataset}:{REPLICATION_SUFFIX}"
    models = model_columns(correctness)

    def part(idx: np.ndarray, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        ann = pd.DataFrame({"dataset": name, "image_id": data["image_id"].to_numpy()[idx],
                            "n_annotators": m, "n_selected": k_match[idx], "class_id": cls[idx]})
        cor = pd.concat([pd.DataFrame({"dataset": name, "image_id": ann["image_id"], "label": cls[idx]}),
                         data.loc[idx, models].reset_index(drop=True).astype(np.int8)], axis=1)
        return ann, cor

    ref_ann, ref_cor = part(ref_idx, reference)
    rep_ann, rep_cor = part(rep_idx, replication)
    pool = pd.DataFrame({"image_id": data["image_id"].to_numpy()[pool_idx], "n_annotators": m,
                         "n_selected": k_match[pool_idx], "class_id": cls[pool_idx]})
    info = {"dataset": dataset, "matching_votes": m, "thinning_power": float(thinning_power),
            "images_with_enough_votes": int(len(data)), "reference_images": int(len(ref_idx)),
            "pool_images_before_thinning": int((~in_ref).sum()), "pool_images": int(len(pool_idx)),
            "replication_images": int(len(rep_idx)),
            "matching": "per class" if size_per_class is not None else "all classes together",
            "mean_heldout_share": {"reference": float(held_share[ref_idx].mean()),
                                   "pool": float(held_share[pool_idx].mean()),
                                   "replication": float(held_share[rep_idx].mean())}}
    return PlaceboStudy(annotations=pd.concat([ref_ann, rep_ann], ignore_index=True),
                        correctness=pd.concat([ref_cor, rep_cor], ignore_index=True),
                        pool=pool, reference=reference, replication=replication, info=info)


def pool_levels(placebo: PlaceboStudy, levels: np.ndarray) -> np.ndarray:
    """The pool's image counts at each (n, k) level of a study's level table,
    shape (L,); a pool level that neither half has is left out."""
    pairs, counts_at = np.unique(placebo.pool[["n_annotators", "n_selected"]].to_numpy(np.int64), axis=0,
                                 return_counts=True)
    lookup = {tuple(p): i for i, p in enumerate(levels.tolist())}
    counts = np.zeros(len(levels))
    for pair, count in zip(pairs.tolist(), counts_at):          # a loop over levels (a few)
        if tuple(pair) in lookup:
            counts[lookup[tuple(pair)]] = count
    return counts


def run_placebo(annotations: pd.DataFrame, correctness: pd.DataFrame, *, seed: int, dataset: str = "imagenet-val",
                matching_votes: int = DEFAULT_MATCHING_VOTES, methods: tuple[str, ...] | None = None,
                n_bootstrap: int = 1000, thinning_power: float = 2.0, size_per_class: int | None = None,
                annotations_path: str = "<annotations>",
                correctness_path: str = "<correctness>") -> tuple[PlaceboStudy, BiasResults]:
    """Stage the placebo with ``seed`` and fit every method on it (one
    Generator for staging, another derived from it for the estimator).

    Parameters
    ----------
    annotations, correctness : DataFrame
        Validated contract tables (see :func:`stage_placebo`).
    seed : int
        Seed of the one Generator behind staging, and of the estimator's
        Generator derived from it (bootstrap, pool resampling, random starts).
    methods : tuple of str, default=None
        Estimator methods (keys of ``METHODS``; None: all); the deconvolution
        ones get the thinned pool as their candidate pool.
    n_bootstrap : int, default=1000
        Bootstrap replicates (0: point estimates only, no intervals).
    dataset, matching_votes, thinning_power, size_per_class, annotations_path, correctness_path
        As in :func:`stage_placebo`; ``size_per_class`` set also stratifies
        the bootstrap by class.

    Returns
    -------
    placebo : PlaceboStudy
    results : BiasResults
        Adjusted accuracies and gaps per model and method (true gap 0).
    """
    rng = np.random.default_rng(seed)
    placebo = stage_placebo(annotations, correctness, rng, dataset=dataset, matching_votes=matching_votes,
                            thinning_power=thinning_power, size_per_class=size_per_class,
                            annotations_path=annotations_path, correctness_path=correctness_path)
    study = StudyData.from_tables(placebo.annotations, placebo.correctness, reference=placebo.reference,
                                  replication=placebo.replication)
    levels = study.levels().levels
    pool = pool_levels(placebo, levels)
    methods = tuple(METHODS) if methods is None else tuple(methods)
    options = {name: {"pool_counts": pool} for name in methods if name in PRIORS}
    # resample within classes only when the matching was per class: after global matching most classes
    # hold one or two replication images, and a stratum of one image never varies
    estimator = SelectionBiasEstimator(methods, n_bootstrap=n_bootstrap, random_state=rng.spawn(1)[0],
                                       stratify=size_per_class is not None, method_options=options or None)
    return placebo, estimator.fit(study)


def placebo_dict(placebo: PlaceboStudy, results: BiasResults) -> dict:
    """The contract JSON of ``bias`` plus a ``placebo`` section (staging counts,
    the two halves' names, and per method how many models' gap intervals cover
    the true gap 0). ``reference`` and ``replication`` are both the dataset id."""
    out = results.to_dict()
    # contract: reference and replication are dataset ids; both halves come from the one dataset
    halves = {"reference_half": out["reference"], "replication_half": out["replication"]}
    out["reference"] = out["replication"] = placebo.info["dataset"]
    covers = {}
    if results.n_bootstrap > 0:  # without replicates there are no intervals to cover 0
        for method, row in out["summary"]["adjusted_mean_gap"].items():
            per_model = [v["adjusted"][method]["ci"] for v in out["models"].values()]
            covers[method] = {"models_covering_zero": int(sum(lo <= 0 <= hi for lo, hi in per_model)),
                              "mean_gap_covers_zero": bool(row["ci"][0] <= 0 <= row["ci"][1])}
    out["placebo"] = {**placebo.info, **halves, "true_gap": 0.0, "n_models": len(out["models"]), "coverage": covers}
    return out
