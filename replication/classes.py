"""The 1000 ILSVRC-2012 classes: one source of truth for index <-> wnid <->
names <-> WordNet gloss, for the evaluators, the vote importers and the
annotation kit alike.

Index ``i`` is the standard class index (0..999), which is also the position of
the wnid in sorted order. The table ships as package data
(``replication/data/imagenet_classes.json``, from the ImageNetV2 repository's
``data/metadata/class_info.json``, MIT; the glosses are WordNet 3.0's).
Torch-free.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

N_CLASSES = 1000


@dataclass(frozen=True)
class ImageNetClasses:
    """Class table: ``wnids[i]``, ``names[i]``, ``synonyms[i]`` (the
    WordNet lemmas, first = name) and ``glosses[i]`` (the WordNet definition)
    belong to class index ``i``."""

    wnids: tuple[str, ...]
    names: tuple[str, ...]
    synonyms: tuple[tuple[str, ...], ...] = ()
    glosses: tuple[str, ...] = ()

    @property
    def full_names(self) -> tuple[str, ...]:
        """``"tench, Tinca tinca"``: the lemmas joined by ", " (the label
        strings of most published ImageNet checkpoints and of ObjectNet's mapping)."""
        return tuple(", ".join(s) for s in self.synonyms)

    def index(self, wnid: str) -> int:
        """Class index of ``wnid``; KeyError for an unknown wnid."""
        return self.wnid_to_index[wnid]

    @property
    def wnid_to_index(self) -> dict[str, int]:
        """wnid -> class index (0..999)."""
        return _wnid_map(self.wnids)

    def __len__(self) -> int:
        return len(self.wnids)


@lru_cache(maxsize=None)
def _wnid_map(wnids: tuple[str, ...]) -> dict[str, int]:
    return {w: i for i, w in enumerate(wnids)}


@lru_cache(maxsize=1)
def imagenet_classes() -> ImageNetClasses:
    """The shipped 1000-class table (cached)."""
    text = resources.files("replication").joinpath("data/imagenet_classes.json").read_text("utf-8")
    rows = sorted(json.loads(text), key=lambda r: r["index"])
    if [r["index"] for r in rows] != list(range(N_CLASSES)):
        raise RuntimeError("replication/data/imagenet_classes.json is not a 0..999 class table")
    return ImageNetClasses(tuple(r["wnid"] for r in rows), tuple(r["name"] for r in rows),
                           tuple(tuple(r["synonyms"]) for r in rows), tuple(r["gloss"] for r in rows))
