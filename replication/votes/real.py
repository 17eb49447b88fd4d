"""ImageNet-ReaL (Beyer et al. 2020, google-research/reassessed-imagenet): raw
rater answers, turned into votes on each val image's ORIGINAL label.

``raters.npz`` holds ``tensor`` (raters, questions, 3): one-hot answers
(no, maybe, yes) of each rater to each question, all zero where the rater
did not see it; ``info`` (questions, 2): the val file name and the candidate
class index (0..999) each question asks about; ``ids``: the rater ids.
Which candidate is the image's original ImageNet label is not in the file,
so the val labels are read from the devkit or ``LOC_val_solution.csv``
(``labels``). Per image, n = raters who answered the question on its
original label and k = those who said yes ("maybe" does not count).

About half of ImageNet val was never sent to raters (mostly images whose
label all models agreed with); those images are dropped and counted.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from replication.errors import InputError
from replication.votes._base import Dropped, ImportedVotes, annotation_table, file_stems, report_drops

RATERS = "raters.npz"
#: answer channels of the tensor's last axis
NO, MAYBE, YES = 0, 1, 2


class RealVotes:
    """Importer for ImageNet-ReaL's raw rater data.

    Parameters
    ----------
    labels : path, default=None
        ImageNet val labels: the ILSVRC-2012 devkit (folder or ``.tar.gz``) or
        Kaggle's ``LOC_val_solution.csv``. Required: the rater file does not say
        which candidate label is the original one.
    """

    def __init__(self, *, labels: str | os.PathLike | None = None):
        self.labels = labels

    def read(self, path: str | os.PathLike) -> ImportedVotes:
        """Read ``raters.npz`` (or the folder holding it) into an annotations table."""
        from evaluators.datasets.imagenet_flat import read_val_labels  # torch-free label-file readers

        path = Path(path)
        if path.is_dir():
            path = path / RATERS
        if not path.is_file():
            raise InputError(f"{path}: no such file (expected ReaL's {RATERS}, or the folder holding it)")
        if self.labels is None:
            raise InputError(f"{path}: ReaL's rater file does not say which candidate is an image's original "
                             "label; pass --labels (the ILSVRC-2012 devkit or LOC_val_solution.csv)")
        answers, files, classes, n_raters = _read_raters(path)
        original = read_val_labels(self.labels)

        image_id = file_stems(pd.Series(files)).to_numpy(object)
        known = pd.Series(image_id).isin(list(original)).to_numpy()
        if not known.all():
            raise InputError(f"{path}: {int((~known).sum())} question(s) about images without a label in "
                             f"{self.labels} (first: {image_id[~known][0]}); is it ImageNet val's label file?")
        label = pd.Series(image_id).map(original).to_numpy(np.int64)
        on_label = classes == label
        n_all = answers.sum(axis=1)
        ann = annotation_table(np.full(int(on_label.sum()), "imagenet-val", object), image_id[on_label],
                               n_all[on_label], answers[on_label, YES], label[on_label])
        rated = set(image_id)
        dup = ann.duplicated("image_id").to_numpy()
        if dup.any():
            raise InputError(f"{path}: image {ann.loc[dup, 'image_id'].iloc[0]} has two questions on its original label")
        dropped = [Dropped(len(original) - len(rated), "val images",
                           "never sent to raters (ReaL rated about half of val; the rest are mostly images whose "
                           "label every model agreed with)")]
        unasked = len(rated) - len(ann)
        if unasked:
            dropped.append(Dropped(unasked, "rated images", "no question about their original label"))
        unanswered = ann["n_annotators"].to_numpy() == 0
        if unanswered.any():
            dropped.append(Dropped(int(unanswered.sum()), "images", "no rater answered the question on their "
                                                                    "original label"))
            ann = ann[~unanswered].reset_index(drop=True)
        notes = (f"{answers.shape[0]:,} questions answered by {n_raters} raters; k counts 'yes' answers on the "
                 "original label ('maybe' is not a selection)",
                 "ReaL asks whether a label is correct, not Recht et al.'s 'select the images of this class', and "
                 "its rated half is not a random sample of val: not the selection frequency of ImageNet-v2")
        return ImportedVotes("real", path, ann, None, report_drops("real", dropped), notes)


def _read_raters(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(answers, files, classes, n_raters)``: answer counts (questions, 3) summed
    over raters, the file name and candidate class of each question."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("tensor", "info") if k not in npz.files]
            if missing:
                raise InputError(f"{path}: missing array(s) {', '.join(missing)} (has {', '.join(npz.files)})")
            tensor, info = npz["tensor"], npz["info"]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"{path}: cannot read ({type(exc).__name__}: {exc}); truncated?") from None
    if tensor.ndim != 3 or tensor.shape[2] != 3 or info.ndim != 2 or info.shape[1] != 2 \
            or info.shape[0] != tensor.shape[1]:
        raise InputError(f"{path}: expected tensor (raters, questions, 3) and info (questions, 2); "
                         f"got {tensor.shape} and {info.shape}")
    ones = tensor == 1
    per_answer = ones[..., NO].astype(np.uint8) + ones[..., MAYBE] + ones[..., YES]
    bad = ~(ones | (tensor == 0)).all(axis=(0, 2)) | (per_answer > 1).any(axis=0)
    if bad.any():
        q = np.flatnonzero(bad)
        raise InputError(f"{path}: question(s) {', '.join(map(str, q[:5]))}: answers are not one-hot (no, maybe, yes)")
    classes = pd.to_numeric(pd.Series(info[:, 1]), errors="coerce").to_numpy(float)
    bad = ~np.isfinite(classes) | (classes != np.round(classes)) | (classes < 0) | (classes > 999)
    if bad.any():
        q = np.flatnonzero(bad)
        raise InputError(f"{path}: info row(s) {', '.join(map(str, q[:5]))}: class {info[q[0], 1]!r} is not 0..999")
    return ones.sum(axis=0, dtype=np.int64), info[:, 0], classes.astype(np.int64), tensor.shape[0]
