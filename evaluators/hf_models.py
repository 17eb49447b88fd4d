"""Hugging Face ``transformers`` image classifiers: ``hf/<repo id>`` (from the
local Hub cache) or ``hf/<folder>`` (``save_pretrained`` output).

Nothing is downloaded unless ``download=True``. The model's labels
(``config.id2label``) are mapped onto ImageNet class indices -- by position
when they are the 1000 ImageNet classes in order, else by name (the full
synonym list, e.g. ``"tench, Tinca tinca"``, the first name, or the wnid);
a ``background`` label (1001-class TensorFlow models) is dropped. A model
with a label that maps to no ImageNet class is refused. Logits of
ImageNet classes the model lacks are -inf (``LoadedModel.classes``).

Preprocessing is the image processor's, mapped onto :class:`PreprocessCfg`:
``size={"shortest_edge": s}`` resizes the shorter side to ``s`` (ConvNeXt's
processor: to ``s / crop_pct`` and crops ``s``, or squashes at s >= 384),
``size={"height": h, "width": h}`` squashes; ``crop_size`` is a centre crop
at Hugging Face's offset (``(size - crop) // 2``: ``crop_rounding="floor"``);
``rescale_factor`` and ``image_mean``/``image_std`` fold into mean and std.
The mapping is checked when the model loads: the processor's PIL backend
(Hugging Face's Pillow reference) and ours must give the same tensors on
test images of odd sizes, else the model is refused; the difference from the
default torchvision backend is recorded (its resize kernels round
differently, by a level or two).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from replication.classes import N_CLASSES, imagenet_classes
from evaluators.preprocess import PreprocessCfg
from replication.errors import InputError

PREFIX = "hf/"
#: PIL resampling codes -> PreprocessCfg interpolation
RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}
#: largest difference (normalized units) from the processor's PIL backend that counts as equal
EXACT = 1e-4
#: (width, height) of photo-sized images the mapping is checked on (plus two per configuration, see check_images)
CHECK_SIZES = ((333, 250), (250, 333), (301, 301))


def label_map(id2label: dict, model_id: str) -> np.ndarray:
    """int64 (num_labels,): the ImageNet class index of each output, -1 for
    a ``background`` output; InputError for a label that is no ImageNet class."""
    labels = [str(id2label[i] if i in id2label else id2label[str(i)]).strip() for i in range(len(id2label))]
    table = imagenet_classes()
    full = table.full_names
    out = np.full(len(labels), -1, dtype=np.int64)
    real = np.array([lab.lower() != "background" for lab in labels], dtype=bool)
    kept = [lab for lab, r in zip(labels, real) if r]
    if len(kept) == N_CLASSES and all(lab in (full[i], table.names[i], table.wnids[i]) for i, lab in enumerate(kept)):
        out[real] = np.arange(N_CLASSES)       # the 1000 classes in index order ('crane' twice, by position)
        return out
    by_name: dict[str, set[int]] = {}
    for i in range(N_CLASSES):
        for key in (full[i], table.names[i], table.wnids[i]):
            by_name.setdefault(key, set()).add(i)
    for k, lab in enumerate(labels):
        if not real[k]:
            continue
        found = by_name.get(lab, set())
        if len(found) != 1:
            raise InputError(f"{model_id}: output {k} is labelled {lab!r}, which "
                             f"{'is not an ImageNet class name or wnid' if not found else 'names several ImageNet classes'}"
                             "; only ImageNet classifiers can be scored")
        out[k] = found.pop()
    if len(set(out[out >= 0].tolist())) != int((out >= 0).sum()):
        raise InputError(f"{model_id}: several outputs map to one ImageNet class")
    return out


class ImageNetOutputs(nn.Module):
    """A transformers classifier as a map from normalized images (N, 3, H, W)
    to ImageNet logits (N, 1000); outputs are placed by ``index`` (-1:
    dropped), classes without an output get -inf."""

    def __init__(self, model: nn.Module, index: np.ndarray):
        super().__init__()
        self.model = model
        self.identity = bool(len(index) == N_CLASSES and (index == np.arange(N_CLASSES)).all())
        keep = index >= 0
        self.register_buffer("source", torch.as_tensor(np.flatnonzero(keep)), persistent=False)
        self.register_buffer("target", torch.as_tensor(index[keep]), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (N, 1000)."""
        logits = self.model(pixel_values=x).logits
        if self.identity:
            return logits
        out = logits.new_full((logits.shape[0], N_CLASSES), -math.inf)
        out[:, self.target] = logits[:, self.source]
        return out


