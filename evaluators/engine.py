"""Batched inference: image source -> uint8 batches -> model runner -> chunk writer.

Three replaceable parts:

* :class:`CropDataset` + :func:`collate_crops`: a map-style torch Dataset
  yielding ``(index, uint8 (3, H, W) tensor | None, error reason | None)``
  and a collate function giving a :class:`Batch`. A decoded-image cache can
  stand in for it.
* :class:`ModelRunner`: moves a uint8 batch to the device, normalizes it
  there (channels_last optional), runs the model under ``inference_mode``
  with fp32 or bf16/fp16 autocast, returns float32 logits on the CPU.
* :class:`~evaluators.outputs.ChunkStore`: finished chunks, for resuming.

:func:`evaluate_source` wires them for one (model, dataset).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from evaluators.datasets.base import ImageSource
from evaluators.decode import DecodeError, load_crop
from evaluators.outputs import TOPK, ChunkStore, assemble, chunk_table, result_paths, summarize, write_arrow
from evaluators.preprocess import PreprocessCfg
from evaluators.registry import LoadedModel
from replication.errors import InputError
from replication.io.atomic import write_json

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEFAULT_CHUNK = 2048


@dataclass
class Batch:
    """``indices`` int64 (B,) of the decoded images, ``images`` uint8 (B, 3, H, W),
    ``errors`` [(index, reason)] of the images that could not be read."""

    indices: torch.Tensor
    images: torch.Tensor
    errors: list[tuple[int, str]]

    def pin_memory(self) -> "Batch":
        """A copy with ``images`` in pinned host memory (called by DataLoader)."""
        return Batch(self.indices, self.images.pin_memory(), self.errors)


class CropDataset(torch.utils.data.Dataset):
    """Decoded, resized, centre-cropped uint8 images of ``source`` for ``cfg``."""

    def __init__(self, source: ImageSource, cfg: PreprocessCfg):
        self.source = source
        self.cfg = cfg

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        try:
            return index, load_crop(self.source.read_bytes(index), self.cfg), None
        except DecodeError as exc:
            return index, None, str(exc)
        except OSError as exc:
            return index, None, read_error(exc)


def read_error(exc: OSError) -> str:
    """The reason recorded for an image whose bytes ``ImageSource.read_bytes``
    could not read (the same on the CPU and the GPU-decode path)."""
    return f"unreadable: {exc.strerror or exc}" if isinstance(exc, FileNotFoundError) else str(exc)


def collate_crops(items: Sequence[tuple[int, torch.Tensor | None, str | None]]) -> Batch:
    """Stack the readable crops of ``items`` (CropDataset outputs) into a
    :class:`Batch`; the unreadable ones go to ``Batch.errors``."""
    good = [(i, x) for i, x, _ in items if x is not None]
    errors = [(i, e) for i, x, e in items if x is None]
    if good:
        idx = torch.tensor([i for i, _ in good], dtype=torch.int64)
        images = torch.stack([x for _, x in good])
    else:
        idx, images = torch.empty(0, dtype=torch.int64), torch.empty(0, 3, 0, 0, dtype=torch.uint8)
    return Batch(idx, images, errors)


def chunk_ranges(n: int, chunk_size: int) -> list[range]:
    """Consecutive index ranges of ``chunk_size`` covering ``0..n-1`` (the last may be shorter)."""
    return [range(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]


def chunk_batches(chunks: list[range], batch_size: int) -> list[list[int]]:
    """Batches in order that never cross a chunk boundary (so a resumed run
    forms exactly the same batches)."""
    return [list(c[s:s + batch_size]) for c in chunks for s in range(0, len(c), batch_size)]


def shard_chunks(n_chunks: int, rank: int, world: int) -> range:
    """Chunk ids of ``rank`` out of ``world``: contiguous, disjoint, covering
    ``0..n_chunks-1`` exactly once (no padding, no repeated image)."""
    return range(n_chunks * rank // world, n_chunks * (rank + 1) // world)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` (cuda when available, else cpu), ``"cpu"`` or ``"cuda[:i]"``
    as a torch device; InputError for anything else or CUDA without a GPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise InputError(f"--device {device!r}: choose auto, cpu or cuda")
    return torch.device(device)


def device_description(device: torch.device) -> str:
    """``"cuda:<GPU name>"`` or ``"cpu:<processor> (<n> threads)"`` for the sidecar."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


