"""Result files of one (model, dataset) evaluation, written in resumable chunks.

Per image (``DIR/<dataset>/<model>.parquet``): ``image_id``, ``label``,
``pred1``..``pred5`` (int16, -1 where the image could not be read),
``correct1``, ``correct5`` (int8 0/1), ``error`` (null, or the reason the
image could not be scored), ``targets`` (the accepted classes, for datasets
scored against label sets; see :mod:`evaluators.scoring`) and, with
``--save-logits``, ``logits`` (fixed-size list of 1000 float16, before any
class-subset restriction). Rows follow the source's sample order.
A JSON sidecar (``<model>.json``) holds the summary and provenance.

While running, finished chunks of consecutive samples go to a hidden work
folder ``DIR/<dataset>/.<model>.work/`` (each file written atomically) keyed by
a hash of everything that determines the outputs; a rerun with the same key
continues from the last finished chunk, a different key starts afresh. The
final files are assembled from the chunks, so a resumed run writes exactly
what an uninterrupted one would.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from evaluators.datasets.base import Sample
from evaluators.scoring import Scoring
from replication.io.atomic import atomic_path, write_json

TOPK = 5
CHUNK_GLOB = "chunk-*.parquet"


def result_paths(out_dir: str | Path, dataset: str, model_name: str) -> tuple[Path, Path]:
    """(parquet, json) result paths of one model on one dataset."""
    folder = Path(out_dir) / dataset
    return folder / f"{model_name}.parquet", folder / f"{model_name}.json"


def write_arrow(path: Path, table: pa.Table) -> None:
    """Write ``table`` to the Parquet file ``path`` atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def chunk_table(indices: np.ndarray, top5: np.ndarray, errors: list[str | None],
                logits: np.ndarray | None) -> pa.Table:
    """One chunk: sample ``index`` (int64), top-5 predictions (int16, -1 on
    error), ``error`` reasons and optional float16 logits (n, 1000)."""
    cols = {"index": pa.array(indices.astype(np.int64))}
    for k in range(TOPK):
        cols[f"pred{k + 1}"] = pa.array(top5[:, k].astype(np.int16))
    cols["error"] = pa.array(errors, type=pa.string())
    if logits is not None:
        cols["logits"] = pa.FixedSizeListArray.from_arrays(pa.array(logits.astype(np.float16).ravel()), logits.shape[1])
    return pa.table(cols)


class ChunkStore:
    """The hidden work folder of one run: ``key.json`` plus ``chunk-NNNNN.parquet``."""

    def __init__(self, work_dir: str | Path, run_key: str):
        self.work_dir = Path(work_dir)
        self.run_key = run_key
        key_file = self.work_dir / "key.json"
        if self.work_dir.exists():
            try:
                same = json.loads(key_file.read_text()).get("run_key") == run_key
            except (OSError, ValueError):
                same = False
            if not same:
                shutil.rmtree(self.work_dir)
        if not key_file.exists():
            write_json(key_file, {"run_key": run_key})

    def path(self, chunk: int) -> Path:
        """File of chunk number ``chunk`` (``chunk-00000.parquet``)."""
        return self.work_dir / f"chunk-{chunk:05d}.parquet"

    def done(self) -> set[int]:
        """Numbers of the chunks already written."""
        return {int(p.stem.split("-")[1]) for p in self.work_dir.glob(CHUNK_GLOB)}

    def write(self, chunk: int, table: pa.Table) -> None:
        """Write chunk ``chunk`` (a :func:`chunk_table`) atomically."""
        write_arrow(self.path(chunk), table)

    def read(self, chunks: list[int]) -> pa.Table:
        """The given chunks concatenated in the order listed."""
        return pa.concat_tables([pq.read_table(self.path(c)) for c in chunks])

    def n_errors(self) -> int:
        """Unreadable images recorded in the finished chunks."""
        total = 0
        for p in self.work_dir.glob(CHUNK_GLOB):
            col = pq.read_table(p, columns=["error"])["error"]
            total += len(col) - col.null_count
        return total

    def remove(self) -> None:
        """Delete the work folder and every chunk in it."""
        shutil.rmtree(self.work_dir, ignore_errors=True)


def assemble(samples: list[Sample], chunks: pa.Table) -> pa.Table:
    """The per-image result table from all chunks (any order) and the samples."""
    order = np.argsort(chunks["index"].to_numpy())
    chunks = chunks.take(pa.array(order))
    idx = chunks["index"].to_numpy()
    if not np.array_equal(idx, np.arange(len(samples))):
        raise RuntimeError("chunks do not cover every sample exactly once")
    labels = np.fromiter((s.label for s in samples), dtype=np.int16, count=len(samples))
    preds = np.stack([chunks[f"pred{k + 1}"].to_numpy() for k in range(TOPK)], axis=1)
    cols = {"image_id": pa.array([s.image_id for s in samples], type=pa.string()), "label": pa.array(labels)}
    for k in range(TOPK):
        cols[f"pred{k + 1}"] = pa.array(preds[:, k].astype(np.int16))
    targets = [s.targets for s in samples]
    cols["correct1"], cols["correct5"] = map(pa.array, Scoring.correct(preds, labels, targets))
    cols["error"] = chunks["error"]
    if any(targets):
        cols["targets"] = pa.array([list(t) for t in targets], type=pa.list_(pa.int16()))
    if "logits" in chunks.column_names:
        cols["logits"] = chunks["logits"]
    return pa.table(cols)


def summarize(table: pa.Table, samples: list[Sample], describe: Callable[[int], str]) -> dict:
    """Counts, top-1/top-5 over the scored images, and the error list."""
    err = table["error"].to_pylist()
    bad = np.array([e is not None for e in err], dtype=bool)
    scored = ~bad
    c1 = table["correct1"].to_numpy()[scored]
    c5 = table["correct5"].to_numpy()[scored]
    errors = [{"image_id": samples[i].image_id, "location": describe(i), "reason": err[i]} for i in np.flatnonzero(bad)]
    return {"n_images": len(samples), "n_scored": int(scored.sum()), "n_errors": int(bad.sum()),
            "top1": float(c1.mean()) if c1.size else None, "top5": float(c5.mean()) if c5.size else None,
            "errors": errors}
