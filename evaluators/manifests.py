"""Dataset manifests (``data_manifests/<id>.json``) and the check of a user's
copy against them.

:func:`check_dataset` compares an :class:`ImageSource` with its manifest and
returns a :class:`ManifestCheck` listing every difference: total count, each
class whose image count is off (a missing class folder shows as a class with
0 images), missing ids where the label file names them,
and whatever the reader could not use (extra folders, stray files).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from replication.classes import N_CLASSES, imagenet_classes
from evaluators.datasets.base import ImageSource
from evaluators.registry import file_digest
from replication.errors import InputError
from replication.io.tables import DATASET_IDS


def load_manifest(dataset_id: str) -> dict:
    """The manifest of ``dataset_id`` (one of ``DATASET_IDS``)."""
    if dataset_id not in DATASET_IDS:
        raise InputError(f"unknown dataset {dataset_id!r}; choose from {', '.join(DATASET_IDS)}")
    return json.loads(resources.files("data_manifests").joinpath(f"{dataset_id}.json").read_text())


@dataclass
class ManifestCheck:
    """Result of comparing a dataset copy with its manifest."""

    dataset: str
    layout: str
    root: str
    expected_images: int
    found_images: int
    differences: list[str] = field(default_factory=list)
    allow_partial: bool = False

    @property
    def ok(self) -> bool:
        """True when no difference from the manifest was found."""
        return not self.differences

    def to_dict(self) -> dict:
        """JSON-ready fields plus ``ok``."""
        return {**asdict(self), "ok": self.ok}

    def summary(self) -> str:
        """One line: dataset, root, layout, image counts and whether it matches."""
        head = f"{self.dataset} at {self.root} ({self.layout}): {self.found_images} images, manifest {self.expected_images}"
        if self.ok:
            return head + ": matches the manifest"
        return head + f": {len(self.differences)} difference(s)"


def check_dataset(dataset_id: str, source: ImageSource) -> ManifestCheck:
    """Compare ``source`` with the manifest of ``dataset_id``."""
    man = load_manifest(dataset_id)
    diffs: list[str] = []
    n = len(source)
    if n != man["n_images"]:
        diffs.append(f"{n} images found, manifest expects {man['n_images']}")
    counts = source.class_counts()
    wnids = imagenet_classes().wnids
    folder_names = source.layout in ("imagenetv2-folder", "imagenetv2-tar")
    expected = man.get("class_counts", man.get("images_per_class"))
    if expected is not None:
        expected = np.broadcast_to(np.asarray(expected), counts.shape)
        for c in np.flatnonzero(counts != expected):
            where = f"class folder {c}/" if folder_names else f"class {c} ({wnids[c]})"
            if counts[c] == 0:
                diffs.append(f"{where}: missing (0 of {expected[c]} images)")
            else:
                diffs.append(f"{where}: {counts[c]} images, expected {expected[c]}")
    else:  # per-class counts unpublished: every class of the dataset present, no other class
        diffs += _class_coverage(man, source, counts)
    missing = getattr(source, "missing_ids", None)
    if missing is not None:
        diffs += [f"image missing: {i}" for i in missing()]
    exts = tuple(man.get("extensions", ()))
    if exts and source.layout != "hf":
        odd = [s.location for s in source.samples if not s.location.lower().endswith(exts)]
        diffs += [f"unexpected file extension (manifest: {', '.join(exts)}): {loc}" for loc in odd]
    diffs += list(source.problems)
    return ManifestCheck(dataset_id, source.layout, str(source.root), man["n_images"], n, diffs)


def _class_coverage(man: dict, source: ImageSource, counts: np.ndarray) -> list[str]:
    """Differences in which classes a copy holds, for a manifest without
    per-class counts: classes outside the dataset's (``classes``, else all
    1000), classes without an image (an image counts for each of its
    ``targets``), and a class subset other than the manifest's."""
    wnids = imagenet_classes().wnids
    allowed = np.zeros(len(counts), dtype=bool)
    allowed[man.get("classes", slice(None))] = True
    covered = np.zeros(len(counts), dtype=bool)
    covered[[c for s in source.samples for c in (s.targets or (s.label,))]] = True
    out = [f"class {c} ({wnids[c]}): {counts[c]} images, but it is not a class of {man['id']}"
           for c in np.flatnonzero(~allowed & (counts > 0))]
    out += [f"class {c} ({wnids[c]}): missing (no images)" for c in np.flatnonzero(allowed & ~covered)]
    subset = getattr(source, "class_subset", None)
    if man.get("classes") is not None and subset is not None and list(subset) != list(man["classes"]):
        out.append(f"the copy's class subset ({len(subset)} classes) differs from the manifest's ({len(man['classes'])})")
    return out


def check_archive(dataset_id: str, path: str | Path) -> list[str]:
    """Checksum differences of an archive named in the manifest (empty when it
    matches or the manifest publishes no checksum for it)."""
    path = Path(path)
    for arch in load_manifest(dataset_id).get("archives", []):
        if arch["name"] != path.name:
            continue
        out = []
        if arch.get("bytes") is not None and path.stat().st_size != arch["bytes"]:
            out.append(f"{path.name}: {path.stat().st_size} bytes, published {arch['bytes']}")
        for algo in ("sha256", "md5"):
            if arch.get(algo) and (digest := file_digest(path, algo)) != arch[algo]:
                out.append(f"{path.name}: {algo} {digest}, published {arch[algo]}")
        return out
    return []


def labels_outside(dataset_id: str, source: ImageSource) -> list[int]:
    """Labels and accepted targets of ``source`` outside the classes it is
    scored on (its ``class_subset``, else its manifest's ``classes``, else
    0..999), sorted: images no prediction could count as correct."""
    allowed = (getattr(source, "class_subset", None) or load_manifest(dataset_id).get("classes")
               or range(N_CLASSES))
    extra = [c for s in source.samples if s.targets for c in s.targets]
    return np.setdiff1d(np.concatenate([source.labels, np.asarray(extra, dtype=int)]), np.asarray(allowed)).tolist()
