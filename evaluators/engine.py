"""Evaluate one model on one dataset: image source -> uint8 batches -> model
runner -> result chunks -> outputs.

:func:`evaluate_source` wires the parts of :mod:`evaluators.runner` (the
:class:`~evaluators.runner.CropDataset`, or a decoded-crop cache, or GPU
decoding; the :class:`~evaluators.runner.ModelRunner` or the pipelined GPU
runner; the chunk loop) with :class:`~evaluators.outputs.ChunkStore`, which
keeps the finished chunks for resuming, under typed :class:`EngineOptions`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import platform
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from evaluators.datasets.base import ImageSource
from evaluators.gpu import EncodedFiles, PipelinedRunner
from evaluators.outputs import (TOPK, ChunkStore, assemble, chunk_table, finished_result, remove_leftovers,
                                result_paths, summarize, write_arrow)
from evaluators.preprocess import PreprocessCfg
from evaluators.registry import LoadedModel
from evaluators.runner import (PRECISIONS, Batch, CropDataset, ModelRunner, chunk_loader, chunk_ranges,
                               default_batch_size, default_workers, iter_chunks, resolve_device, reused_heap,
                               shard_chunks)
from evaluators.scoring import Scoring
from replication.errors import InputError
from replication.io.atomic import write_json

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 2048


@dataclass(frozen=True)
class EngineOptions:
    """How :func:`evaluate_source` runs (the ``evaluate`` command's flags).

    Parameters
    ----------
    device : str, default="auto"
        ``"auto"``, ``"cpu"`` or ``"cuda[:i]"``.
    precision : str, default="fp32"
        ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast).
    batch_size : int, default=None
        Images per forward pass (None: :func:`~evaluators.runner.default_batch_size`
        for the device: 64 on a GPU, 8 on the CPU).
    workers : int, default=None
        DataLoader workers (None: :func:`~evaluators.runner.default_workers`
        for the device).
    max_errors : int, default=0
        Unreadable images tolerated; more raise InputError listing them.
    save_logits : bool, default=False
        Keep float16 logits, shape (n_images, 1000), in the Parquet file.
    force : bool, default=False
        Recompute even when finished outputs exist.
    chunk_size : int, default=DEFAULT_CHUNK
        Images per resumable chunk.
    channels_last : bool, default=True
        Run the model in channels_last memory format.
    compile : bool, default=False
        ``torch.compile`` the model (uses the pipelined runner).
    gpu_decode : bool, default=False
        Decode JPEGs on the GPU (CUDA only).
    progress : bool, default=True
        Show a tqdm bar on stderr (when it is a TTY).
    shard : tuple of int, default=(0, 1)
        ``(rank, world)`` under torchrun (see :func:`evaluate_source`).
    barrier : callable, default=None
        Synchronises the ranks; required when ``world > 1``.
    """

    device: str = "auto"
    precision: str = "fp32"
    batch_size: int | None = None
    workers: int | None = None
    max_errors: int = 0
    save_logits: bool = False
    force: bool = False
    chunk_size: int = DEFAULT_CHUNK
    channels_last: bool = True
    compile: bool = False
    gpu_decode: bool = False
    progress: bool = True
    shard: tuple[int, int] = (0, 1)
    barrier: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision {self.precision!r}: choose {', '.join(PRECISIONS)}")
        if (self.batch_size is not None and self.batch_size < 1) or self.chunk_size < 1:
            raise InputError("--batch-size and --chunk-size must be >= 1")
        if self.max_errors < 0:
            raise InputError("--max-errors must be >= 0")
        if self.workers is not None and self.workers < 0:
            raise InputError("--workers must be >= 0")
        if self.shard[1] > 1 and self.barrier is None:
            raise ValueError("a shard of several ranks needs a barrier")


def device_description(device: torch.device) -> str:
    """``"cuda:<GPU name>"`` or ``"cpu:<processor> (<n> threads)"`` for the sidecar."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def result_identity(model_id: str, preprocess: PreprocessCfg, listing_sha256: str, opts: EngineOptions,
                    weights: str | None = None) -> dict:
    """What a finished result answers, recorded in its sidecar and compared
    before it is skipped (:func:`~evaluators.outputs.finished_result`): the
    model id, its ``weights`` (file SHA-256, else their kind; left out when
    None, as before the model is built), the preprocessing, the dataset
    listing's SHA-256, the precision, the decode path and whether logits are
    saved. How it ran (device, batch size, workers, chunk size, channels_last,
    compile) is left out: a rerun that differs only there skips the result."""
    ident = {"model_id": model_id, "preprocess": preprocess.to_dict(), "listing_sha256": listing_sha256,
             "precision": opts.precision, "gpu_decode": opts.gpu_decode, "save_logits": opts.save_logits}
    return ident if weights is None else {**ident, "weights": weights}


