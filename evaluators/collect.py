"""Correctness matrix from ``evaluate``'s outputs: ``dataset, image_id, label,
<model>...`` (top-1 correct, int8 0/1), one row per image."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from evaluators.outputs import result_files
from replication.errors import InputError
from replication.io.tables import DATASET_IDS, validate_correctness

RESULT_COLUMNS = ("image_id", "label", "correct1", "error")


def read_result(path: Path) -> pd.DataFrame:
    """``image_id, label, correct1, error`` of one ``<model>.parquet`` result;
    InputError for a file that is not a finished evaluate result (no
    ``<model>.json`` beside it, not Parquet, columns missing)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.with_suffix(".json").is_file():
        raise InputError(f"{path}: no {path.stem}.json beside it, so not a finished evaluate result (an interrupted "
                         "run? rerun evaluate, or move the file out of this folder)")
    try:
        names = pq.read_schema(path).names
        missing = [c for c in RESULT_COLUMNS if c not in names]
        if missing:
            raise InputError(f"{path}: not an evaluate result (no column {', '.join(missing)})")
        return pq.read_table(path, columns=list(RESULT_COLUMNS)).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None


def collect_matrix(out_dir: str | Path, *, drop_errors: bool = False) -> tuple[pd.DataFrame, int]:
    """Build the matrix from ``out_dir/<dataset>/<model>.parquet``.

    Every model must cover the same images of a dataset with the same labels.
    Images that some model could not score make the call fail, or are dropped
    with ``drop_errors`` (their count is returned). Only results are read
    (:func:`~evaluators.outputs.result_files`): hidden work folders and
    temporaries are not.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise InputError(f"{out_dir}: not a folder (give evaluate's --out folder)")
    frames, n_dropped = [], 0
    datasets = [d for d in DATASET_IDS if (out_dir / d).is_dir()]
    if not datasets:
        raise InputError(f"{out_dir}: no evaluate outputs (expected folders named after dataset ids: {', '.join(DATASET_IDS)})")
    for ds in datasets:
        files = result_files(out_dir / ds)
        if not files:
            continue
        base, cols, bad = None, {}, None
        for f in files:
            t = read_result(f)
            if base is None:
                base = t[["image_id", "label"]]
                bad = np.zeros(len(t), dtype=bool)
            elif not (len(t) == len(base) and (t["image_id"].to_numpy() == base["image_id"].to_numpy()).all()
                      and (t["label"].to_numpy() == base["label"].to_numpy()).all()):
                raise InputError(f"{f}: images or labels differ from {files[0].name} for {ds}; evaluate all models on the same copy")
            cols[f.stem] = t["correct1"].to_numpy()
            bad |= t["error"].notna().to_numpy()
        if bad.any() and not drop_errors:
            first = base["image_id"].to_numpy()[bad][:3]
            raise InputError(f"{out_dir / ds}: {int(bad.sum())} image(s) could not be scored by some model "
                             f"(e.g. {', '.join(first)}); pass --drop-errors to leave them out")
        n_dropped += int(bad.sum())
        frame = pd.DataFrame({"dataset": ds, "image_id": base["image_id"], "label": base["label"], **cols})[~bad]
        frames.append(frame)
    if not frames:
        raise InputError(f"{out_dir}: no <model>.parquet files found")
    matrix = pd.concat(frames, ignore_index=True)
    missing = matrix.columns[matrix.isna().any()].tolist()
    if missing:
        raise InputError(f"{out_dir}: model(s) {', '.join(missing[:5])} lack results on some dataset; "
                         "evaluate every model on every dataset")
    return validate_correctness(matrix, out_dir), n_dropped


def accuracy_counts(out_dir: str | Path) -> pd.DataFrame:
    """Top-1 of every (model, dataset) in ``out_dir/<dataset>/<model>.parquet``
    over its scored images: columns ``model, dataset, n`` (images scored),
    ``correct`` and ``accuracy`` (percent). Models need not share datasets."""
    out_dir = Path(out_dir)
    rows = []
    for ds in DATASET_IDS:
        for f in sorted((out_dir / ds).glob("*.parquet")):
            t = pd.read_parquet(f, columns=["correct1", "error"])
            scored = t["error"].isna().to_numpy()
            rows.append((f.stem, ds, int(scored.sum()), int(t["correct1"].to_numpy()[scored].sum())))
    if not rows:
        raise InputError(f"{out_dir}: no evaluate outputs (expected <dataset>/<model>.parquet with dataset ids "
                         f"{', '.join(DATASET_IDS)})")
    df = pd.DataFrame(rows, columns=["model", "dataset", "n", "correct"])
    empty = df["n"] == 0
    if empty.any():
        raise InputError(f"{out_dir}: {df.loc[empty, 'dataset'].iloc[0]}/{df.loc[empty, 'model'].iloc[0]}.parquet "
                         "has no scored image")
    return df.assign(accuracy=100.0 * df["correct"] / df["n"])
