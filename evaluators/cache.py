"""Decode once, evaluate many: a cache of decoded, resized, centre-cropped uint8 images.

Models whose :meth:`PreprocessCfg.crop_key` is equal see the same uint8 crop
of every image (they may still differ in mean/std, applied on the device).
:class:`CropCache` decodes a source once for one crop key and serves the
crops to every such model through :class:`CachedCrops`, a drop-in for the
runner's :class:`~evaluators.runner.CropDataset`.

The cache lives in memory (``cache_dir=None``) or on disk under
``cache_dir/<key>/``, where ``key`` joins a hash of the dataset listing
(dataset id, root, every image id, label and location) and the crop key::

    cache_dir/<source hash>-<crop key>/
        chunk-00000.npy    uint8 (n, 3, crop, crop), images of the chunk in sample order
        chunk-00000.json   {"start", "n", "errors": {sample index: reason}}; written last
        ...

Each file is written atomically and a chunk counts only once its ``.json``
exists, so a fill killed at any point resumes from its last finished chunk
and never serves a half-written array. Unreadable images keep an all-zero
slot and their reason, and reach the engine as errors exactly as a fresh
decode would report them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from evaluators.datasets.base import ImageSource
from evaluators.preprocess import PreprocessCfg
from evaluators.runner import (Batch, CropDataset, chunk_loader, chunk_ranges, collate_crops, default_workers,
                               iter_chunks, shard_chunks)
from replication.io.atomic import atomic_path, write_json

log = logging.getLogger(__name__)

CACHE_CHUNK = 1024
CACHE_MODES = ("none", "memory", "disk")


def source_key(source: ImageSource, dataset: str) -> str:
    """16-hex-digit hash of a dataset copy's listing: dataset id, root and
    every sample's (image id, label, location) in order."""
    h = hashlib.sha256(f"{dataset}\n{source.root.resolve()}\n".encode())
    h.update(source.listing())
    return h.hexdigest()[:16]


@dataclass
class _Chunk:
    """Crops of samples ``start .. start + len(images) - 1``; ``errors`` maps a
    sample index to the reason it could not be decoded."""

    start: int
    images: np.ndarray
    errors: dict[int, str]