class Float32Linear(torch.nn.Linear):
    """``nn.Linear`` that computes in float32 under autocast (same weights)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float())


def classifier_in_fp32(module: torch.nn.Module) -> list[torch.nn.Module]:
    """Make ``module``'s classifier compute in float32 under autocast and
    return the layers changed. The classifier is what timm's
    ``get_classifier()`` returns (both heads of distilled models), else the
    last registered ``nn.Linear``; only plain ``nn.Linear`` layers are changed
    (their class becomes :class:`Float32Linear`, which pickles and deep-copies),
    never a TorchScript module. Under bf16 autocast the logits would be
    rounded to 8 significant bits, which flips near-tied top-1 predictions
    (ResNet-50: 98.8% -> 100% agreement with fp32 on the benchmark images);
    the head is < 1% of the FLOPs. Harmless in fp32."""
    if isinstance(module, torch.jit.ScriptModule):
        return []
    if callable(getattr(module, "get_classifier", None)):
        heads = module.get_classifier()
        heads = list(heads) if isinstance(heads, (tuple, list)) else [heads]
    else:
        heads = [m for m in module.modules() if isinstance(m, torch.nn.Linear)][-1:]
    heads = [h for h in heads if type(h) in (torch.nn.Linear, Float32Linear)]
    for h in heads:
        h.__class__ = Float32Linear
    return heads


class ModelRunner:
    """Runs ``module`` on uint8 batches: normalization on the device, optional
    channels_last, fp32 or autocast bf16/fp16 (classifier in fp32, see
    :func:`classifier_in_fp32`). Returns float32 CPU logits."""

    def __init__(self, module: torch.nn.Module, cfg: PreprocessCfg, device: torch.device,
                 precision: str = "fp32", channels_last: bool = True):
        if precision not in PRECISIONS:
            raise InputError(f"--precision {precision!r}: choose {', '.join(PRECISIONS)}")
        self.device, self.precision, self.channels_last = device, precision, channels_last
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.module = module.eval().to(device=device, memory_format=fmt)
        if precision != "fp32":
            classifier_in_fp32(self.module)
        std = torch.tensor(cfg.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        mean = torch.tensor(cfg.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.scale = 1.0 / (255.0 * std)
        self.shift = mean / std

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> float32 ``(x / 255 - mean) / std`` on the device."""
        x = images.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x.float().mul_(self.scale).sub_(self.shift)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """float32 logits on the device for uint8 images (host or device), in
        the runner's precision (autocast for bf16/fp16)."""
        x = self.normalize(images)
        if self.precision == "fp32":
            return self.module(x).float()
        with torch.autocast(self.device.type, dtype=PRECISIONS[self.precision]):
            return self.module(x).float()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.logits(images).cpu()

    def map(self, batches: Iterable[Batch]) -> Iterator[tuple[Batch, torch.Tensor | None]]:
        """(batch, float32 CPU logits, or None when no image of the batch is readable) per batch, in order."""
        for batch in batches:
            yield batch, self(batch.images) if len(batch.indices) else None


