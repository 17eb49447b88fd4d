"""The parts every evaluation path shares: image batches, the model runner and the chunk loop.

* :class:`CropDataset` + :func:`collate_crops`: a map-style torch Dataset
  yielding ``(index, uint8 (3, H, W) tensor | None, error reason | None)``
  and a collate function giving a :class:`Batch`; :func:`read_error` is the
  reason recorded for an image whose bytes cannot be read. A decoded-image
  cache (:mod:`evaluators.cache`) or GPU decoding (:mod:`evaluators.gpu`) can
  stand in for the dataset.
* :class:`ModelRunner`: moves a uint8 batch to the device, normalizes it
  there (channels_last optional), runs the model under ``inference_mode``
  with fp32 or bf16/fp16 autocast, returns float32 logits on the CPU.
* The chunk loop: images are processed in consecutive chunks (the unit of
  resume); :func:`chunk_loader` makes batches that never cross a chunk and
  :func:`iter_chunks` says which chunk each batch belongs to and when it is
  complete. The engine (:mod:`evaluators.engine`) writes a result chunk
  there, the crop cache a decoded chunk.
"""
from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch

from evaluators.datasets.base import ImageSource
from evaluators.decode import DecodeError, load_crop
from evaluators.preprocess import PreprocessCfg
from replication.errors import InputError

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

T = TypeVar("T")


@dataclass
class Batch:
    """``indices`` int64 (B,) of the decoded images, ``images`` uint8 (B, 3, H, W),
    ``errors`` [(index, reason)] of the images that could not be read."""

    indices: torch.Tensor
    images: torch.Tensor
    errors: list[tuple[int, str]]

    @property
    def size(self) -> int:
        """Images of the batch, readable or not."""
        return len(self.indices) + len(self.errors)

    def pin_memory(self) -> "Batch":
        """A copy with ``images`` in pinned host memory (called by DataLoader)."""
        return Batch(self.indices, self.images.pin_memory(), self.errors)


def read_error(exc: OSError) -> str:
    """The reason recorded for an image whose bytes ``ImageSource.read_bytes``
    could not read (the same on the CPU and the GPU-decode path)."""
    return f"unreadable: {exc.strerror or exc}" if isinstance(exc, FileNotFoundError) else str(exc)


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


# ---------------------------------------------------------------- the chunk loop
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


def default_batch_size(device: torch.device) -> int:
    """Images per forward pass when not given: 64 on a GPU; 8 on the CPU,
    where a batch's activations then stay in the caches (EfficientNet-Lite0
    takes about half the CPU time per image at 8 as at 64, ResNet-50 and
    MobileNetV3 about the same). Batches whose size is a multiple of 4 give
    the same logits, bit for bit, on the CPU (tested)."""
    return 64 if device.type == "cuda" else 8


def default_workers(device: torch.device | None = None) -> int:
    """DataLoader workers: CPU count - 1, between 0 and 8, to feed a GPU or
    fill the decode cache; for a model run on the CPU, which needs the cores
    more than decoding does (EfficientNet-Lite0: ~25 ms an image against
    ~6 ms to decode and crop it), a quarter of them, at least 1 of 2 or more."""
    cpus = os.cpu_count() or 1
    if device is not None and device.type == "cpu":
        return min(cpus - 1, max(1, cpus // 4))
    return max(0, min(8, cpus - 1))


def chunk_loader(dataset: torch.utils.data.Dataset, chunks: list[range], *, batch_size: int, workers: int,
                 pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader over the images of ``chunks``, in order, in batches of at
    most ``batch_size`` that never cross a chunk (:func:`chunk_batches`).
    The dataset's own ``collate_fn`` is used when it has one (default
    :func:`collate_crops`); a dataset marked ``in_process`` (nothing left to
    decode) is read in this process whatever ``workers`` says."""
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=chunk_batches(chunks, batch_size),
        num_workers=0 if getattr(dataset, "in_process", False) else workers,
        collate_fn=getattr(dataset, "collate_fn", collate_crops), pin_memory=pin_memory)


def iter_chunks(items: Iterable[T], chunks: list[range], size: Callable[[T], int] = lambda b: b.size
                ) -> Iterator[tuple[T, range, bool]]:
    """``(item, chunk, last)`` for each item (a batch, or anything whose
    ``size(item)`` counts its images) made from :func:`chunk_loader`'s
    batches over ``chunks``: the chunk it belongs to and whether it completes
    that chunk."""
    pending = iter(chunks)
    chunk = next(pending, None)
    left = len(chunk) if chunk is not None else 0
    for item in items:
        left -= size(item)
        if chunk is None or left < 0:
            raise RuntimeError("batches do not follow their chunks")
        yield item, chunk, left == 0
        if left == 0:
            chunk = next(pending, None)
            left = len(chunk) if chunk is not None else 0


@contextmanager
def reused_heap() -> Iterator[None]:
    """Within the block, glibc's malloc keeps freed memory for reuse (mmap and
    trim thresholds of 1 GiB); after it, glibc's default thresholds and a trim
    give it back. A forward pass on the CPU frees and allocates activations of
    tens of MB per batch, each a fresh mmap whose pages the kernel zeroes on
    first touch: EfficientNet-Lite0 spent a third of its CPU time there
    (``replication evaluate``, 256 images: 9.6 s system time, 1.4 s with
    the heap reused). PyTorch's CPU tuning guide swaps in jemalloc or TCMalloc
    for the same reason. Does nothing where the C library is not glibc."""
    if platform.libc_ver()[0] != "glibc":
        yield
        return
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_threshold, default, keep = -1, -3, 128 * 1024, 1 << 30
    libc.mallopt(m_trim_threshold, keep)
    libc.mallopt(m_mmap_threshold, keep)
    try:
        yield
    finally:
        libc.mallopt(m_mmap_threshold, default)
        libc.mallopt(m_trim_threshold, default)
        libc.malloc_trim(0)


# ---------------------------------------------------------------- the model runner
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
