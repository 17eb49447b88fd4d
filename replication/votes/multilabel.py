"""Tsipras et al. (2020)'s CLASSIFY task on ImageNet val (MadryLab/ImageNetMultiLabel,
``data/annotations_classify_task.pkl``): a pickled DataFrame, one row per
image (index ``image``: the val file name), with

    num_workers     workers who annotated the image (6-9)
    imagenet_label  the image's ImageNet class (0..999)
    selected        per worker, the list of labels of the objects the worker selected
    main            per worker, the label of the main object (not used here)

n = ``num_workers`` and k = the workers whose selection contains the
ImageNet label. The same per-image counts as a CSV (``file_name,
imagenet_label, num_workers, n_selected_imagenet_label``, as derived in the
reference folder) are read without unpickling anything.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from replication.errors import InputError
from replication.io.tables import _fail, require_columns
from replication.votes._base import (ImportedVotes, annotation_table, check_unique_images, file_stems, integer_column,
                                     read_frame, report_drops)

PICKLE_COLUMNS = ("num_workers", "imagenet_label", "selected")
CSV_COLUMNS = ("file_name", "imagenet_label", "num_workers", "n_selected_imagenet_label")


class MultiLabelVotes:
    """Importer for the CLASSIFY-task annotations.

    Parameters
    ----------
    trust_pickle : bool, default=False
        Load the published pickle; loading a pickle runs arbitrary code.
    """

    def __init__(self, *, trust_pickle: bool = False):
        self.trust_pickle = trust_pickle

    def read(self, path: str | os.PathLike) -> ImportedVotes:
        """Read the published table (pickle; with per-worker ``selected`` lists) or the
        per-image counts (CSV/Parquet) into an annotations table."""
        path, df = read_frame(path, self.trust_pickle)
        if len(df) == 0:
            raise InputError(f"{path}: the table has no rows")
        if "selected" in df.columns:  # the published per-worker schema
            df = df.reset_index() if "image" not in df.columns else df.reset_index(drop=True)
            require_columns(path, df, ("image", *PICKLE_COLUMNS))
            names, k = df["image"], _selections(path, df)
        else:
            require_columns(path, df, CSV_COLUMNS)
            df = df.reset_index(drop=True)
            names, k = df["file_name"], integer_column(path, df, "n_selected_imagenet_label")
        n = integer_column(path, df, "num_workers", low=1)
        label = integer_column(path, df, "imagenet_label")
        _fail(path, label > 999, "imagenet_label is not a class index 0..999")
        _fail(path, k > n, "more selections than workers")
        ann = annotation_table(np.full(len(df), "imagenet-val", object), file_stems(names).to_numpy(object),
                               n, k, label)
        check_unique_images(path, ann, "rows")
        notes = ("only the 'fu' images of Tsipras et al.'s 10,000 (those with several confidently selected labels): "
                 "a selected subset of val, not a random sample",
                 "k counts workers who listed the ImageNet label among the objects they selected")
        return ImportedVotes("imagenet-multilabel", path, ann, None, report_drops("imagenet-multilabel", []), notes)


def _selections(path, df: pd.DataFrame) -> np.ndarray:
    """Per image, how many workers' selections contain its ImageNet label;
    each image must hold one selection (a list of labels) per worker."""
    n_lists = df["selected"].map(lambda v: len(v) if isinstance(v, (list, tuple, np.ndarray)) else -1)
    _fail(path, (n_lists != pd.to_numeric(df["num_workers"], errors="coerce")).to_numpy(),
          "selected does not hold one list of labels per worker (num_workers)")
    per_worker = df["selected"].explode()                          # index: the worker's image
    image_of_worker = per_worker.index.to_numpy()
    labels = pd.Series(per_worker.to_numpy(), index=np.arange(len(per_worker))).explode()  # index: worker
    hit = pd.to_numeric(labels, errors="coerce").to_numpy(float) == \
        df["imagenet_label"].to_numpy()[image_of_worker[labels.index.to_numpy()]]
    workers_hit = np.unique(labels.index.to_numpy()[hit])          # a label listed twice counts once
    return np.bincount(image_of_worker[workers_hit], minlength=len(df)).astype(np.int64)
