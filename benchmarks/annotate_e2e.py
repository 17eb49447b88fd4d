"""The whole collection loop with simulated annotators, end to end:

image files -> ``annotate plan`` -> ``annotate serve`` (a real server process)
-> annotators voting through HTTP, each selecting an image with its true
selection frequency s (and some careless ones who click at random and fail
the controls) -> ``annotate export`` with quality control -> ``annotate
select`` (MatchedFrequency on the observed k/n) -> per-model correctness
simulated from the true s (``replication.simulate``'s accuracy curves) ->
``replication bias`` -> compared with the simulated truth.

    python benchmarks/annotate_e2e.py [--classes 100] [--reference 50] [--candidates 100] [--per-class 25]

Prints the truth, every method's estimate and interval, the quality-control
numbers and the throughput. The test suite runs a smaller study through the
same function (``tests/test_annotate_e2e.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A port of 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``replication annotate serve`` in its own process (so it can be killed with SIGKILL)."""

    def __init__(self, plan_dir: Path, db_url: str, admin_token: str = "admin-secret", port: int | None = None):
        import tempfile

        self.plan_dir, self.db_url, self.admin_token = plan_dir, db_url, admin_token
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = Path(tempfile.mkstemp(prefix="annotate-serve-", suffix=".log")[1])  # the server's output

    def start(self, timeout: float = 180) -> "ServerProcess":
        import requests

        env = {**os.environ, "PYTHONPATH": str(REPO), "REPLICATION_ANNOTATE_ADMIN_TOKEN": self.admin_token}
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "replication", "annotate", "serve", "--plan",
                                          str(self.plan_dir), "--db", self.db_url, "--port", str(self.port)],
                                         env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.base}/healthz", timeout=5).ok:
                    return self
            except requests.RequestException:  # not listening yet, or busy loading the plan
                time.sleep(0.1)
        raise RuntimeError("the server did not start in time")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Terminate (SIGKILL if it does not stop) and remove the log."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.unlink(missing_ok=True)


@dataclass(frozen=True)
class LoopConfig:
    """Size and behaviour of the simulated collection.

    classes, reference, candidates : classes, and reference and candidate images per class
    per_class : replication images drawn per class (MatchedFrequency)
    careful, careless : annotators; careless ones select each image with probability 0.5
    annotators : votes per image (Recht et al.: 10)
    reference_prior, candidate_prior : Beta(a, b) of the true selection frequency
    negative_rate : how often a careful annotator selects an image of another class
    shift : true distribution shift (probit units), as in replication.simulate
    models : simulated models
    bootstrap : replicates of replication bias
    methods : methods of replication bias
    concurrent : every annotator in its own thread (else in turn, reproducibly)
    """

    classes: int = 100
    reference: int = 50
    candidates: int = 100
    per_class: int = 25
    careful: int = 16
    careless: int = 3
    annotators: int = 10
    reference_prior: tuple[float, float] = (8.0, 2.0)
    candidate_prior: tuple[float, float] = (2.0, 2.0)
    negative_rate: float = 0.02
    shift: float = 0.11
    models: int = 20
    bootstrap: int = 200
    methods: str = "naive,jackknife,betabinomial,npmle"
    concurrent: bool = False
    seed: int = 0


