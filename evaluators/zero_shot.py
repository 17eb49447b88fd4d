"""open_clip models as zero-shot ImageNet classifiers: ``open_clip/<architecture>:<pretrained tag>``.

The classifier is CLIP's (Radford et al. 2021) as open_clip evaluates it:
each class's weight is the normalized mean of the normalized text
embeddings of its name in the 80 ImageNet prompt templates
(``open_clip.zero_shot_metadata``: ``IMAGENET_CLASSNAMES``, CLIP's curated
names, and ``OPENAI_IMAGENET_TEMPLATES``); logits are
``logit_scale.exp() * normalize(image features) @ head (+ logit_bias)``.

The head, (embed_dim, 1000), is computed once and cached on disk under
``$REPLICATION_CACHE/zero_shot_heads/`` (default
``~/.cache/replication-bias``), keyed by architecture, tag, the weights'
sha256, templates, class names and context length. Weights come from the
local cache (the Hugging Face Hub cache or ``~/.cache/clip``) or
``--weights FILE``; nothing is downloaded unless ``download=True``.

Preprocessing is open_clip's own (``model.visual.preprocess_cfg``: size,
mean, std, interpolation, resize mode) mapped onto :class:`PreprocessCfg`:
``shortest`` is a resize of the shorter side to the image size and a
centre crop of the same size; ``squash`` resizes both sides; ``longest``
(pad to a square) has no equivalent and is refused.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from evaluators.preprocess import PreprocessCfg
from replication.errors import InputError

log = logging.getLogger(__name__)

PREFIX = "open_clip/"
CACHE_ENV = "REPLICATION_CACHE"
#: open_clip pretrained-config keys that are preprocessing
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")
#: model classes whose image tower alone gives the image embedding
_CONTRASTIVE = ("CLIP", "CustomTextCLIP")


def cache_dir() -> Path:
    """``$REPLICATION_CACHE``, default ``~/.cache/replication-bias``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "replication-bias")


def imagenet_prompts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(class names, templates): open_clip's 1000 ImageNet class names and
    its 80 OpenAI templates as ``str.format`` patterns (``"a photo of a {}."``)."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

    return tuple(IMAGENET_CLASSNAMES), tuple(t("{}") for t in OPENAI_IMAGENET_TEMPLATES)


def text_head(model: nn.Module, tokenizer, classnames: tuple[str, ...], templates: tuple[str, ...], *,
              device: torch.device | str = "cpu", batch_size: int = 2048, progress: bool = True) -> torch.Tensor:
    """Zero-shot head, float32 (embed_dim, n_classes) on the CPU: per class the
    normalized mean over templates of the normalized text embeddings."""
    from tqdm import tqdm

    prompts = [t.format(c) for c in classnames for t in templates]
    model = model.to(device).eval()
    parts = []
    with torch.inference_mode():
        for s in tqdm(range(0, len(prompts), batch_size), desc="zero-shot head", unit="batch",
                      disable=None if progress else True):
            emb = model.encode_text(tokenizer(prompts[s:s + batch_size]).to(device)).float()
            parts.append(F.normalize(emb, dim=-1).cpu())
    emb = torch.cat(parts).reshape(len(classnames), len(templates), -1).mean(dim=1)
    return F.normalize(emb, dim=-1).T.contiguous()