def default_workers() -> int:
    """DataLoader workers: CPU count - 1, between 0 and 8."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def run_key(lm: LoadedModel, source: ImageSource, dataset: str, *, device: torch.device, precision: str,
            batch_size: int, chunk_size: int, save_logits: bool, channels_last: bool, **variant: object) -> str:
    """Hash of everything that determines the per-image outputs."""
    listing = hashlib.sha256(source.listing())
    blob = json.dumps({"model": lm.name, "weights": lm.provenance.get("weights_sha256"),
                       "weights_kind": lm.provenance.get("weights"), "preprocess": lm.preprocess.hash(),
                       "dataset": dataset, "root": str(source.root.resolve()), "listing": listing.hexdigest(),
                       "device": device.type, "precision": precision, "batch_size": batch_size,
                       "chunk_size": chunk_size, "save_logits": save_logits, "channels_last": channels_last,
                       **{k: v for k, v in variant.items() if v}},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def versions() -> dict:
    """Versions of python, torch, torchvision, numpy and pillow (str each)."""
    import PIL
    import torchvision

    return {"python": sys.version.split()[0], "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "pillow": PIL.__version__}


def _error_message(errors: list[tuple[str, str]], max_errors: int) -> str:
    shown = "; ".join(f"{loc} ({why})" for loc, why in errors[:3])
    more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
    return (f"{len(errors)} unreadable image(s), more than --max-errors {max_errors}: {shown}{more}. "
            f"Fix or remove them, or rerun with --max-errors {len(errors)} to score the rest (finished chunks are kept)")


def _run_chunks(runner: ModelRunner, source: ImageSource, crops: torch.utils.data.Dataset, store: ChunkStore,
                chunks: list[range], pending: list[range], *, batch_size: int, workers: int, save_logits: bool,
                max_errors: int, n_prev_errors: int, bar) -> None:
    """Score the ``pending`` chunks, writing each to ``store`` when finished."""
    if not pending:
        return
    chunk_id = {c[0]: i for i, c in enumerate(chunks)}
    loader = torch.utils.data.DataLoader(
        crops, batch_sampler=chunk_batches(pending, batch_size),
        num_workers=0 if getattr(crops, "in_process", False) else workers,
        collate_fn=getattr(crops, "collate_fn", collate_crops), pin_memory=runner.device.type == "cuda")
    errors: list[tuple[str, str]] = []
    parts: list[tuple] = []
    pending_iter = iter(pending)
    current = next(pending_iter)
    left = len(current)
    for batch, logits in runner.map(loader):
        n_ok = len(batch.indices)
        idx = np.concatenate([batch.indices.numpy(), np.array([i for i, _ in batch.errors], dtype=np.int64)])
        top5 = np.full((len(idx), TOPK), -1, dtype=np.int16)
        logits_np = np.zeros((len(idx), 1000), dtype=np.float16) if save_logits else None
        if n_ok:
            top5[:n_ok] = logits.topk(TOPK, dim=1).indices.numpy()
            if save_logits:
                logits_np[:n_ok] = logits.numpy()
        errors += [(source.describe(i), e) for i, e in batch.errors]
        if n_prev_errors + len(errors) > max_errors:
            prefix = f"{n_prev_errors} earlier + " if n_prev_errors else ""
            raise InputError(prefix + _error_message(errors, max_errors))
        parts.append((idx, top5, [None] * n_ok + [e for _, e in batch.errors], logits_np))
        bar.update(len(idx))
        left -= len(idx)
        if left == 0:
            table = chunk_table(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                                [r for p in parts for r in p[2]],
                                np.concatenate([p[3] for p in parts]) if save_logits else None)
            store.write(chunk_id[current[0]], table.take(pa.array(np.argsort(table["index"].to_numpy()))))
            parts = []
            current = next(pending_iter, None)
            left = len(current) if current is not None else 0


def evaluate_source(lm: LoadedModel, source: ImageSource, dataset: str, out_dir: str | Path, *,
                    device: str = "auto", precision: str = "fp32", batch_size: int = 64,
                    workers: int | None = None, max_errors: int = 0, save_logits: bool = False,
                    force: bool = False, chunk_size: int = DEFAULT_CHUNK, channels_last: bool = True,
                    manifest_check: dict | None = None, progress: bool = True,
                    crops: torch.utils.data.Dataset | None = None, compile: bool = False,
                    gpu_decode: bool = False, shard: tuple[int, int] = (0, 1),
                    barrier: Callable[[], None] | None = None) -> dict:
    """Evaluate one model on one dataset; write ``<model>.parquet`` and
    ``<model>.json`` under ``out_dir/<dataset>/`` and return the sidecar dict.
    A finished result is returned as is unless ``force``. ``crops`` replaces
    the decoding :class:`CropDataset` (e.g. a :class:`~evaluators.cache.CachedCrops`
    for ``lm.preprocess``'s crop key). On CUDA, or with ``compile``, the
    :class:`~evaluators.gpu.PipelinedRunner` runs the model (one batch in
    flight, OOM back-off, ``torch.compile``); ``gpu_decode`` decodes JPEGs on
    the GPU (:class:`~evaluators.gpu.EncodedFiles`).

    ``shard=(rank, world)`` with a ``barrier`` callable (torchrun, see
    :mod:`evaluators.distributed`): each rank scores a contiguous block of
    chunks (:func:`shard_chunks`) into the shared work folder; after the
    barrier rank 0 assembles the outputs in sample order and the other ranks
    return their own counts without writing.

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
    device : str, default="auto"
        ``"auto"``, ``"cpu"`` or ``"cuda[:i]"``.
    precision : str, default="fp32"
        ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast).
    batch_size : int, default=64
        Images per forward pass.
    workers : int, default=None
        DataLoader workers (None: :func:`default_workers`).
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
    manifest_check : dict, default=None
        Manifest check result copied into the sidecar.
    progress : bool, default=True
        Show a tqdm bar on stderr (when it is a TTY).
    crops : torch Dataset, default=None
        Replacement for :class:`CropDataset`.
    compile : bool, default=False
        ``torch.compile`` the model (uses the pipelined runner).
    gpu_decode : bool, default=False
        Decode JPEGs on the GPU (CUDA only).
    shard : tuple of int, default=(0, 1)
        ``(rank, world)``.
    barrier : callable, default=None
        Synchronises the ranks; required when ``world > 1``.

    Returns
    -------
    dict
        The ``<model>.json`` sidecar (``n_images``, ``n_scored``, ``n_errors``,
        ``top1``/``top5`` as fractions in [0, 1], timings in seconds, ...),
        with ``"skipped": True`` when existing results were returned; on ranks
        other than 0, only that rank's counts and ``eval_time_s``.
    """
    from tqdm import tqdm

    t_start = time.perf_counter()
    parquet_path, json_path = result_paths(out_dir, dataset, lm.name)
    if parquet_path.exists() and json_path.exists() and not force:
        log.info("%s on %s: results exist (%s); --force to redo", lm.name, dataset, json_path)
        return {**json.loads(json_path.read_text()), "skipped": True}
    if len(source) == 0:
        raise InputError(f"{source.root}: no images found for {dataset}")
    if batch_size < 1 or chunk_size < 1:
        raise InputError("--batch-size and --chunk-size must be >= 1")
    dev = resolve_device(device)
    if gpu_decode and dev.type != "cuda":
        raise InputError("--gpu-decode needs a CUDA device")
    workers = default_workers() if workers is None else workers
    key = run_key(lm, source, dataset, device=dev, precision=precision, batch_size=batch_size,
                  chunk_size=chunk_size, save_logits=save_logits, channels_last=channels_last,
                  compile=compile, gpu_decode=gpu_decode, classifier_fp32=precision != "fp32")
    rank, world = shard
    if world > 1 and rank:
        barrier()  # rank 0 has set up the work folder
    store = ChunkStore(parquet_path.parent / f".{lm.name}.work", key)
    if world > 1 and not rank:
        barrier()
    chunks = chunk_ranges(len(source), chunk_size)
    done = store.done()
    mine = shard_chunks(len(chunks), rank, world)
    pending = [c for i, c in enumerate(chunks) if i not in done and i in mine]
    warmup_s = 0.0
    if dev.type == "cuda" or compile:
        from evaluators.gpu import EncodedFiles, PipelinedRunner

        runner = PipelinedRunner(lm.module, lm.preprocess, dev, precision, channels_last, compile=compile,
                                 batch_size=batch_size)
        warmup_s = runner.warmup(batch_size) if pending else 0.0
        if gpu_decode and crops is None:
            crops = EncodedFiles(source, lm.preprocess)
    else:
        runner = ModelRunner(lm.module, lm.preprocess, dev, precision, channels_last)
    n_prev_errors = store.n_errors()
    n_new = sum(len(c) for c in pending)
    bar = tqdm(total=len(source), initial=len(source) - n_new, unit="img", file=sys.stderr,
               disable=None if progress else True, desc=f"{lm.name} on {dataset}")
    crops = CropDataset(source, lm.preprocess) if crops is None else crops
    t_eval = time.perf_counter()
    try:
        _run_chunks(runner, source, crops, store, chunks, pending, batch_size=batch_size, workers=workers,
                    save_logits=save_logits, max_errors=max_errors, n_prev_errors=n_prev_errors, bar=bar)
    finally:
        bar.close()
    eval_s = time.perf_counter() - t_eval
    if world > 1:
        barrier()  # every rank's chunks are written
        if rank:
            return {"model": lm.name, "dataset": dataset, "rank": rank, "world_size": world,
                    "images_this_run": n_new, "eval_time_s": eval_s}
    table = assemble(source.samples, store.read(list(range(len(chunks)))))
    summary = summarize(table, source.samples, source.describe)
    if summary["n_errors"] > max_errors:
        raise InputError(_error_message([(e["location"], e["reason"]) for e in summary["errors"]], max_errors))
    if not save_logits and "logits" in table.column_names:
        table = table.drop_columns(["logits"])
    write_arrow(parquet_path, table)
    sidecar = {
        "model": lm.name, "model_id": lm.provenance.get("model_id", lm.name), "dataset": dataset,
        "root": str(source.root.resolve()), "layout": source.layout,
        **{k: summary[k] for k in ("n_images", "n_scored", "n_errors", "top1", "top5")},
        "max_errors": max_errors, "errors": summary["errors"],
        "manifest_check": manifest_check,
        "provenance": lm.provenance, "weights_sha256": lm.provenance.get("weights_sha256"),
        "preprocess": lm.preprocess.to_dict(), "preprocess_hash": lm.preprocess.hash(),
        "device": device_description(dev), "precision": precision, "channels_last": channels_last,
        "batch_size": batch_size, "workers": workers, "chunk_size": chunk_size, "save_logits": save_logits,
        "images_from": getattr(crops, "description", "decoded from the image files"),
        "compile": compile, "warmup_s": warmup_s, "compile_s": getattr(runner, "compile_s_", None),
        "oom_retries": getattr(runner, "oom_retries_", 0), "max_batch_after_oom": getattr(runner, "max_batch_", None),
        "resumed_chunks": len(done), "images_this_run": n_new, "world_size": world,
        "eval_time_s": eval_s, "wall_time_s": time.perf_counter() - t_start,
        "images_per_s": n_new / eval_s if eval_s > 0 and n_new else None,
        "versions": versions(), "run_key": key,
    }
    write_json(json_path, sidecar)
    store.remove()
    return sidecar
