"""Engstrom et al. (2020)'s re-annotation of ImageNet val and ImageNet-v2
(MadryLab/dataset-replication-analysis): one pandas DataFrame, saved with
``torch.save``, with one row per vote::

    dataset    'v1' (ImageNet val) or 'v2' (ImageNet-v2 MatchedFrequency)
    path       the image key (their code groups votes by it); ``url`` and ``id`` may be present too
    selected   the annotator selected the image for its class (bool or 0/1)
    wnid       the image's class (optional)
    correct_*  per model, whether its top-1 prediction is right: constant over an image's rows

Images are keyed by ``path`` (else ``url``, else ``id``); ``image_id`` is the
key's file name without extension. n and k are the number of votes and of
selections per image (n may differ between images).
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from replication.errors import InputError
from replication.io.tables import _fail, require_columns
from replication.votes._base import (Dropped, ImportedVotes, annotation_table, binary_column, check_constant,
                                     check_unique_images, file_stems, first_rows, read_frame, report_drops,
                                     wnid_class_ids)

#: their dataset labels -> dataset ids
DATASETS = {"v1": "imagenet-val", "v2": "imagenetv2-matched-frequency"}
#: columns that identify an image, in order of preference
KEYS = ("path", "url", "id")
CORRECT_PREFIX = "correct_"


class MadryLabVotes:
    """Importer for Engstrom et al.'s vote DataFrames.

    Parameters
    ----------
    trust_pickle : bool, default=False
        Load pickled (``torch.save``) files; loading a pickle runs arbitrary code.
    exclude_models : sequence of str, default=()
        Leave out models whose name contains any of these strings (their
        analysis leaves out models trained on more data: ``swsl_``, ``ssl_``, ``ig_``).
    """

    def __init__(self, *, trust_pickle: bool = False, exclude_models: tuple[str, ...] = ()):
        self.trust_pickle = trust_pickle
        self.exclude_models = exclude_models

    def read(self, path: str | os.PathLike) -> ImportedVotes:
        """Read one DataFrame (pickle, Parquet or CSV) into contract tables."""
        path, df = read_frame(path, self.trust_pickle)
        key = next((c for c in KEYS if c in df.columns), None)
        if key is None:
            raise InputError(f"{path}: no image key column (expected one of {', '.join(KEYS)})")
        require_columns(path, df, ("dataset", "selected"))
        if len(df) == 0:
            raise InputError(f"{path}: the table has no rows")
        df = df.reset_index(drop=True)
        keys = df[key]
        _fail(path, keys.isna().to_numpy() | (keys.astype(str).str.strip() == "").to_numpy(), f"{key} is empty")
        labels = df["dataset"].astype(str).str.strip()
        bad = ~labels.isin(list(DATASETS)).to_numpy()
        if bad.any():
            _fail(path, bad, f"dataset is {labels[bad].iloc[0]!r}, not 'v1' (ImageNet val) or 'v2' "
                             "(ImageNet-v2 MatchedFrequency)")
        selected = binary_column(path, df, "selected")

        codes, uniques = pd.factorize(keys.astype(str), sort=False)
        first = first_rows(codes, len(uniques))
        key_of_row = np.asarray(uniques)[codes]
        check_constant(path, labels.to_numpy(object), codes, first, "dataset", key_of_row)
        for other in KEYS:
            if other != key and other in df.columns:
                check_constant(path, df[other].astype(str).to_numpy(object), codes, first, other, key_of_row)

        class_id = None
        if "wnid" in df.columns:
            _fail(path, df["wnid"].isna().to_numpy(), "wnid is empty")
            check_constant(path, df["wnid"].astype(str).to_numpy(object), codes, first, "wnid", key_of_row)
            class_id = wnid_class_ids(path, df["wnid"])[first]

        dataset = pd.Series(labels.to_numpy(object)[first]).map(DATASETS).to_numpy(object)
        image_id = file_stems(pd.Series(uniques)).to_numpy(object)
        ann = annotation_table(dataset, image_id, np.bincount(codes), np.bincount(codes, weights=selected), class_id)
        check_unique_images(path, ann, "image keys")

        dropped = []
        models = [c for c in df.columns if str(c).startswith(CORRECT_PREFIX)]
        excluded = [m for m in models if any(p in m[len(CORRECT_PREFIX):] for p in self.exclude_models)]
        if excluded:
            dropped.append(Dropped(len(excluded), "model(s)",
                                   f"names contain {', '.join(self.exclude_models)} "
                                   f"(--exclude-models): {', '.join(m[len(CORRECT_PREFIX):] for m in excluded)}"))
        kept = [m for m in models if m not in excluded]
        correctness = None
        if kept:
            columns = {}
            for m in kept:
                values = binary_column(path, df, m)
                check_constant(path, values, codes, first, m, key_of_row)
                columns[m[len(CORRECT_PREFIX):]] = values[first]
            meta = {"dataset": dataset, "image_id": image_id}
            if class_id is not None:
                meta["label"] = class_id
            correctness = pd.concat([pd.DataFrame(meta), pd.DataFrame(columns)], axis=1)
            correctness = correctness.sort_values(["dataset", "image_id"], kind="stable").reset_index(drop=True)
        notes = [f"{len(df):,} vote rows keyed by {key!r}; 'v1' -> {DATASETS['v1']}, 'v2' -> {DATASETS['v2']}"]
        if class_id is None:
            notes.append("no wnid column: class ids unknown (replication bias then resamples without class strata)")
        return ImportedVotes("madrylab", path, ann, correctness, report_drops("madrylab", dropped), tuple(notes))
