"""Northcutt et al. (2021)'s MTurk check of ImageNet val label errors
(cleanlab/label-errors, ``mturk/imagenet_mturk.json``): a JSON list with one
object per image::

    {"id": 293, "url": ".../val/n01440764/ILSVRC2012_val_00000293.JPEG",
     "given_original_label": 0, "our_guessed_label": 48, ...,
     "mturk": {"given": 5, "guessed": 0, "neither": 0, "both": 0}}

Five workers each chose whether the image shows the original label, the
label confident learning guessed, both, or neither. n = the four counts'
sum and k = ``given + both`` (workers who accepted the original label).
The image id comes from the url's file name (``id`` is not an index into
their index file, whatever their README says).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from replication.errors import InputError
from replication.io.jsonfile import read_json
from replication.io.tables import _fail
from replication.votes._base import (Dropped, ImportedVotes, annotation_table, check_unique_images, file_stems,
                                     integer_column, report_drops)

ANSWERS = ("given", "guessed", "neither", "both")


class CleanlabVotes:
    """Importer for ``imagenet_mturk.json`` (no options)."""

    def read(self, path: str | os.PathLike) -> ImportedVotes:
        """Read the JSON list into an annotations table (dataset ``imagenet-val``)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such file (expected cleanlab's imagenet_mturk.json)")
        records = read_json(path, list, "a non-empty JSON list of objects, one per image")
        if not records or not all(isinstance(r, dict) for r in records):
            raise InputError(f"{path}: expected a non-empty JSON list of objects, one per image")
        df = pd.DataFrame(records)
        missing = [c for c in ("url", "given_original_label", "mturk") if c not in df.columns]
        if missing:
            raise InputError(f"{path}: objects lack {', '.join(missing)}")
        bad = ~df["mturk"].map(lambda m: isinstance(m, dict) and all(a in m for a in ANSWERS)).to_numpy()
        _fail(path, bad, f"mturk is not an object with counts {', '.join(ANSWERS)}")
        votes = pd.DataFrame(df["mturk"].tolist())
        counts = np.stack([integer_column(path, votes, a) for a in ANSWERS], axis=1)
        label = integer_column(path, df, "given_original_label")
        _fail(path, label > 999, "given_original_label is not a class index 0..999")
        _fail(path, ~df["url"].map(lambda u: isinstance(u, str) and u.strip() != "").to_numpy(), "url is empty")
        n, k = counts.sum(axis=1), counts[:, 0] + counts[:, 3]
        answered = n > 0
        dropped = [Dropped(int((~answered).sum()), "images", "no worker answered")] if not answered.all() else []
        ann = annotation_table(np.full(int(answered.sum()), "imagenet-val", object),
                               file_stems(df["url"]).to_numpy(object)[answered], n[answered], k[answered],
                               label[answered])
        check_unique_images(path, ann, "entries")
        notes = ("only images that confident learning flagged as possible label errors: a strongly selected subset "
                 "of val, not a random sample",
                 "k counts workers who accepted the original label (answers 'given' and 'both')")
        return ImportedVotes("cleanlab", path, ann, None, report_drops("cleanlab", dropped), notes)