def _images(root: Path, cfg: LoopConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Tiny real JPEGs (one per class and dataset, shared by hard links) and the true s of each image."""
    from PIL import Image

    rows = []
    for ds, n, prior in (("imagenet-val", cfg.reference, cfg.reference_prior),
                         ("candidates", cfg.candidates, cfg.candidate_prior)):
        s = rng.beta(*prior, size=(cfg.classes, n))
        for c in range(cfg.classes):
            folder = root / ds / str(c)
            folder.mkdir(parents=True, exist_ok=True)
            first = folder / "0.jpg"
            color = tuple(int(v) for v in np.random.default_rng(zlib.crc32(f"{ds}{c}".encode())).integers(0, 255, 3))
            Image.new("RGB", (8, 8), color).save(first, "JPEG")
            for i in range(n):
                path = folder / f"{i}.jpg"
                if i:
                    os.link(first, path)
                rows.append((ds, f"{ds[:3]}{c:03d}_{i:03d}", c, str(path), s[c, i]))
    return pd.DataFrame(rows, columns=["dataset", "image_id", "class_id", "path", "true_s"])


def _classes(cfg: LoopConfig, path: Path) -> Path:
    pd.DataFrame({"class_id": range(cfg.classes), "names": [f"class {c}" for c in range(cfg.classes)],
                  "gloss": ["a simulated class"] * cfg.classes}).to_csv(path, index=False)
    return path


class SimulatedAnnotator:
    """Votes through HTTP: selects an image of the task's class with its true s
    (images to label and positive controls alike), an image of another class
    (a negative control) with ``negative_rate``; a careless one selects
    everything with probability 0.5. ``truth`` maps an image URL to (class, s);
    the task's class is read from its name ``class C``."""

    def __init__(self, base: str, token: str, truth: dict, careless: bool, negative_rate: float, seed: int):
        import requests

        self.base, self.token, self.truth, self.careless = base, token, truth, careless
        self.negative_rate, self.rng = negative_rate, np.random.default_rng(seed)
        self.session = requests.Session()
        self.task = self.session.get(f"{base}/api/a/{token}/next", timeout=60).json()["task"]
        self.submitted = 0

    def step(self) -> bool:
        """Answer the current task and take the next; False when none was left."""
        task = self.task
        if task is None:
            return False
        target = int(task["class_names"][0].split()[-1])
        p = np.array([s if c == target else self.negative_rate for c, s in map(self.truth.get, task["images"])])
        p = np.full(len(p), 0.5) if self.careless else p
        picked = [int(i) for i in np.flatnonzero(self.rng.random(len(p)) < p)]
        res = self.session.post(f"{self.base}/api/a/{self.token}/submit", timeout=60,
                                json={"assignment_id": task["assignment_id"], "nonce": task["nonce"], "selected": picked})
        res.raise_for_status()
        self.submitted += 1
        self.task = res.json()["task"]
        return True


def _vote(annotators: list[SimulatedAnnotator], concurrent: bool) -> None:
    """All annotators until no task is left: in turn from one thread (reproducible), or each in its own thread."""
    if not concurrent:
        while sum(a.step() for a in annotators):
            pass
        return
    errors: list[BaseException] = []

    def work(a: SimulatedAnnotator) -> None:
        try:
            while a.step():
                pass
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(a,), daemon=True) for a in annotators]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"annotators failed: {errors[:3]}")


def _cli(*argv) -> str:
    """Run ``replication`` in-process; returns stdout; raises on failure."""
    import contextlib
    import io

    from replication.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    if code != 0:
        raise RuntimeError(f"replication {' '.join(map(str, argv))}: {err.getvalue().strip()}")
    return out.getvalue()


