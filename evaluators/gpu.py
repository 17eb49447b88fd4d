"""The fast model runner: pipelined device execution, out-of-memory back-off,
optional ``torch.compile`` and optional batched JPEG decoding on the GPU.

:class:`PipelinedRunner` extends :class:`~evaluators.runner.ModelRunner`:

* ``map(batches)`` keeps one batch in flight on a CUDA device: batch ``k+1``
  is copied (pinned memory, ``non_blocking``), normalized and launched before
  the logits of batch ``k`` are read back, so the host never waits for the
  GPU between batches. Per-image outputs are those of the plain runner.
* Out of memory: the batch is split in halves (recursively) and the smaller
  size is kept for the following batches; ``max_batch_`` and ``oom_retries_``
  record it.
* ``compile=True`` wraps the module in ``torch.compile`` (inductor with
  weight freezing; static shapes; a
  short last batch is padded with zeros whose outputs are dropped, so it does
  not recompile); :meth:`warmup` runs it once on a full batch and returns the
  seconds spent, which the engine reports apart from the evaluation time.
* :class:`EncodedFiles` + GPU decoding: data-loader workers only read file
  bytes; RGB JPEGs are decoded in batches by ``torchvision.io.decode_jpeg(device=
  "cuda")`` and resized/cropped on the GPU; anything else (PNG, CMYK or
  grayscale JPEG, corrupt files) goes through the CPU decoder in the worker,
  so bad input is reported exactly as on the CPU path.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import torch

from evaluators.datasets.base import ImageSource
from evaluators.decode import DecodeError, decode_jpegs, jpeg_mode, load_crop, resize_crop
from evaluators.runner import Batch, ModelRunner, read_error
from evaluators.preprocess import PreprocessCfg

log = logging.getLogger(__name__)


@dataclass
class EncodedBatch:
    """A batch whose RGB JPEGs are still encoded: ``indices`` int64 (B,) of
    the readable images; image ``indices[k]`` is either the JPEG bytes
    ``data[spans[k][0]:spans[k][1]]`` (one flat uint8 buffer per batch, so a
    batch crosses processes as one shared-memory block) or, where
    ``spans[k]`` is None, the uint8 crop ``decoded[k]`` made on the CPU;
    ``errors`` [(index, reason)]."""

    indices: torch.Tensor
    data: torch.Tensor
    spans: list[tuple[int, int] | None]
    decoded: list[torch.Tensor | None]
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Images of the batch, readable or not (GPU decoding failures move
        from ``indices`` to ``errors``, so the size does not change)."""
        return len(self.indices) + len(self.errors)

    def pin_memory(self) -> "EncodedBatch":
        """No-op (the batch is used as is); called by DataLoader."""
        return self

    def jpegs(self) -> list[torch.Tensor]:
        """The encoded JPEGs to decode on the GPU, one uint8 (n_bytes,) view each."""
        return [self.data[a:b] for a, b in (s for s in self.spans if s is not None)]


class EncodedFiles(torch.utils.data.Dataset):
    """Items ``(index, bytes tensor | None, cpu crop | None, error | None)``:
    RGB JPEG bytes are passed on for GPU decoding, other files are decoded
    here with the CPU decoder (same results and error reasons as
    :class:`~evaluators.runner.CropDataset`). ``cpu_share`` (0..1) of the
    JPEGs are decoded by the CPU workers anyway, so that CPU and GPU decode
    at the same time when neither alone keeps up with the model."""

    def __init__(self, source: ImageSource, cfg: PreprocessCfg, cpu_share: float = 0.0):
        self.source = source
        self.cfg = cfg
        self.cpu_share = cpu_share
        self.description = (f"JPEGs decoded on the GPU (nvJPEG; {cpu_share:.0%} of them in CPU workers, "
                            "in parallel), other files on the CPU")

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        try:
            data = self.source.read_bytes(index)
        except OSError as exc:
            return index, None, None, read_error(exc)
        on_gpu = (index * 0.6180339887) % 1.0 >= self.cpu_share  # spread the CPU share evenly over batches
        if on_gpu and jpeg_mode(data) == "RGB":
            return index, torch.frombuffer(bytearray(data), dtype=torch.uint8), None, None
        try:
            return index, None, load_crop(data, self.cfg), None
        except DecodeError as exc:
            return index, None, None, str(exc)

    @staticmethod
    def collate_fn(items: list[tuple[int, torch.Tensor | None, torch.Tensor | None, str | None]]) -> EncodedBatch:
        """Concatenate the JPEG bytes of ``items`` (spans into one uint8
        tensor), keep the CPU-decoded crops, collect the errors."""
        good = [it for it in items if it[3] is None]
        spans, pos = [], 0
        for it in good:
            spans.append(None if it[1] is None else (pos, pos + len(it[1])))
            pos += 0 if it[1] is None else len(it[1])
        data = torch.cat([it[1] for it in good if it[1] is not None]) if pos else torch.empty(0, dtype=torch.uint8)
        return EncodedBatch(torch.tensor([it[0] for it in good], dtype=torch.int64), data, spans,
                            [it[2] for it in good], [(it[0], it[3]) for it in items if it[3] is not None])


def gpu_crops(encoded: list[torch.Tensor], cfg: PreprocessCfg, device: torch.device) -> list[torch.Tensor]:
    """Decode JPEG bytes on ``device`` and apply ``cfg``'s resize and centre
    crop there (:func:`~evaluators.decode.resize_crop`, Pillow's rounding):
    uint8 (3, crop, crop) per image, in order. Images of one size are resized
    together (ImageNet's are mostly 500x375 or 375x500), so the kernel
    launches per batch grow with its distinct sizes, not its images."""
    images = decode_jpegs(encoded, device)
    by_size: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(images):
        by_size.setdefault(tuple(im.shape), []).append(i)
    crops: list[torch.Tensor] = [None] * len(images)  # type: ignore[list-item]
    for idx in by_size.values():
        for i, crop in zip(idx, resize_crop(torch.stack([images[i] for i in idx]), cfg)):
            crops[i] = crop
    return crops


