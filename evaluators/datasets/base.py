"""Common shape of every dataset reader ("image source").

A source lists its images once, at construction, into ``samples``: a list of
:class:`Sample` sorted by ``(label, image_id)`` -- the same order whatever the
on-disk layout, so outputs of one dataset read from a folder, an archive or a
Hugging Face copy line up row for row. ``read_bytes(i)`` returns the raw file
bytes of sample ``i`` (decoding happens elsewhere). Anything found while
listing that is not a labelled image (an unknown class folder, a stray file,
an unreadable archive entry) is recorded in ``problems``, never dropped
silently; the manifest check reports it. An image id that occurs twice is
an error.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replication.classes import N_CLASSES
from replication.errors import InputError

#: file extensions read as images (lower case)
IMG_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".gif")


@dataclass(frozen=True)
class Sample:
    """One image: ``image_id`` (file name without extension), ILSVRC-2012
    ``label`` (0..999) and where to read it (a path relative to the root, an
    archive member name, or a row number). ``targets``: the classes that
    count as correct when there are several (ReaL labels, an ObjectNet
    class's ImageNet classes; see :mod:`evaluators.scoring`); empty: ``label``."""

    image_id: str
    label: int
    location: str
    targets: tuple[int, ...] = ()


def is_image_name(name: str) -> bool:
    """True when ``name`` ends in one of :data:`IMG_EXTENSIONS` (any case)."""
    return name.lower().endswith(IMG_EXTENSIONS)


def image_id_of(name: str) -> str:
    """Image id: the file name without folders and extension."""
    return os.path.splitext(os.path.basename(name))[0]


class ImageSource:
    """Base class of the dataset readers.

    Attributes
    ----------
    root : Path
        The dataset as the user has it (folder or archive).
    layout : str
        Layout name (``imagenet-folder``, ``imagenetv2-tar``, ...).
    samples : list of Sample
        Sorted by ``(label, image_id)``.
    problems : list of str
        Entries found while listing that are not labelled images.
    """

    layout = "base"
    #: sorted ImageNet class indices the logits are restricted to (None: all 1000; see evaluators.scoring)
    class_subset: tuple[int, ...] | None = None

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.problems: list[str] = []
        self.samples: list[Sample] = []

    def _set_samples(self, samples: list[Sample]) -> None:
        """Keep ``samples`` in ``(label, image_id)`` order; InputError naming
        both places when an image id occurs twice (ids key every result row)."""
        seen: dict[str, Sample] = {}
        for s in samples:
            first = seen.setdefault(s.image_id, s)
            if first is not s:
                raise InputError(f"{self.root}: image id {s.image_id!r} occurs twice, at {first.location} and "
                                 f"{s.location}; image ids (file names without extension) must be unique in a dataset")
        self.samples = sorted(samples, key=lambda s: (s.label, s.image_id))

    def __len__(self) -> int:
        return len(self.samples)

    def read_bytes(self, index: int) -> bytes:
        """Raw bytes of sample ``index``; raises OSError (or a subclass) with a
        reason when the entry cannot be read."""
        raise NotImplementedError

    def describe(self, index: int) -> str:
        """Human-readable location of sample ``index`` (for error lists)."""
        return self.samples[index].location

    def listing(self) -> bytes:
        """One UTF-8 line ``image_id<TAB>label<TAB>location[<TAB>targets]`` per sample, in
        order: the part of the run and crop-cache keys that identifies the listing."""
        return "\n".join(f"{s.image_id}\t{s.label}\t{s.location}" + (f"\t{s.targets}" if s.targets else "")
                         for s in self.samples).encode()

    def listing_sha256(self) -> str:
        """Hex SHA-256 of :meth:`listing`."""
        return hashlib.sha256(self.listing()).hexdigest()

    @property
    def labels(self) -> np.ndarray:
        """int64 (n_images,) labels in sample order."""
        return np.fromiter((s.label for s in self.samples), dtype=np.int64, count=len(self.samples))

    def class_counts(self) -> np.ndarray:
        """int64 (1000,) images per class index."""
        return np.bincount(self.labels, minlength=N_CLASSES)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, n_images={len(self)}, problems={len(self.problems)})"


class FileSource(ImageSource):
    """A source whose samples are files under ``root`` (location = relative path)."""

    def read_bytes(self, index: int) -> bytes:
        """Raw bytes of the file ``root / samples[index].location``; raises
        OSError when it cannot be read."""
        return (self.root / self.samples[index].location).read_bytes()
