"""Running the designs of a grid: in this process, over local processes, or
as Ray tasks (on a local cluster or the one at ``address``). Every design
seeds its own random stream (:func:`~replication.design.simulation.evaluate_design`),
so all backends give identical results; a progress bar on stderr counts
finished designs."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Mapping, Sequence

from tqdm.auto import tqdm

from replication.design.grid import Design
from replication.design.scenario import Scenario
from replication.design.simulation import DesignOutcome, evaluate_design
from replication.errors import InputError

BACKENDS = ("local", "ray")


def run_designs(designs: Sequence[Design], scenario: Scenario, methods: Sequence[str], *, n_studies: int,
                n_bootstrap: int, seed: int, method_options: Mapping[str, Mapping[str, Any]] | None = None,
                jobs: int = 1, backend: str = "local", address: str | None = None) -> list[DesignOutcome]:
    """Evaluate every design; outcomes in the order of ``designs``. ``jobs`` > 1
    runs that many local processes (``backend="local"``); ``backend="ray"``
    runs one Ray task per design on all the cluster's CPUs."""
    if backend not in BACKENDS:
        raise InputError(f"--backend {backend!r}: choose {', '.join(BACKENDS)}")
    if int(jobs) < 1:
        raise InputError(f"--jobs must be >= 1, got {jobs}")
    kwargs = dict(n_studies=int(n_studies), n_bootstrap=int(n_bootstrap), seed=int(seed),
                  method_options=dict(method_options or {}))
    # the largest designs first, so that no worker is left with a big one at the end
    order = sorted(range(len(designs)), key=lambda i: -designs[i].annotators * designs[i].pool_images)
    bar = tqdm(total=len(designs), desc="designs", unit="design", disable=None)
    out: dict[int, DesignOutcome] = {}
    try:
        if backend == "ray":
            out = _run_ray(designs, order, scenario, tuple(methods), kwargs, address, bar)
        elif jobs == 1 or len(designs) == 1:
            for i in order:
                out[i] = evaluate_design(designs[i], scenario, methods, **kwargs)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(int(jobs), len(designs))) as pool:
                futures = {pool.submit(evaluate_design, designs[i], scenario, tuple(methods), **kwargs): i
                           for i in order}
                for future in as_completed(futures):
                    out[futures[future]] = future.result()
                    bar.update()
    finally:
        bar.close()
    return [out[i] for i in range(len(designs))]


def _run_ray(designs, order, scenario, methods, kwargs, address, bar) -> dict[int, DesignOutcome]:
    try:
        import ray
    except ImportError:
        raise InputError("--backend ray needs Ray: pip install 'replication-bias[ray]'") from None
    started = not ray.is_initialized()
    if started:
        root = str(Path(__file__).resolve().parents[2])
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(
                     filter(None, [root, os.environ.get("PYTHONPATH")]))}})
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(evaluate_design)
        scenario_ref = ray.put(scenario)
        refs = {task.remote(designs[i], scenario_ref, methods, **kwargs): i for i in order}
        out, pending = {}, list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                out[refs[ref]] = ray.get(ref)
                bar.update()
        return out
    finally:
        if started:
            ray.shutdown()
