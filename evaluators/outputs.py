"""Result files of one (model, dataset) evaluation, written in resumable chunks.

Per image (``DIR/<dataset>/<model>.parquet``): ``image_id``, ``label``,
``pred1``..``pred5`` (int16, -1 where the image could not be read),
``correct1``, ``correct5`` (int8 0/1), ``error`` (null, or the reason the
image could not be scored), ``targets`` (the accepted classes, for datasets
scored against label sets; see :mod:`evaluators.scoring`) and, with
``--save-logits``, ``logits`` (fixed-size list of 1000 float16, before any
class-subset restriction). Rows follow the source's sample order.
A JSON sidecar (``<model>.json``) holds the summary and provenance.
The sidecar's ``result_identity`` says what the result answers (model and
weights, preprocessing, dataset listing, precision, decode path, saved
logits), so that a rerun skips it only when it was asked the same
(:func:`finished_result`). Only ``<name>.parquet`` files with an output name
(never hidden: work folders and temporaries start with ``.``) beside their
``<name>.json`` are results (:func:`result_files`).

While running, finished chunks of consecutive samples go to a hidden work
folder ``DIR/<dataset>/.<model>.work/`` (each file written atomically) keyed by
a hash of everything that determines the outputs; a rerun with the same key
continues from the last finished chunk, a different key starts afresh. The
final files are assembled from the chunks, so a resumed run writes exactly
what an uninterrupted one would.
"""
from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from evaluators.datasets.base import Sample
from evaluators.scoring import Scoring
from replication.errors import InputError
from replication.io.atomic import atomic_path, remove_stale_temporaries, write_json

TOPK = 5
CHUNK_NAME = re.compile(r"^chunk-(\d{5})\.parquet$")
RESULT_NAME = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]*\.parquet$")
#: temporaries of results written before temporary names ended in ``.tmp``: ``.<name>.parquet.<8 random>.parquet``
_LEGACY_TEMP = r"^\.{}\.[a-z0-9_]{{8}}\.(parquet|tmp)$"


def result_paths(out_dir: str | Path, dataset: str, model_name: str) -> tuple[Path, Path]:
    """(parquet, json) result paths of one model on one dataset."""
    folder = Path(out_dir) / dataset
    return folder / f"{model_name}.parquet", folder / f"{model_name}.json"


def result_files(folder: str | Path) -> list[Path]:
    """The ``<name>.parquet`` files of ``folder`` that may be results, sorted
    by name: regular files named like an output name. Hidden entries (work
    folders, temporaries of atomic writes) and other names never are."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if RESULT_NAME.match(p.name) and p.is_file())


def remove_leftovers(*targets: Path) -> None:
    """Remove the temporaries that writers of ``targets`` killed before their
    final rename left beside them: those of processes that no longer run
    (:func:`~replication.io.atomic.remove_stale_temporaries`), and any of the
    naming used before temporaries ended in ``.tmp``."""
    for target in targets:
        remove_stale_temporaries(target)
        legacy = re.compile(_LEGACY_TEMP.format(re.escape(target.name)))
        if target.parent.is_dir():
            for p in target.parent.iterdir():
                if legacy.match(p.name) and p.is_file():
                    p.unlink(missing_ok=True)


def _differences(recorded: dict | None, wanted: dict) -> list[str]:
    """What differs between a recorded result identity and the wanted one (only ``wanted``'s keys)."""
    if not isinstance(recorded, dict):
        return ["its settings are not recorded (made by an older version)"]
    out = []
    for key, new in wanted.items():
        old = recorded.get(key)
        if key == "preprocess" and isinstance(old, dict):
            out += [f"{k} {old.get(k)} -> {v}" for k, v in new.items() if old.get(k) != v]
        elif key == "listing_sha256" and old != new:
            out.append("the dataset listing (image ids, labels or files) changed")
        elif old != new:
            out.append(f"{key} {old} -> {new}")
    return out


def finished_result(out_dir: str | Path, dataset: str, model_name: str, identity: dict) -> dict | None:
    """The sidecar of the finished result of ``model_name`` on ``dataset``
    (its parquet and a readable JSON sidecar exist), None when there is none.
    InputError when it was made for another ``identity`` (only the keys given
    are compared): a rerun must not report results of other settings as its
    own, nor silently replace them."""
    parquet_path, json_path = result_paths(out_dir, dataset, model_name)
    if not parquet_path.is_file() or not json_path.is_file():
        return None
    try:
        sidecar = json.loads(json_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(sidecar, dict):
        return None
    diffs = _differences(sidecar.get("result_identity"), identity)
    if diffs:
        raise InputError(f"{json_path}: a finished result for other settings ({'; '.join(diffs)}); pass --force "
                         "to recompute and replace it, or choose another --out")
    return sidecar


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

    def _chunks(self) -> dict[int, Path]:
        """``{chunk number: file}`` of the chunks written (temporaries and other names ignored)."""
        found = ((CHUNK_NAME.match(p.name), p) for p in self.work_dir.iterdir()) if self.work_dir.is_dir() else ()
        return {int(m[1]): p for m, p in found if m}

    def done(self) -> set[int]:
        """Numbers of the chunks already written."""
        return set(self._chunks())

    def write(self, chunk: int, table: pa.Table) -> None:
        """Write chunk ``chunk`` (a :func:`chunk_table`) atomically."""
        write_arrow(self.path(chunk), table)

    def read(self, chunks: list[int]) -> pa.Table:
        """The given chunks concatenated in the order listed."""
        return pa.concat_tables([pq.read_table(self.path(c)) for c in chunks])

    def n_errors(self) -> int:
        """Unreadable images recorded in the finished chunks."""
        total = 0
        for p in self._chunks().values():
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