class PipelinedRunner(ModelRunner):
    """:class:`ModelRunner` with one batch in flight on CUDA, OOM back-off,
    optional ``torch.compile`` and GPU decoding of :class:`EncodedBatch`.

    Attributes
    ----------
    max_batch_ : int or None
        Largest sub-batch run since the last out-of-memory error (None: no limit met).
    oom_retries_ : int
        Out-of-memory errors recovered from.
    compile_s_ : float or None
        Seconds of the first (compiling) call in :meth:`warmup`.
    """

    def __init__(self, module: torch.nn.Module, cfg: PreprocessCfg, device: torch.device,
                 precision: str = "fp32", channels_last: bool = True, *, compile: bool = False,
                 batch_size: int | None = None):
        super().__init__(module, cfg, device, precision, channels_last)
        self.cfg, self.compiled, self.batch_size = cfg, compile, batch_size
        if compile:
            # freezing: weights become constants (conv-BN folding, oneDNN weight prepacking on the CPU)
            self.module = torch.compile(self.module, dynamic=False, options={"freezing": True})
        self.max_batch_: int | None = None
        self.oom_retries_ = 0
        self.compile_s_: float | None = None

    # -- forward ---------------------------------------------------------------------------
    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        """float32 logits on the device for uint8 images (host or device)."""
        n = len(images)
        full = n
        if self.compiled and self.batch_size:  # one static shape: the batch size, or the size OOM left
            full = min(self.batch_size, self.max_batch_ or self.batch_size)
        if n < full:
            pad = images.new_zeros((full - n, *images.shape[1:]))
            images = torch.cat([images, pad.to(images.device)])
        return self.logits(images)[:n]

    def _forward_backing_off(self, images: torch.Tensor) -> torch.Tensor:
        step = self.max_batch_ or len(images)
        while True:
            try:
                return torch.cat([self._forward(images[s:s + step]) for s in range(0, len(images), step)])
            except torch.OutOfMemoryError:
                if step == 1:
                    raise
                torch.cuda.empty_cache()
                step = self.max_batch_ = max(1, step // 2)
                self.oom_retries_ += 1
                log.warning("out of GPU memory: retrying with batches of %d", step)

    def _images(self, batch) -> torch.Tensor:
        """uint8 (B, 3, H, W) of a Batch or EncodedBatch (decoded on the device)."""
        if not isinstance(batch, EncodedBatch):
            return batch.images
        jpegs = batch.jpegs()
        try:
            crops = gpu_crops(jpegs, self.cfg, self.device) if jpegs else []
        except torch.OutOfMemoryError:
            raise
        except RuntimeError:  # one bad file fails the whole batch: decode one by one
            crops = [self._decode_one(j) for j in jpegs]
        crops = iter(crops)
        images, keep = [], []
        for k, (span, d) in enumerate(zip(batch.spans, batch.decoded)):
            im = next(crops) if span is not None else d.to(self.device, non_blocking=True)
            if isinstance(im, str):
                batch.errors.append((int(batch.indices[k]), im))
            else:
                images.append(im)
                keep.append(k)
        if len(keep) < len(batch.spans):
            batch.indices = batch.indices[keep]
        return torch.stack(images) if images else None

    def _decode_one(self, jpeg: torch.Tensor) -> torch.Tensor | str:
        """One JPEG on the GPU, else the CPU decoder; the reason if both fail."""
        try:
            return gpu_crops([jpeg], self.cfg, self.device)[0]
        except RuntimeError:
            try:
                return load_crop(jpeg.numpy().tobytes(), self.cfg).to(self.device)
            except DecodeError as exc:
                return str(exc)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self._forward_backing_off(images).cpu()

    def _launch(self, batch):
        """Start ``batch`` on the device; returns (logits host buffer, event) or None."""
        if len(batch.indices) == 0:
            return None
        with torch.inference_mode():
            images = self._images(batch)
            if images is None:
                return None
            logits = self._forward_backing_off(images)
            if self.device.type != "cuda":
                return logits, None
            host = torch.empty(logits.shape, dtype=logits.dtype, pin_memory=True)
            host.copy_(logits, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            return host, done

    def map(self, batches: Iterable[Batch | EncodedBatch]) -> Iterator[tuple[Batch, torch.Tensor | None]]:
        """(batch, float32 CPU logits or None when the batch has no readable
        image) for each batch, in order, with one batch in flight."""
        prev = None
        for batch in batches:
            launched = (batch, self._launch(batch))
            if prev is not None:
                yield _finish(*prev)
            prev = launched
        if prev is not None:
            yield _finish(*prev)

    def warmup(self, batch_size: int) -> float:
        """Run one full random batch (compiles a compiled module, picks cuDNN
        algorithms); returns the seconds it took."""
        s = self.cfg.crop_size
        x = torch.randint(0, 256, (batch_size, 3, s, s), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        t0 = time.perf_counter()
        with torch.inference_mode():
            self._forward_backing_off(x)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        self.compile_s_ = time.perf_counter() - t0 if self.compiled else None
        return time.perf_counter() - t0


def _finish(batch, launched):
    if launched is None:
        return batch, None
    host, done = launched
    if done is not None:
        done.synchronize()
    return batch, host
