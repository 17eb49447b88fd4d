"""Drawing the replication set from annotated candidates, by Recht et al.'s
rules on the observed selection frequency k/n (:mod:`replication.sampling`):
MatchedFrequency (per class, the reference images' histogram over the bins
0.2/0.4/0.6/0.8), Threshold (k/n >= 0.7) or TopImages.

The result is an annotations table that ``replication bias`` reads: the
reference rows as they are and the drawn candidates under the replication
dataset id. Optionally the drawn images are laid out as an ImageNet-v2
folder (class folders ``0``..``999`` of symbolic links), so that
``replication evaluate --dataset <replication id> --root DIR --allow-partial``
scores exactly these images.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from replication.errors import InputError
from replication.io.tables import name_list, validate_annotations
from replication.sampling import matched_frequency, threshold, top_images

RULES = ("matched-frequency", "threshold", "top-images")
#: the dataset id each rule's set goes under by default
REPLICATION_IDS = {"matched-frequency": "imagenetv2-matched-frequency", "threshold": "imagenetv2-threshold0.7",
                   "top-images": "imagenetv2-top-images"}


def select_replication(annotations: pd.DataFrame, *, reference: str, candidates: str, replication: str | None = None,
                       rule: str = "matched-frequency", per_class: int = 10, rng: np.random.Generator,
                       min_annotators: int | None = None,
                       path: str | os.PathLike = "<annotations>") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw the replication set (see module doc).

    Parameters
    ----------
    annotations : annotations table with ``class_id``, holding both the
        ``reference`` and the ``candidates`` rows
    reference, candidates : dataset ids in ``annotations``
    replication : dataset id of the drawn set (default by rule, e.g. imagenetv2-matched-frequency)
    rule : one of :data:`RULES`
    per_class : images per class in the replication set
    rng : numpy Generator (MatchedFrequency and Threshold draw at random)
    min_annotators : images with fewer accepted votes are not eligible (None: all are)

    Returns
    -------
    table : DataFrame -- the reference rows, then the drawn candidates relabelled ``replication``
    drawn : DataFrame -- the drawn candidates' rows as they were (``dataset`` = ``candidates``)
    """
    if rule not in RULES:
        raise InputError(f"--rule must be one of {', '.join(RULES)}, got {rule!r}")
    if per_class < 1:
        raise InputError(f"--per-class must be >= 1, got {per_class}")
    replication = replication or REPLICATION_IDS[rule]
    ann = validate_annotations(annotations, path)
    if "class_id" not in ann:
        raise InputError(f"{path}: needs a class_id column to draw per class")
    present = sorted(ann["dataset"].unique())
    for flag, ds in (("--reference", reference), ("--candidates", candidates)):
        if ds not in present:
            raise InputError(f"{flag}: no rows of dataset {ds!r} in {path} (datasets: {name_list(present)})")
    if replication in present:
        raise InputError(f"--replication {replication!r} is already a dataset of {path}; choose another id")
    ref = ann[ann["dataset"] == reference].reset_index(drop=True)
    cand = ann[ann["dataset"] == candidates].reset_index(drop=True)
    freq = lambda d: (d["n_selected"] / d["n_annotators"]).to_numpy()  # noqa: E731
    n = lambda d: d["n_annotators"].to_numpy()  # noqa: E731
    if rule == "matched-frequency":
        idx = matched_frequency(freq(ref), ref["class_id"].to_numpy(), freq(cand), cand["class_id"].to_numpy(),
                                per_class, rng, ref_annotators=n(ref), cand_annotators=n(cand),
                                min_annotators=min_annotators)
    elif rule == "threshold":
        idx = threshold(freq(cand), cand["class_id"].to_numpy(), per_class, rng, cand_annotators=n(cand),
                        min_annotators=min_annotators)
    else:
        idx = top_images(freq(cand), cand["class_id"].to_numpy(), per_class, cand_annotators=n(cand),
                         cand_ids=cand["image_id"].to_numpy(), min_annotators=min_annotators)
    drawn = cand.iloc[idx].reset_index(drop=True)
    table = pd.concat([ref, drawn.assign(dataset=replication)], ignore_index=True)
    return table, drawn


def link_folder(drawn: pd.DataFrame, images: pd.DataFrame, out_dir: str | os.PathLike) -> int:
    """Lay the drawn images out as ``out_dir/<class_id>/<image_id><ext>``
    symbolic links to their files (``images``: the table given to ``plan``,
    validated). The folder is built beside and renamed into place."""
    import shutil
    import tempfile

    paths = drawn.merge(images[["dataset", "image_id", "path"]], on=["dataset", "image_id"], how="left")
    missing = paths["path"].isna().to_numpy()
    if missing.any():
        raise InputError(f"--images: no path for {missing.sum()} drawn image(s) "
                         f"(first: {name_list(paths.loc[missing, 'image_id'], 3)})")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"--images-out {out}: exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for cls, image_id, path in paths[["class_id", "image_id", "path"]].itertuples(index=False):
            folder = tmp / str(int(cls))
            folder.mkdir(exist_ok=True)
            os.symlink(path, folder / f"{image_id}{os.path.splitext(path)[1]}")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(paths)
