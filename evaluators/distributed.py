"""Running a model x dataset grid: locally, as Ray tasks, or one model across
``torchrun`` processes.

The grid is grouped by preprocessing crop key (:func:`plan_grid`): the models
of one group share one :class:`~evaluators.cache.CropCache` per dataset, so
each image is decoded once per group. A *unit* of work is (dataset, models
of one group); with ``cache="none"`` every (dataset, model) is its own unit.

* ``backend="local"``: the units run one after another in this process.
* ``backend="ray"``: each unit is a Ray task (``num_gpus=1`` when the cluster
  has GPUs), on a local cluster or the one at ``address``. With a disk cache,
  one task per (dataset, group) fills the cache and one task per (dataset,
  model) then reads it, so a group's models run in parallel. The tasks call
  the same :func:`~evaluators.engine.evaluate_source` with the same options,
  so the files they write are those of the local backend.
* ``torchrun``: :func:`torchrun_shard` reads ``RANK``/``WORLD_SIZE``, joins
  the process group (NCCL on GPUs, gloo on CPUs) and returns the
  ``(rank, world)`` shard and a barrier for ``evaluate_source``: each
  process scores a contiguous block of chunks, rank 0 writes the outputs in
  sample order. No padding sampler: every image is scored exactly once.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from evaluators.cache import CACHE_MODES, CropCache, group_by_crop_key
from evaluators.datasets.base import ImageSource
from evaluators.engine import EngineOptions, evaluate_source, result_identity
from evaluators.outputs import finished_result, result_paths
from evaluators.runner import resolve_device
from evaluators.preprocess import PreprocessCfg
from replication.errors import InputError

log = logging.getLogger(__name__)

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class DatasetSpec:
    """How to open one dataset copy (see :func:`evaluators.datasets.open_dataset`)
    and the manifest check already made of it. ``source``: the reader when
    already open in this process (not sent to Ray workers, which reopen it)."""

    dataset: str
    root: str
    layout: str = "auto"
    labels: str | None = None
    split: str | None = None
    manifest_check: dict | None = None
    source: object = field(default=None, compare=False, repr=False)
    real_labels: str | None = None

    def open(self) -> ImageSource:
        """The reader: ``source`` when already open, else :func:`open_dataset`."""
        from evaluators.datasets import open_dataset

        if self.source is not None:
            return self.source
        return open_dataset(self.dataset, self.root, layout=self.layout, labels=self.labels, split=self.split,
                            real_labels=self.real_labels)


@dataclass(frozen=True)
class GridOptions:
    """Options shared by every (model, dataset) of a grid: model loading
    (``weights``, ``download``, preprocessing ``overrides``), the decode
    cache (``cache`` none|memory|disk, ``cache_dir``) and how
    :func:`~evaluators.engine.evaluate_source` runs (``engine``)."""

    out: str
    weights: str | None = None
    download: bool = False
    overrides: dict = field(default_factory=dict)
    cache: str = "none"
    cache_dir: str | None = None
    engine: EngineOptions = field(default_factory=EngineOptions)


def _load(model_id: str, opts: GridOptions):
    from evaluators.registry import create_model

    return create_model(model_id, weights=opts.weights, download=opts.download, preprocess=opts.overrides)


def _preprocess(model_id: str, opts: GridOptions) -> PreprocessCfg:
    """The resolved preprocessing of ``model_id``, without loading published weights."""
    from evaluators.registry import model_preprocess

    return model_preprocess(model_id, weights=opts.weights, download=opts.download, preprocess=opts.overrides)


def _filled_cache(source: ImageSource, dataset: str, cfg: PreprocessCfg, opts: GridOptions, cache_dir: str | None) -> CropCache:
    """The :class:`CropCache` of ``source`` for ``cfg``'s crop key, filled.
    Under torchrun (``opts.engine.shard``) each rank fills its block of the
    disk cache and all wait at the barrier until the whole cache exists."""
    eng = opts.engine
    cache = CropCache(source, cfg, dataset=dataset, cache_dir=cache_dir, chunk_size=eng.chunk_size)
    cache.fill(workers=eng.workers, progress=eng.progress, part=eng.shard)
    if eng.shard[1] > 1:
        eng.barrier()
    return cache


def plan_grid(model_ids: list[str], opts: GridOptions) -> dict[str, list[str]]:
    """``{crop key: [model ids]}``. Preprocessing is read from the model's
    config, without building it."""
    return group_by_crop_key({m: _preprocess(m, opts) for m in model_ids})


def _weights_known_before_building(model_id: str, opts: GridOptions) -> str | None:
    """The ``weights`` entry of the model's result identity when it is known
    without building the model: the SHA-256 of a weights or TorchScript file,
    or ``"random"``; None for published weights."""
    from evaluators.registry import RANDOM, file_digest

    if model_id.startswith("torchscript:"):
        path = Path(model_id.split(":", 1)[1])
        return file_digest(path) if path.is_file() else None
    if opts.weights == RANDOM:
        return RANDOM
    return file_digest(opts.weights) if opts.weights and Path(opts.weights).is_file() else None


def check_finished(datasets: list[DatasetSpec], model_ids: list[str], opts: GridOptions) -> None:
    """Before any work: InputError for a finished result in ``opts.out``
    made for other settings (see :func:`~evaluators.engine.result_identity`;
    what is known without building the models is compared), unless ``force``."""
    from evaluators.registry import output_name

    if opts.engine.force:
        return
    for spec in datasets:
        listing = None
        for model_id in model_ids:
            name = output_name(model_id)
            if not all(p.is_file() for p in result_paths(opts.out, spec.dataset, name)):
                continue
            listing = listing or spec.open().listing_sha256()
            identity = result_identity(model_id, _preprocess(model_id, opts), listing, opts.engine,
                                       weights=_weights_known_before_building(model_id, opts))
            finished_result(opts.out, spec.dataset, name, identity)


def _done(model_name: str, spec: DatasetSpec, opts: GridOptions) -> bool:
    paths = result_paths(opts.out, spec.dataset, model_name)
    return all(p.exists() for p in paths) and not opts.engine.force


def fill_cache(spec: DatasetSpec, model_id: str, opts: GridOptions) -> str:
    """Fill the disk cache of ``spec`` for ``model_id``'s crop key; returns its key."""
    return _filled_cache(spec.open(), spec.dataset, _preprocess(model_id, opts), opts, opts.cache_dir).key