def run_key(lm: LoadedModel, source: ImageSource, dataset: str, *, device: torch.device, precision: str,
            batch_size: int, chunk_size: int, save_logits: bool, channels_last: bool, **variant: object) -> str:
    """Hash of everything that determines the per-image outputs."""
    blob = json.dumps({"model": lm.name, "weights": lm.provenance.get("weights_sha256"),
                       "weights_kind": lm.provenance.get("weights"), "preprocess": lm.preprocess.hash(),
                       "dataset": dataset, "root": str(source.root.resolve()), "listing": source.listing_sha256(),
                       "device": device.type, "precision": precision, "batch_size": batch_size,
                       "chunk_size": chunk_size, "save_logits": save_logits, "channels_last": channels_last,
                       **{k: v for k, v in variant.items() if v}},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def versions() -> dict:
    """Versions of python, torch, torchvision, numpy and pillow (str each;
    torchvision's read from its metadata: importing it costs seconds)."""
    from importlib.metadata import version

    import PIL

    return {"python": sys.version.split()[0], "torch": torch.__version__, "torchvision": version("torchvision"),
            "numpy": np.__version__, "pillow": PIL.__version__}


def _error_message(errors: list[tuple[str, str]], max_errors: int) -> str:
    shown = "; ".join(f"{loc} ({why})" for loc, why in errors[:3])
    more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
    return (f"{len(errors)} unreadable image(s), more than --max-errors {max_errors}: {shown}{more}. "
            f"Fix or remove them, or rerun with --max-errors {len(errors)} to score the rest (finished chunks are kept)")


def _batch_rows(batch: Batch, logits: torch.Tensor | None, save_logits: bool, scoring: Scoring) -> tuple:
    """(sample indices, top-5 int16 (-1 on error; within the scoring's class
    subset), error reasons, float16 logits or None) of one batch, readable images first."""
    n_ok = len(batch.indices)
    idx = np.concatenate([batch.indices.numpy(), np.array([i for i, _ in batch.errors], dtype=np.int64)])
    top5 = np.full((len(idx), TOPK), -1, dtype=np.int16)
    logits_np = np.zeros((len(idx), 1000), dtype=np.float16) if save_logits else None
    if n_ok:
        top5[:n_ok] = scoring.top_k(logits, TOPK)
        if save_logits:
            logits_np[:n_ok] = logits.numpy()
    return idx, top5, [None] * n_ok + [e for _, e in batch.errors], logits_np


def _chunk_result(parts: list[tuple]) -> pa.Table:
    """The :func:`~evaluators.outputs.chunk_table` of a chunk's batch rows, in sample order."""
    logits = [p[3] for p in parts]
    table = chunk_table(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                        [r for p in parts for r in p[2]], None if logits[0] is None else np.concatenate(logits))
    return table.take(pa.array(np.argsort(table["index"].to_numpy())))


def _run_chunks(runner: ModelRunner, source: ImageSource, crops: torch.utils.data.Dataset, store: ChunkStore,
                chunks: list[range], pending: list[range], opts: EngineOptions, *, workers: int,
                n_prev_errors: int, bar, scoring: Scoring) -> None:
    """Score the ``pending`` chunks, writing each to ``store`` when finished."""
    if not pending:
        return
    chunk_id = {c[0]: i for i, c in enumerate(chunks)}
    loader = chunk_loader(crops, pending, batch_size=opts.batch_size, workers=workers,
                          pin_memory=runner.device.type == "cuda")
    errors: list[tuple[str, str]] = []
    parts: list[tuple] = []
    for (batch, logits), chunk, last in iter_chunks(runner.map(loader), pending, size=lambda p: p[0].size):
        errors += [(source.describe(i), e) for i, e in batch.errors]
        if n_prev_errors + len(errors) > opts.max_errors:
            prefix = f"{n_prev_errors} earlier + " if n_prev_errors else ""
            raise InputError(prefix + _error_message(errors, opts.max_errors))
        parts.append(_batch_rows(batch, logits, opts.save_logits, scoring))
        bar.update(batch.size)
        if last:
            store.write(chunk_id[chunk[0]], _chunk_result(parts))
            parts = []


def evaluate_source(lm: LoadedModel, source: ImageSource, dataset: str, out_dir: str | Path,
                    options: EngineOptions | None = None, *, manifest_check: dict | None = None,
                    crops: torch.utils.data.Dataset | None = None, **overrides: object) -> dict:
    """Evaluate one model on one dataset; write ``<model>.parquet`` and
    ``<model>.json`` under ``out_dir/<dataset>/`` and return the sidecar dict.
    A finished result is returned as is unless ``force``, when it was made
    for the same :func:`result_identity` (else InputError, before any work).
    Every image unreadable is an error whatever ``max_errors``. ``crops`` replaces
    the decoding :class:`~evaluators.runner.CropDataset` (e.g. a
    :class:`~evaluators.cache.CachedCrops` for ``lm.preprocess``'s crop key).
    On CUDA, or with ``compile``, the :class:`~evaluators.gpu.PipelinedRunner`
    runs the model (one batch in flight, OOM back-off, ``torch.compile``);
    ``gpu_decode`` decodes JPEGs on the GPU (:class:`~evaluators.gpu.EncodedFiles`).

    ``shard=(rank, world)`` with a ``barrier`` callable (torchrun, see
    :mod:`evaluators.distributed`): each rank scores a contiguous block of
    chunks (:func:`~evaluators.runner.shard_chunks`) into the shared work
    folder; after the barrier rank 0 assembles the outputs in sample order
    and the other ranks return their own counts without writing.

    Parameters
    ----------
    lm : LoadedModel
        Model, its resolved :class:`PreprocessCfg` and provenance.
    source : ImageSource
        Dataset reader; outputs follow ``source.samples`` order.
    dataset : str
        Dataset id (output folder name and sidecar field).
    out_dir : str or Path
        Results root.
    options : EngineOptions, default=None
        How to run (None: the defaults).
    manifest_check : dict, default=None
        Manifest check result copied into the sidecar.
    crops : torch Dataset, default=None
        Replacement for :class:`~evaluators.runner.CropDataset`.
    **overrides
        Fields of :class:`EngineOptions` that replace those of ``options``.

    Returns
    -------
    dict
        The ``<model>.json`` sidecar (``n_images``, ``n_scored``, ``n_errors``,
        ``top1``/``top5`` as fractions in [0, 1], timings in seconds, ...),
        with ``"skipped": True`` when existing results were returned; on ranks
        other than 0, only that rank's counts and ``eval_time_s``.
    """
    from tqdm import tqdm

    opts = replace(options or EngineOptions(), **overrides)
    t_start = time.perf_counter()
    parquet_path, json_path = result_paths(out_dir, dataset, lm.name)
    rank, world = opts.shard
    if not rank:
        remove_leftovers(parquet_path, json_path)
    identity = result_identity(lm.provenance.get("model_id", lm.name), lm.preprocess, source.listing_sha256(), opts,
                               weights=lm.provenance.get("weights_sha256") or lm.provenance.get("weights"))
    finished = None if opts.force else finished_result(out_dir, dataset, lm.name, identity)
    if finished is not None:
        log.info("%s on %s: results exist (%s); --force to redo", lm.name, dataset, json_path)
        return {**finished, "skipped": True}
    if len(source) == 0:
        raise InputError(f"{source.root}: no images found for {dataset}")
    scoring = Scoring.of(source)
    scoring.check_model(lm.name, lm.classes, dataset)
    dev = resolve_device(opts.device)
    if opts.gpu_decode and dev.type != "cuda":
        raise InputError("--gpu-decode needs a CUDA device")
    opts = replace(opts, batch_size=opts.batch_size or default_batch_size(dev))
    workers = default_workers(dev) if opts.workers is None else opts.workers
    key = run_key(lm, source, dataset, device=dev, precision=opts.precision, batch_size=opts.batch_size,
                  chunk_size=opts.chunk_size, save_logits=opts.save_logits, channels_last=opts.channels_last,
                  compile=opts.compile, gpu_decode=opts.gpu_decode, classifier_fp32=opts.precision != "fp32",
                  class_subset=scoring.classes)
    if world > 1 and rank:
        opts.barrier()  # rank 0 has set up the work folder
    store = ChunkStore(parquet_path.parent / f".{lm.name}.work", key)
    if world > 1 and not rank:
        opts.barrier()
    chunks = chunk_ranges(len(source), opts.chunk_size)
    done = store.done()
    mine = shard_chunks(len(chunks), rank, world)
    pending = [c for i, c in enumerate(chunks) if i not in done and i in mine]
    warmup_s = 0.0
    if dev.type == "cuda" or opts.compile:
        runner = PipelinedRunner(lm.module, lm.preprocess, dev, opts.precision, opts.channels_last,
                                 compile=opts.compile, batch_size=opts.batch_size)
        warmup_s = runner.warmup(opts.batch_size) if pending else 0.0
        if opts.gpu_decode and crops is None:
            crops = EncodedFiles(source, lm.preprocess)
    else:
        runner = ModelRunner(lm.module, lm.preprocess, dev, opts.precision, opts.channels_last)
    n_prev_errors = store.n_errors()
    n_new = sum(len(c) for c in pending)
    bar = tqdm(total=len(source), initial=len(source) - n_new, unit="img", file=sys.stderr,
               disable=None if opts.progress else True, desc=f"{lm.name} on {dataset}")
    crops = CropDataset(source, lm.preprocess) if crops is None else crops
    t_eval = time.perf_counter()
    try:
        with reused_heap() if dev.type == "cpu" else nullcontext():
            _run_chunks(runner, source, crops, store, chunks, pending, opts, workers=workers,
                        n_prev_errors=n_prev_errors, bar=bar, scoring=scoring)
    finally:
        bar.close()
    eval_s = time.perf_counter() - t_eval
    if world > 1:
        opts.barrier()  # every rank's chunks are written
        if rank:
            return {"model": lm.name, "dataset": dataset, "rank": rank, "world_size": world,
                    "images_this_run": n_new, "eval_time_s": eval_s}
    table = assemble(source.samples, store.read(list(range(len(chunks)))))
    summary = summarize(table, source.samples, source.describe)
    if summary["n_errors"] > opts.max_errors:
        raise InputError(_error_message([(e["location"], e["reason"]) for e in summary["errors"]], opts.max_errors))
    if summary["n_scored"] == 0:
        first = summary["errors"][0]
        raise InputError(f"{source.root}: none of the {len(source)} images of {dataset} could be read (e.g. "
                         f"{first['location']}: {first['reason']}); nothing to score")
    if not opts.save_logits and "logits" in table.column_names:
        table = table.drop_columns(["logits"])
    write_arrow(parquet_path, table)
    sidecar = {
        "model": lm.name, "model_id": lm.provenance.get("model_id", lm.name), "dataset": dataset,
        "root": str(source.root.resolve()), "layout": source.layout,
        **{k: summary[k] for k in ("n_images", "n_scored", "n_errors", "top1", "top5")},
        "max_errors": opts.max_errors, "errors": summary["errors"],
        "manifest_check": manifest_check, "scoring": scoring.to_dict(),
        "provenance": lm.provenance, "weights_sha256": lm.provenance.get("weights_sha256"),
        "preprocess": lm.preprocess.to_dict(), "preprocess_hash": lm.preprocess.hash(),
        "device": device_description(dev), "precision": opts.precision, "channels_last": opts.channels_last,
        "batch_size": opts.batch_size, "workers": workers, "chunk_size": opts.chunk_size,
        "save_logits": opts.save_logits,
        "images_from": getattr(crops, "description", "decoded from the image files"),
        "compile": opts.compile, "warmup_s": warmup_s, "compile_s": getattr(runner, "compile_s_", None),
        "oom_retries": getattr(runner, "oom_retries_", 0), "max_batch_after_oom": getattr(runner, "max_batch_", None),
        "resumed_chunks": len(done), "images_this_run": n_new, "world_size": world,
        "eval_time_s": eval_s, "wall_time_s": time.perf_counter() - t_start,
        "images_per_s": n_new / eval_s if eval_s > 0 and n_new else None,
        "versions": versions(), "run_key": key, "result_identity": identity,
    }
    write_json(json_path, sidecar)
    store.remove()
    return sidecar