def _size(value) -> dict:
    return {} if value is None else {k: v for k, v in dict(value).items() if v is not None}


def preprocess_from_processor(proc, model_id: str) -> PreprocessCfg:
    """The processor's resize, crop, rescale and normalization as a
    :class:`PreprocessCfg` (decoder ``pil``, Hugging Face's crop offset);
    InputError for what has no equivalent."""
    name = type(proc).__name__
    resample = int(getattr(proc, "resample", 2))
    if resample not in RESAMPLE:
        raise InputError(f"{model_id}: {name} resamples with PIL filter {resample} (only nearest, bilinear, bicubic)")
    size, crop = _size(getattr(proc, "size", None)), _size(getattr(proc, "crop_size", None))
    do_crop = bool(getattr(proc, "do_center_crop", False)) and crop
    if not getattr(proc, "do_resize", True):
        raise InputError(f"{model_id}: {name} does not resize; images of varying size cannot be batched")
    if do_crop and crop.get("height") != crop.get("width"):
        raise InputError(f"{model_id}: {name} crops a non-square {crop}")
    squash = False
    if set(size) == {"shortest_edge"}:
        edge = int(size["shortest_edge"])
        crop_pct = getattr(proc, "crop_pct", None)
        if name.startswith("ConvNextImageProcessor") and crop_pct:
            resize, side, squash = (int(edge / crop_pct), edge, False) if edge < 384 else (edge, edge, True)
        elif do_crop:
            resize, side = edge, int(crop["height"])
        else:
            raise InputError(f"{model_id}: {name} resizes the shorter side without a crop; images of varying "
                             "size cannot be batched")
    elif set(size) == {"height", "width"} and size["height"] == size["width"]:
        resize, squash = int(size["height"]), True
        side = int(crop["height"]) if do_crop else resize
    else:
        raise InputError(f"{model_id}: {name} size {size} cannot be expressed (shortest_edge, or a square height/width)")
    rf = float(getattr(proc, "rescale_factor", 1 / 255)) if getattr(proc, "do_rescale", True) else 1.0
    if getattr(proc, "do_normalize", True):
        mean, std = (np.broadcast_to(np.asarray(getattr(proc, k), dtype=float), 3) for k in ("image_mean", "image_std"))
    else:
        mean, std = np.zeros(3), np.ones(3)
    # (x * rf - mean) / std == (x / 255 - mean / (255 rf)) / (std / (255 rf))
    return PreprocessCfg(crop_size=side, resize_size=resize, interpolation=RESAMPLE[resample], antialias=True,
                         mean=tuple(float(m / (255 * rf)) for m in mean), std=tuple(float(s / (255 * rf)) for s in std),
                         resize_mode="squash" if squash else "shorter", crop_rounding="floor")


def check_images(cfg: PreprocessCfg) -> list:
    """Deterministic RGB test images (PIL) with detail at every scale: the
    sizes of :data:`CHECK_SIZES`, and two whose resized long side exceeds
    the crop by 3 mod 4 pixels, where the centre-crop conventions differ."""
    from PIL import Image

    r, c = cfg.resize_size, cfg.crop_size
    odd = max(r, c) + 1 + (c + 3 - max(r, c) - 1) % 4
    rng = np.random.default_rng(0)
    out = []
    for w, h in (*CHECK_SIZES, (odd, r), (r, odd)):
        yy, xx = np.mgrid[0:h, 0:w]
        smooth = 127 + 100 * np.sin(xx[..., None] / np.array([7.0, 11.0, 5.0]) + yy[..., None] / np.array([13.0, 3.0, 9.0]))
        out.append(Image.fromarray(np.clip(smooth + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)))
    return out


def ours(images: list, cfg: PreprocessCfg) -> torch.Tensor:
    """float32 (N, 3, crop, crop): our crop and normalization of PIL images."""
    from evaluators.decode import crop_uint8

    x = torch.stack([crop_uint8(im, cfg) for im in images]).float() / 255
    return (x - torch.tensor(cfg.mean).view(1, 3, 1, 1)) / torch.tensor(cfg.std).view(1, 3, 1, 1)