class ZeroShotClassifier(nn.Module):
    """Image tower + fixed text head: normalized images (N, 3, H, W) ->
    logits (N, n_classes) = ``scale * normalize(visual(x)) @ head + bias``,
    the product in float32 even under autocast."""

    def __init__(self, visual: nn.Module, head: torch.Tensor, scale: float, bias: float | None = None):
        super().__init__()
        self.visual = visual
        self.register_buffer("head", head.float())
        self.scale = float(scale)
        self.bias = None if bias is None else float(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, n_classes) for normalized images (N, 3, H, W)."""
        features = self.visual(x)
        with torch.autocast(x.device.type, enabled=False):
            logits = self.scale * F.normalize(features.float(), dim=-1) @ self.head
        return logits if self.bias is None else logits + self.bias


def parse_model_id(model_id: str) -> tuple[str, str | None]:
    """``open_clip/<arch>:<tag>`` -> (arch, tag); the tag may be omitted
    (then weights come from ``--weights`` or are random)."""
    import open_clip

    arch, _, tag = model_id[len(PREFIX):].partition(":")
    if arch not in open_clip.list_models():
        raise InputError(f"{model_id}: unknown open_clip architecture {arch!r} (open_clip.list_models() has "
                         f"{len(open_clip.list_models())}, e.g. ViT-B-32, ViT-L-14, RN50)")
    if tag and tag not in open_clip.list_pretrained_tags_by_model(arch):
        raise InputError(f"{model_id}: unknown pretrained tag {tag!r} for {arch}; choose from "
                         f"{', '.join(open_clip.list_pretrained_tags_by_model(arch))}")
    return arch, tag or None


def preprocess_from_open_clip(pp: dict, model_id: str) -> PreprocessCfg:
    """open_clip's eval transform (``model.visual.preprocess_cfg``) as a
    :class:`PreprocessCfg`; InputError for what has no equivalent."""
    size = pp["size"]
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            raise InputError(f"{model_id}: non-square input {tuple(size)} is not supported")
        size = size[0]
    mode = pp.get("resize_mode", "shortest")
    if mode not in ("shortest", "squash"):
        raise InputError(f"{model_id}: open_clip resize_mode {mode!r} (pad to a square) is not supported")
    interpolation = "bilinear" if pp.get("interpolation") == "bilinear" else "bicubic"  # open_clip's rule
    return PreprocessCfg(crop_size=int(size), resize_size=int(size), interpolation=interpolation, antialias=True,
                         mean=tuple(float(v) for v in pp["mean"]), std=tuple(float(v) for v in pp["std"]),
                         resize_mode="shorter" if mode == "shortest" else "squash")


def cached_weights(arch: str, tag: str) -> tuple[Path | None, str]:
    """(the tag's weights file in the local cache or None, where to put it)."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME
    from open_clip.pretrained import get_pretrained_cfg

    from evaluators.hub import cached_file, hub_cache_dir

    pcfg = get_pretrained_cfg(arch, tag)
    places = []
    if pcfg.get("hf_hub"):
        repo, name = os.path.split(pcfg["hf_hub"])
        names = (name,) if name else (HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME)
        found = cached_file(repo, names)
        if found is not None:
            return found, ""
        places.append(f"{' or '.join(names)} of hf.co/{repo} in the Hugging Face cache ({hub_cache_dir()})")
    if pcfg.get("url"):
        path = Path.home() / ".cache" / "clip" / os.path.basename(pcfg["url"])
        if path.is_file():
            return path, ""
        places.append(f"{pcfg['url']} at {path}")
    return None, "; or ".join(places)


def _build(arch: str, tag: str | None, weights: str | None, download: bool, model_id: str):
    """(open_clip model, weights path or None) for the weights choice."""
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg

    from evaluators.hub import offline
    from evaluators.registry import RANDOM, _random_init

    pcfg = get_pretrained_cfg(arch, tag) if tag else {}
    kw = {"force_quick_gelu": bool(pcfg.get("quick_gelu", False)), "pretrained_text": False,
          "force_preprocess_cfg": {k: pcfg[k] for k in _PREPROCESS_KEYS if k in pcfg}}
    if weights == RANDOM:
        return _random_init(lambda: open_clip.create_model(arch, pretrained=None, **kw)), None
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise InputError(f"{path}: weights file not found")
    elif tag is None:
        raise InputError(f"{model_id}: no pretrained tag: give open_clip/{arch}:<tag> "
                         f"({', '.join(open_clip.list_pretrained_tags_by_model(arch)) or 'no published tags'}) "
                         "or --weights FILE")
    else:
        path, where = cached_weights(arch, tag)
        if path is None and not download:
            raise InputError(f"{model_id}: weights not in the local cache: put {where}; or pass --weights FILE, "
                             "or --download when online")
        if path is None:
            model = open_clip.create_model(arch, pretrained=tag, **kw)
            return model, cached_weights(arch, tag)[0]
    try:
        with offline():
            return open_clip.create_model(arch, pretrained=str(path), **kw), path
    except (RuntimeError, OSError, ValueError) as exc:
        raise InputError(f"{model_id}: cannot build it from {path}: {str(exc).strip().splitlines()[0]}") from None


def _head_key(arch: str, tag: str | None, weights_sha256: str | None, classnames, templates, context_length) -> dict:
    return {"arch": arch, "tag": tag, "weights_sha256": weights_sha256, "context_length": context_length,
            "templates": list(templates), "classnames": list(classnames)}


def cached_head(model: nn.Module, tokenizer, key: dict, *, progress: bool = True) -> tuple[torch.Tensor, Path, bool]:
    """(head, cache file, whether it was read from the cache): the head for
    ``key`` from the disk cache, else computed (on CUDA when available) and
    written there atomically."""
    from replication.io.atomic import atomic_path

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    path = cache_dir() / "zero_shot_heads" / f"{key['arch']}-{digest}.pt"
    if path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if stored.get("key") == key:
                return stored["head"], path, True
        except Exception as exc:  # noqa: BLE001 - a damaged cache entry is recomputed
            log.warning("%s: unreadable zero-shot head cache entry (%s); recomputing", path, exc)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    head = text_head(model, tokenizer, tuple(key["classnames"]), tuple(key["templates"]), device=device,
                     progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({"key": key, "head": head}, tmp)
    return head, path, False


def open_clip_model(model_id: str, weights: str | None = None, download: bool = False):
    """``open_clip/<arch>:<tag>`` as a zero-shot ImageNet classifier (:class:`LoadedModel`)."""
    try:
        import open_clip
    except ImportError:
        raise InputError(f"{model_id}: open_clip models need open_clip_torch: pip install 'replication-bias[clip]'") from None
    from evaluators.hub import offline
    from evaluators.registry import RANDOM, LoadedModel, _weights_provenance, output_name

    arch, tag = parse_model_id(model_id)
    model, path = _build(arch, tag, weights, download, model_id)
    if type(model).__name__ not in _CONTRASTIVE:
        raise InputError(f"{model_id}: open_clip model type {type(model).__name__} is not supported "
                         f"(contrastive image-text models only: {', '.join(_CONTRASTIVE)})")
    cfg = preprocess_from_open_clip(model.visual.preprocess_cfg, model_id)
    prov = {"source": "open_clip", "open_clip_version": open_clip.__version__, "arch": arch, "pretrained_tag": tag,
            **_weights_provenance(path, RANDOM if weights == RANDOM else ("file" if weights else "open_clip-cache"))}
    with offline(not download):
        tokenizer = open_clip.get_tokenizer(arch)
    classnames, templates = imagenet_prompts()
    key = _head_key(arch, tag, prov["weights_sha256"] if path else f"random:{prov['random_seed']}", classnames,
                    templates, getattr(tokenizer, "context_length", None))
    head, head_path, reused = cached_head(model, tokenizer, key)
    bias = None if getattr(model, "logit_bias", None) is None else float(model.logit_bias.detach())
    module = ZeroShotClassifier(model.visual, head, float(model.logit_scale.detach().exp()), bias)
    prov.update({"classifier": "zero-shot: mean of normalized text embeddings over templates",
                 "classnames": "open_clip.zero_shot_metadata.IMAGENET_CLASSNAMES",
                 "templates": f"open_clip.zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES ({len(templates)})",
                 "head_cache": str(head_path), "head_from_cache": reused, "logit_scale": module.scale,
                 "preprocess_source": f"open_clip preprocess_cfg {dict(model.visual.preprocess_cfg)}"})
    return LoadedModel(output_name(model_id), module, cfg, prov)


def open_clip_preprocess(model_id: str) -> PreprocessCfg:
    """The preprocessing of ``open_clip/<arch>:<tag>`` without weights or a head."""
    from evaluators.registry import RANDOM

    arch, tag = parse_model_id(model_id)
    model, _ = _build(arch, tag, RANDOM, False, model_id)
    return preprocess_from_open_clip(model.visual.preprocess_cfg, model_id)