class CachedCrops(torch.utils.data.Dataset):
    """Map-style dataset over a filled :class:`CropCache`: item ``i`` is
    ``(i, uint8 (3, H, W) tensor, None)`` or ``(i, None, reason)``, as
    :class:`~evaluators.runner.CropDataset` yields. Nothing is left to
    decode, so the engine reads it in the main process (``in_process``):
    worker processes would only add copies through shared memory."""

    in_process = True

    def __init__(self, chunks: list[_Chunk], chunk_size: int, description: str):
        self.chunks = chunks
        self.chunk_size = chunk_size
        self.description = description

    def __len__(self) -> int:
        return sum(len(c.images) for c in self.chunks)

    def __getitem__(self, index: int):
        c = self.chunks[index // self.chunk_size]
        if index in c.errors:
            return index, None, c.errors[index]
        im = c.images[index - c.start]
        return index, torch.from_numpy(np.array(im)) if isinstance(im, np.ndarray) else im.clone(), None

    def __getitems__(self, indices: list[int]):
        """A whole batch at once (DataLoader's batched fetch): a
        :class:`~evaluators.runner.Batch` made with one array copy when the
        indices are consecutive within one chunk (the engine's batches are)."""
        a, b = indices[0], indices[-1]
        c = self.chunks[a // self.chunk_size]
        if b - a + 1 != len(indices) or b // self.chunk_size != a // self.chunk_size or \
                any(a <= i <= b for i in c.errors):
            return collate_crops([self[i] for i in indices])
        images = c.images[a - c.start:b + 1 - c.start]
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.array(images))
        return Batch(torch.arange(a, b + 1), images, [])  # a pinned chunk is sliced without a copy

    @staticmethod
    def collate_fn(batch: Batch) -> Batch:
        """``__getitems__`` already returns the collated batch."""
        return batch


class CropCache:
    """Decoded uint8 crops of one image source under one preprocessing's crop key.

    Parameters
    ----------
    source : ImageSource
    cfg : PreprocessCfg
        Only its crop fields matter (:meth:`PreprocessCfg.crop_key`).
    dataset : str
        Dataset id (part of the key).
    cache_dir : path or None, default=None
        None keeps the crops in memory; a folder keeps them on disk (reused by
        later runs and other processes, and resumable).
    chunk_size : int, default=1024
        Images per cache chunk (the unit of atomic writes and resume).

    Attributes (after :meth:`fill`)
    ----------
    n_decoded_ : int
        Images decoded by this call (0 when everything was cached already).
    decode_s_ : float
        Seconds spent decoding in this call.
    """

    def __init__(self, source: ImageSource, cfg: PreprocessCfg, *, dataset: str,
                 cache_dir: str | os.PathLike | None = None, chunk_size: int = CACHE_CHUNK):
        self.source = source
        self.cfg = cfg
        self.dataset = dataset
        self.cache_dir = cache_dir
        self.chunk_size = chunk_size
        self._memory: dict[int, _Chunk] = {}

    @cached_property
    def key(self) -> str:
        """Cache key: the source's listing key and the crop key of ``cfg``
        (hashed once; every chunk path uses it)."""
        return f"{source_key(self.source, self.dataset)}-{self.cfg.crop_key()}"

    @property
    def folder(self) -> Path | None:
        """Disk folder of this cache (``cache_dir / key``), None in memory only."""
        return None if self.cache_dir is None else Path(self.cache_dir) / self.key

    def _ranges(self) -> list[range]:
        return chunk_ranges(len(self.source), self.chunk_size)

    def _load_chunk(self, i: int) -> _Chunk | None:
        """Chunk ``i`` from disk (memory-mapped) if finished, else None."""
        if self.folder is None:
            return self._memory.get(i)
        meta = self.folder / f"chunk-{i:05d}.json"
        if not meta.exists():
            return None
        m = json.loads(meta.read_text())
        images = np.load(self.folder / f"chunk-{i:05d}.npy", mmap_mode="r")
        return _Chunk(m["start"], images, {int(k): v for k, v in m["errors"].items()})

    def _store_chunk(self, i: int, chunk: _Chunk) -> None:
        if self.folder is None:
            self._memory[i] = chunk
            return
        with atomic_path(self.folder / f"chunk-{i:05d}.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, chunk.images)
        write_json(self.folder / f"chunk-{i:05d}.json",
                   {"start": chunk.start, "n": len(chunk.images), "errors": chunk.errors})

    def fill(self, *, workers: int | None = None, batch_size: int = 64, progress: bool = True,
             part: tuple[int, int] = (0, 1)) -> "CropCache":
        """Decode every image not cached yet (DataLoader ``workers``), chunk
        by chunk. ``part=(rank, world)``: only this rank's contiguous block of
        chunks, so that torchrun processes sharing a disk cache fill it together."""
        from tqdm import tqdm

        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_json(self.folder / "key.json", {"dataset": self.dataset, "root": str(self.source.root.resolve()),
                                                  "n_images": len(self.source), "preprocess": self.cfg.to_dict(),
                                                  "crop_key": self.cfg.crop_key()})
        ranges = self._ranges()
        missing = [i for i in shard_chunks(len(ranges), *part) if self._load_chunk(i) is None]
        self.n_decoded_ = sum(len(ranges[i]) for i in missing)
        t0 = time.perf_counter()
        if missing:
            s = self.cfg.crop_size
            todo = [ranges[i] for i in missing]
            loader = chunk_loader(CropDataset(self.source, self.cfg), todo, batch_size=batch_size,
                                  workers=default_workers() if workers is None else workers)
            bar = tqdm(total=self.n_decoded_, unit="img", file=sys.stderr, disable=None if progress else True,
                       desc=f"decoding {self.dataset} for crop key {self.cfg.crop_key()}")
            chunk_id = {ranges[i].start: i for i in missing}
            images, errors = None, {}
            for batch, chunk, last in iter_chunks(loader, todo):
                if images is None:
                    images = np.zeros((len(chunk), 3, s, s), np.uint8)
                if len(batch.indices):
                    images[batch.indices.numpy() - chunk.start] = batch.images.numpy()
                errors.update(dict(batch.errors))
                bar.update(batch.size)
                if last:
                    self._store_chunk(chunk_id[chunk.start], _Chunk(chunk.start, images, errors))
                    images, errors = None, {}
            bar.close()
        self.decode_s_ = time.perf_counter() - t0
        return self

    def crops(self, pin: bool = False) -> CachedCrops:
        """The cached crops as a dataset for the engine (after :meth:`fill`).
        ``pin``: hold them in page-locked memory (CUDA), so a batch is a view
        copied straight to the device."""
        chunks = [self._load_chunk(i) for i in range(len(self._ranges()))]
        if any(c is None for c in chunks):
            raise RuntimeError(f"crop cache {self.key}: fill() first")
        if pin:
            chunks = [_Chunk(c.start, torch.from_numpy(c.images if c.images.flags.writeable else np.array(c.images))
                             .pin_memory(), c.errors) for c in chunks]
        where = "memory" if self.folder is None else str(self.folder)
        return CachedCrops(chunks, self.chunk_size, f"crop cache {self.key} ({where})")


def group_by_crop_key(cfgs: dict[str, PreprocessCfg]) -> dict[str, list[str]]:
    """``{crop key: [model ids]}`` for ``{model id: its preprocessing}``, in first-seen order."""
    groups: dict[str, list[str]] = {}
    for model_id, cfg in cfgs.items():
        groups.setdefault(cfg.crop_key(), []).append(model_id)
    return groups
