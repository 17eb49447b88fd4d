"""What is public about ImageNet-v2's construction, as arrays.

Per candidate of the MTurk pool: its class, how many HITs showed it (10
annotations each) and whether it was drawn into MatchedFrequency, Threshold0.7
and TopImages. Per image of the three sets: every model's top-1 correctness;
per ImageNet val image: the same. The worker answers (k of n) were never
published.

:func:`load_public_data` reads the reference folder (``imagenetv2/``:
``hit_candidate_pool.parquet``, ``recht2019_correct_top1.parquet``,
``raw/sampling_thresholds_a.json``, its wnids mapped by the shipped class table);
:meth:`PublicData.from_tables` builds the same object from a simulated
construction's tables.

One HIT file of the public ImageNetV2 repository is missing, so some released
set images are in no readable HIT. ``classes="complete"`` (the default) keeps
only the classes all of whose set images are in the pool listing;
``classes="all"`` keeps every class and adds the unlisted set images to their
class's pool with one HIT (a lower bound) -- the sensitivity analysis compares
the two.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from replication.errors import InputError
from replication.io.tables import name_list, read_table, require_columns, select_models, validate_correctness

REFERENCE_ID = "imagenet-val"
#: the three ImageNet-v2 sets, in the order of :attr:`PublicData.member`'s columns
SET_IDS = ("imagenetv2-matched-frequency", "imagenetv2-threshold0.7", "imagenetv2-top-images")
#: the pool file's membership column of each set
POOL_COLUMNS = {"imagenetv2-matched-frequency": "in_matched_frequency",
                "imagenetv2-threshold0.7": "in_threshold0.7",
                "imagenetv2-top-images": "in_top_images"}
POOL_FILE = "imagenetv2/hit_candidate_pool.parquet"
CORRECT_FILE = "imagenetv2/recht2019_correct_top1.parquet"
THRESHOLDS_FILE = "imagenetv2/raw/sampling_thresholds_a.json"
#: the files :func:`load_public_data` reads, relative to the reference folder
INPUT_FILES = (POOL_FILE, CORRECT_FILE, THRESHOLDS_FILE)
#: annotations per HIT (``max_assignments`` in sample_args_10.json)
ANNOTATIONS_PER_HIT = 10
CLASS_CHOICES = ("complete", "all")


@dataclass(frozen=True)
class PublicData:
    """The public record of one ImageNet-v2 construction.

    Attributes
    ----------
    cand_class : ndarray of shape (N,), int64
        Class of each candidate.
    cand_hits : ndarray of shape (N,), int64
        HITs that showed the candidate (>= 1; 10 annotations each).
    member : ndarray of shape (N, 3), bool
        Membership in MatchedFrequency, Threshold0.7, TopImages (:data:`SET_IDS`).
    member_correct : ndarray of shape (N, M), int8
        Top-1 correctness per model; rows of candidates in no set are 0 (unused).
    val_class : ndarray of shape (V,), int64
    val_correct : ndarray of shape (V, M), int8
        Correctness on the reference (ImageNet val) images.
    models : tuple of str, length M
    class_thresholds : dict class -> float
        Threshold0.7's per-class exceptions.
    info : dict
        How the data were assembled (kept and dropped classes, added images).
    cand_unlisted : ndarray of shape (N,), bool, or None
        Set images absent from the pool listing, added with one HIT (``classes="all"``).
    """

    cand_class: np.ndarray
    cand_hits: np.ndarray
    member: np.ndarray
    member_correct: np.ndarray
    val_class: np.ndarray
    val_correct: np.ndarray
    models: tuple[str, ...]
    class_thresholds: dict[int, float] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    cand_unlisted: np.ndarray | None = None

    @property
    def classes(self) -> np.ndarray:
        """The classes present, sorted, shape (C,)."""
        return np.unique(self.cand_class)

    def set_accuracy(self) -> pd.DataFrame:
        """Raw top-1 accuracy (fraction) per model (rows) on val and each set (columns)."""
        out = {REFERENCE_ID: self.val_correct.mean(axis=0)}
        for j, ds in enumerate(SET_IDS):
            out[ds] = self.member_correct[self.member[:, j]].mean(axis=0)
        return pd.DataFrame(out, index=pd.Index(self.models, name="model"))

    def select_classes(self, classes: np.ndarray) -> "PublicData":
        """The same record restricted to ``classes``."""
        keep = np.isin(self.cand_class, classes)
        val = np.isin(self.val_class, classes)
        unlisted = None if self.cand_unlisted is None else self.cand_unlisted[keep]
        return PublicData(self.cand_class[keep], self.cand_hits[keep], self.member[keep],
                          self.member_correct[keep], self.val_class[val], self.val_correct[val], self.models,
                          {c: t for c, t in self.class_thresholds.items() if c in set(np.asarray(classes).tolist())},
                          dict(self.info), unlisted)

    @classmethod
    def from_tables(cls, pool: pd.DataFrame, correctness: pd.DataFrame, *,
                    class_thresholds: dict[int, float] | None = None, classes: str = "complete",
                    models: list[str] | None = None, pool_path: str = "<pool>",
                    correctness_path: str = "<correctness>") -> "PublicData":
        """Join a pool table (``image_id, cid, n_hits_to_label`` and the three
        ``in_*`` columns) with a correctness matrix holding ``imagenet-val`` and
        the three sets (``dataset, image_id, label``, model columns).

        Memberships are those of the correctness matrix (per image and class);
        the pool's flags must agree (they are per image, so an image listed under
        two classes carries its flags in both rows). Set images absent from the
        pool are handled by ``classes`` (module doc).
        """
        if classes not in CLASS_CHOICES:
            raise InputError(f"classes must be one of {', '.join(CLASS_CHOICES)}, got {classes!r}")
        require_columns(pool_path, pool, ("image_id", "cid", "n_hits_to_label", *POOL_COLUMNS.values()))
        correctness = validate_correctness(correctness, correctness_path)
        require_columns(correctness_path, correctness, ("label",))
        all_models = select_models(correctness, models, correctness_path)
        present = set(correctness["dataset"])
        absent = [ds for ds in (REFERENCE_ID, *SET_IDS) if ds not in present]
        if absent:
            raise InputError(f"{correctness_path}: no rows for dataset(s) {', '.join(absent)}")
        pool = _clean_pool(pool, pool_path)
        sets = correctness[correctness["dataset"].isin(SET_IDS)]
        images = _set_images(sets, all_models, correctness_path)
        merged = pool.merge(images, left_on=["image_id", "cid"], right_on=["image_id", "label"], how="outer",
                            indicator=True)
        flags = merged[[POOL_COLUMNS[ds] for ds in SET_IDS]].fillna(0).to_numpy(bool)
        listed = merged[[f"is_{ds}" for ds in SET_IDS]].fillna(False).to_numpy(bool)
        in_pool = merged["_merge"].to_numpy() != "right_only"
        # the pool's flags are per image; an image shown for two classes is flagged in both rows
        in_any_class = np.stack([merged["image_id"].isin(images.loc[images[f"is_{ds}"], "image_id"]).to_numpy()
                                 for ds in SET_IDS], axis=1)
        wrong = in_pool & ((listed & ~flags) | (flags & ~in_any_class)).any(axis=1)
        if wrong.any():
            row = merged[wrong].iloc[0]
            raise InputError(f"{pool_path}: candidate {row['image_id']} (class {int(row['cid'])}): set flags disagree "
                             f"with the sets in {correctness_path} ({int(wrong.sum())} candidate(s))")
        unlisted = ~in_pool
        merged.loc[unlisted, "cid"] = merged.loc[unlisted, "label"]
        merged.loc[unlisted, "n_hits_to_label"] = 1
        cand_class = merged["cid"].to_numpy(np.int64)
        incomplete = np.unique(cand_class[unlisted])
        info = {"classes": classes, "unlisted_set_images": int(unlisted.sum()),
                "classes_with_unlisted_images": int(len(incomplete))}
        keep = np.ones(len(merged), bool)
        if classes == "complete":
            keep = ~np.isin(cand_class, incomplete)
            info["dropped_classes"] = int(len(incomplete))
        member = listed[keep]
        correct = merged[all_models].fillna(0).to_numpy(np.int8)[keep]
        val = correctness[correctness["dataset"] == REFERENCE_ID]
        val_class = val["label"].to_numpy(np.int64)
        kept_classes = np.unique(cand_class[keep])
        val_keep = np.isin(val_class, kept_classes)
        missing_val = np.setdiff1d(kept_classes, val_class)
        if len(missing_val):
            raise InputError(f"{correctness_path}: no {REFERENCE_ID} images of class(es) {name_list(missing_val)}")
        thresholds = {int(c): float(t) for c, t in (class_thresholds or {}).items() if c in set(kept_classes.tolist())}
        return cls(cand_class=cand_class[keep], cand_hits=merged["n_hits_to_label"].to_numpy(np.int64)[keep],
                   member=member, member_correct=correct, val_class=val_class[val_keep],
                   val_correct=val[all_models].to_numpy(np.int8)[val_keep], models=tuple(all_models),
                   class_thresholds=thresholds, info=info, cand_unlisted=unlisted[keep])


def _clean_pool(pool: pd.DataFrame, path: str) -> pd.DataFrame:
    out = pool[["image_id", "cid", "n_hits_to_label", *POOL_COLUMNS.values()]].copy()
    out["image_id"] = out["image_id"].astype(str)
    for col in ("cid", "n_hits_to_label", *POOL_COLUMNS.values()):
        vals = pd.to_numeric(out[col], errors="coerce")
        bad = vals.isna().to_numpy() | (vals.to_numpy(float) != np.round(vals.to_numpy(float)))
        if bad.any():
            raise InputError(f"{path}: row {int(np.flatnonzero(bad)[0]) + 1}: {col} is missing or not an integer")
        out[col] = vals.to_numpy(np.int64)
    if (out["n_hits_to_label"] < 1).any():
        row = int(np.flatnonzero(out["n_hits_to_label"].to_numpy() < 1)[0]) + 1
        raise InputError(f"{path}: row {row}: n_hits_to_label < 1 (a candidate in the pool was shown at least once)")
    flags = out[list(POOL_COLUMNS.values())].to_numpy()
    if ((flags != 0) & (flags != 1)).any():
        raise InputError(f"{path}: set membership columns must be 0/1")
    dup = out.duplicated(subset=["image_id", "cid"]).to_numpy()
    if dup.any():
        raise InputError(f"{path}: row {int(np.flatnonzero(dup)[0]) + 1}: duplicate (image_id, cid)")
    return out


def _set_images(sets: pd.DataFrame, models: list[str], path: str) -> pd.DataFrame:
    """One row per (image_id, label) over the three sets: membership flags
    ``is_<set>`` and the correctness, which must agree across sets."""
    rows = sets[["dataset", "image_id", "label", *models]]
    for ds in SET_IDS:
        rows = rows.assign(**{f"is_{ds}": rows["dataset"] == ds})
    grouped = rows.groupby(["image_id", "label"], sort=True)
    lo, hi = grouped[models].min(), grouped[models].max()
    clash = (lo != hi).any(axis=1)
    if clash.any():
        image_id, label = clash[clash].index[0]
        raise InputError(f"{path}: image {image_id} (class {label}) has different correctness in two sets")
    flags = grouped[[f"is_{ds}" for ds in SET_IDS]].any()
    return pd.concat([flags, lo], axis=1).reset_index()


def load_public_data(reference_dir: str | os.PathLike, *, classes: str = "complete",
                     models: list[str] | None = None) -> PublicData:
    """Read ImageNet-v2's public record from a folder laid out like ``../shared/reference``."""
    from replication.sampling import load_class_thresholds

    root = Path(reference_dir)
    paths = {name: root / rel for name, rel in zip(("pool", "correct", "thresholds"), INPUT_FILES)}
    for p in paths.values():
        if not p.is_file():
            raise InputError(f"{p}: not found (expected under the reference folder {root})")
    thresholds = load_class_thresholds(paths["thresholds"])
    return PublicData.from_tables(read_table(paths["pool"]), read_table(paths["correct"]),
                                  class_thresholds=thresholds, classes=classes, models=models,
                                  pool_path=str(paths["pool"]), correctness_path=str(paths["correct"]))