def evaluate_unit(spec: DatasetSpec, model_ids: list[str], opts: GridOptions, *_after: object) -> list[dict]:
    """Evaluate ``model_ids`` (one crop-key group) on one dataset, decoding
    each image once when ``opts.cache`` is memory or disk. ``_after``: Ray
    object refs this task waits for (a cache fill)."""
    source = spec.open()
    cache = None
    results = []
    for model_id in model_ids:
        t0 = time.perf_counter()
        lm = _load(model_id, opts)
        load_s = time.perf_counter() - t0
        crops = None
        if opts.cache != "none" and not _done(lm.name, spec, opts):
            if cache is None:
                cache = _filled_cache(source, spec.dataset, lm.preprocess, opts,
                                      opts.cache_dir if opts.cache == "disk" else None)
            crops = cache.crops(pin=opts.cache == "memory" and resolve_device(opts.engine.device).type == "cuda")
        res = evaluate_source(lm, source, spec.dataset, opts.out, opts.engine, manifest_check=spec.manifest_check,
                              crops=crops)
        results.append({**res, "model_load_s": load_s,
                         "decode_s": getattr(cache, "decode_s_", None) if crops is not None else None})
        del lm
    return results


def grid_units(datasets: list[DatasetSpec], model_ids: list[str], opts: GridOptions) -> list[tuple[DatasetSpec, list[str]]]:
    """The units of work, grouped by crop key when a cache is used."""
    if opts.cache not in CACHE_MODES:
        raise InputError(f"--cache {opts.cache!r}: choose {', '.join(CACHE_MODES)}")
    if opts.cache == "disk" and not opts.cache_dir:
        raise InputError("--cache disk needs --cache-dir DIR")
    if opts.cache == "none":
        return [(ds, [m]) for ds in datasets for m in model_ids]
    groups = plan_grid(model_ids, opts)
    return [(ds, ids) for ds in datasets for ids in groups.values()]


def run_grid(datasets: list[DatasetSpec], model_ids: list[str], opts: GridOptions, *, backend: str = "local",
             address: str | None = None) -> list[dict]:
    """Evaluate every model on every dataset; returns the sidecar dicts
    (plus ``model_load_s``, ``decode_s``) in (dataset, group) order."""
    if backend not in BACKENDS:
        raise InputError(f"--backend {backend!r}: choose {', '.join(BACKENDS)}")
    units = grid_units(datasets, model_ids, opts)
    check_finished(datasets, model_ids, opts)
    if backend == "local":
        return [r for ds, ids in units for r in evaluate_unit(ds, ids, opts)]
    return _run_ray(units, opts, address)


def _run_ray(units, opts: GridOptions, address: str | None) -> list[dict]:
    try:
        import ray
    except ImportError:
        raise InputError("--backend ray needs Ray: pip install 'replication-bias[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(
                     filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")]))}})
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(num_gpus=gpus, max_retries=0)(evaluate_unit)
        opts_r = replace(opts, engine=replace(opts.engine, progress=False))
        refs = []
        for ds, ids in units:
            ds = replace(ds, source=None)
            if opts.cache == "disk" and len(ids) > 1:
                filled = ray.remote(num_cpus=1, max_retries=0)(fill_cache).remote(ds, ids[0], opts_r)
                refs += [task.remote(ds, [m], opts_r, filled) for m in ids]
            else:
                refs.append(task.remote(ds, ids, opts_r))
        return [r for part in ray.get(refs) for r in part]
    finally:
        if started:
            ray.shutdown()


def torchrun_shard(device: str = "auto") -> tuple[tuple[int, int], object, str]:
    """``((rank, world), barrier, device)`` for this process. Under torchrun
    (``WORLD_SIZE`` > 1) joins the default process group: NCCL with one GPU
    per local rank when CUDA is available and ``device`` allows it, else gloo
    on the CPU. Outside torchrun: ``((0, 1), None, device)``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return (0, 1), None, device
    import torch
    import torch.distributed as dist

    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return (dist.get_rank(), dist.get_world_size()), dist.barrier, device