def run_loop(workdir: Path, cfg: LoopConfig = LoopConfig(), db_url: str | None = None) -> dict:
    """Run the whole loop (module doc) in ``workdir``; returns the numbers."""
    from replication.annotate import store
    from replication.annotate.db import Database
    from replication.simulate import SimulationConfig, accuracy_curve, model_curves, population_truth

    rng = np.random.default_rng(cfg.seed)
    workdir.mkdir(parents=True, exist_ok=True)
    images = _images(workdir / "images", cfg, rng)
    images.drop(columns="true_s").to_csv(workdir / "images.csv", index=False)
    t0 = time.perf_counter()
    _cli("annotate", "plan", "--images", workdir / "images.csv", "--out", workdir / "plan", "--annotators",
         cfg.annotators, "--seed", cfg.seed, "--classes", _classes(cfg, workdir / "classes.csv"))
    db_url = db_url or f"sqlite:///{workdir / 'votes.db'}"
    names = [f"careful{i:02d}" for i in range(cfg.careful)] + [f"careless{i:02d}" for i in range(cfg.careless)]
    db = Database(db_url)
    db.create_schema()
    tokens = dict(store.add_annotators(db, names))
    server = ServerProcess(workdir / "plan", db_url).start()
    try:
        secret = db.meta("image_secret")
        plan_images = pd.read_csv(workdir / "plan" / "images.csv", dtype={"image_id": str})
        s_of = images.set_index(["dataset", "image_id"])["true_s"]
        true_s = s_of.loc[list(zip(plan_images["dataset"], plan_images["image_id"]))].to_numpy()
        truth = {f"/img/{store.image_key(secret, no)}": (c, s)
                 for no, c, s in zip(plan_images["image_no"], plan_images["class_id"], true_s)}
        t1 = time.perf_counter()
        try:
            _vote([SimulatedAnnotator(server.base, tokens[n], truth, n.startswith("careless"), cfg.negative_rate,
                                      zlib.crc32(n.encode())) for n in names], cfg.concurrent)
        except Exception as exc:
            raise RuntimeError(f"{exc}; the server said: {server.log.read_text()[-3000:]}") from None
        http_s = time.perf_counter() - t1
    finally:
        server.stop()
    n_votes = store.progress(db)["votes"]
    db.close()
    export = _cli("annotate", "export", "--db", db_url, "--out", workdir / "collected.csv",
                  "--votes-out", workdir / "votes.csv", "--qc-out", workdir / "qc.json")
    select = _cli("annotate", "select", "--annotations", workdir / "collected.csv", "--reference", "imagenet-val",
                  "--candidates", "candidates", "--per-class", cfg.per_class, "--seed", cfg.seed,
                  "--out", workdir / "annotations.csv")
    ann = pd.read_csv(workdir / "annotations.csv", dtype={"image_id": str})
    # correctness from the true s of each image, with replication.simulate's accuracy curves and truth
    sim = SimulationConfig(reference_prior=cfg.reference_prior, candidate_prior=cfg.candidate_prior,
                           shift=cfg.shift, n_models=cfg.models)
    curves = model_curves(sim, rng)
    source = ann["dataset"].replace({"imagenetv2-matched-frequency": "candidates"})
    s = s_of.loc[list(zip(source, ann["image_id"]))].to_numpy()
    rep = (ann["dataset"] == "imagenetv2-matched-frequency").to_numpy()
    p = np.where(rep[:, None], accuracy_curve(s, curves, sim.pivot, sim.shift), accuracy_curve(s, curves, sim.pivot))
    correct = pd.concat([ann[["dataset", "image_id"]].assign(label=ann["class_id"]),
                         pd.DataFrame((rng.random(p.shape) < p).astype(np.int8), columns=list(curves.index))], axis=1)
    correct.to_parquet(workdir / "correct.parquet", index=False)
    truth = population_truth(replace(sim), curves, s[rep])
    _cli("bias", "--annotations", workdir / "annotations.csv", "--correct", workdir / "correct.parquet",
         "--bootstrap", cfg.bootstrap, "--methods", cfg.methods, "--seed", cfg.seed, "--json", workdir / "bias.json")
    bias = json.loads((workdir / "bias.json").read_text())
    qc = json.loads((workdir / "qc.json").read_text())
    return {
        "true_mean_gap": float(truth["gap"].mean()),
        "expected_raw_gap": float(truth["expected_raw_gap"].mean()),
        "raw_mean_gap": bias["summary"]["mean_gap"],
        "adjusted": bias["summary"]["adjusted_mean_gap"],
        "votes": int(n_votes), "http_seconds": http_s, "total_seconds": time.perf_counter() - t0,
        "reference_images": int((~rep).sum()), "replication_images": int(rep.sum()),
        "qc": {k: qc[k] for k in ("n_annotators", "n_annotators_dropped", "n_label_votes", "n_label_votes_dropped")},
        "dropped": sorted(u["annotator_id"] for u in qc["units"] if not u["accepted"]),
        "log": export + select,
    }


def main(argv: list[str] | None = None) -> int:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for field, default in LoopConfig().__dict__.items():
        if isinstance(default, bool):
            ap.add_argument(f"--{field.replace('_', '-')}", action="store_true")
        elif isinstance(default, (int, float, str)):
            ap.add_argument(f"--{field.replace('_', '-')}", type=type(default), default=default)
    ap.add_argument("--workdir", type=Path, default=None, help="keep the files here (default: a temporary folder)")
    args = ap.parse_args(argv)
    cfg = LoopConfig(**{k: getattr(args, k) for k in LoopConfig().__dict__ if hasattr(args, k)})
    with tempfile.TemporaryDirectory() as tmp:
        res = run_loop(args.workdir or Path(tmp), cfg)
    print(res.pop("log").strip())
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