def max_difference(proc, images: list, cfg: PreprocessCfg) -> float:
    """Largest absolute difference between ``proc``'s ``pixel_values`` and ours."""
    theirs = torch.as_tensor(np.asarray(proc(images=images, return_tensors="pt")["pixel_values"]), dtype=torch.float32)
    mine = ours(images, cfg)
    if theirs.shape != mine.shape:
        return math.inf
    return float((theirs - mine).abs().max())


def _source(model_id: str) -> tuple[str, bool]:
    """(repo id or folder, is a folder)."""
    ref = model_id[len(PREFIX):]
    if not ref:
        raise InputError(f"{model_id}: give hf/<repo id> or hf/<folder>")
    return ref, Path(ref).is_dir()


def _processors(ref: str, model_id: str, download: bool):
    """(default processor, PIL-backend processor) from the folder or the local cache."""
    from transformers import AutoImageProcessor

    from evaluators.hub import offline

    try:
        with offline(not download):
            return (AutoImageProcessor.from_pretrained(ref, local_files_only=not download),
                    AutoImageProcessor.from_pretrained(ref, local_files_only=not download, backend="pil"))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{model_id}: no image processor found ({' '.join(str(exc).split())[:200]}); give a folder "
                         "with preprocessor_config.json or a repo id in the local Hugging Face cache") from None


def mapped_preprocess(ref: str, model_id: str, download: bool = False) -> tuple[PreprocessCfg, dict]:
    """The checked preprocessing of ``ref`` and what the check found
    (processor classes, largest differences from both backends)."""
    default, pil = _processors(ref, model_id, download)
    cfg = preprocess_from_processor(pil, model_id)
    images = check_images(cfg)
    exact = max_difference(pil, images, cfg)
    if not exact <= EXACT:
        raise InputError(f"{model_id}: its image processor ({type(pil).__name__}) cannot be expressed exactly by our "
                         f"preprocessing (largest difference {exact:.3g} on test images); not supported")
    return cfg, {"image_processor": type(default).__name__, "max_diff_pil_backend": exact,
                 "max_diff_default_backend": max_difference(default, images, cfg)}


def hf_model(model_id: str, weights: str | None = None, download: bool = False):
    """``hf/<repo id or folder>`` as a :class:`~evaluators.registry.LoadedModel`."""
    try:
        import transformers
        from transformers import AutoConfig, AutoModelForImageClassification
    except ImportError:
        raise InputError(f"{model_id}: Hugging Face models need transformers: pip install 'replication-bias[hf]'") from None
    from evaluators.hub import offline
    from evaluators.registry import RANDOM, LoadedModel, _load_into, _random_init, _weights_provenance, output_name

    ref, is_folder = _source(model_id)
    cfg, check = mapped_preprocess(ref, model_id, download)
    try:
        with offline(not download):
            config = AutoConfig.from_pretrained(ref, local_files_only=not download)
            if weights is None:
                model = AutoModelForImageClassification.from_pretrained(ref, local_files_only=not download)
            else:
                model = _random_init(lambda: AutoModelForImageClassification.from_config(config))
    except (OSError, ValueError) as exc:
        raise InputError(f"{model_id}: cannot load the model ({' '.join(str(exc).split())[:200]})") from None
    if weights not in (None, RANDOM):
        _load_into(model, Path(weights), model_id)
    index = label_map(config.id2label, model_id)
    classes = tuple(sorted(int(c) for c in index[index >= 0]))
    prov = {"source": "transformers", "transformers_version": transformers.__version__, "ref": ref,
            "model_class": type(model).__name__, "num_labels": len(index),
            **(_weights_provenance(None, RANDOM) if weights == RANDOM else
               _weights_provenance(Path(weights), "file") if weights else {"weights": "hf-folder" if is_folder else "hf-cache"}),
            **check, "preprocess_source": f"{check['image_processor']} mapped and checked against its PIL backend"}
    name = f"hf_{Path(ref).name}" if is_folder else output_name(model_id)
    return LoadedModel(name, ImageNetOutputs(model, index), cfg, prov,
                       classes=None if len(classes) == N_CLASSES else classes)


def hf_preprocess(model_id: str) -> PreprocessCfg:
    """The checked preprocessing of ``hf/<repo id or folder>`` without the model."""
    return mapped_preprocess(_source(model_id)[0], model_id)[0]
