"""How the predictions on one dataset are scored: class subsets and label sets.

Most datasets score the top-k of all 1000 logits against one label per
image. Two departures, both carried by the image source:

* a **class subset** (``ImageSource.class_subset``): ImageNet-A and -R hold
  200 of the 1000 classes, ObjectNet's overlap maps to 125; as their papers
  and the imagenet-testbed do, the logits are restricted to the subset
  before top-k, so ``pred1..pred5`` are ImageNet class indices inside it;
* **label sets** (``Sample.targets``): an image is correct when its
  prediction is any of several classes -- the ReaL labels of a val image, or
  every ImageNet class of an ObjectNet class. ``label`` stays one ImageNet
  class index (the contract's column); the set decides ``correct1/5``.

A model must score every class a dataset is scored on: :meth:`Scoring.check_model`
compares the subset (or all 1000 classes) with ``LoadedModel.classes``
before any image is read, and :meth:`Scoring.top_k` refuses logits that are
not 1000 wide.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

from replication.classes import N_CLASSES, imagenet_classes
from replication.errors import InputError

#: fill value of the padded label-set array (never a class index or a prediction)
_NO_LABEL = -2


@dataclass(frozen=True)
class Scoring:
    """Scoring rule of one dataset copy.

    Parameters
    ----------
    classes : tuple of int, default=None
        Sorted ImageNet class indices the logits are restricted to (None: all 1000).
    """

    classes: tuple[int, ...] | None = None

    @classmethod
    def of(cls, source: object) -> "Scoring":
        """The rule of an image source (its ``class_subset``, None when it has none)."""
        subset = getattr(source, "class_subset", None)
        return cls(None if subset is None else tuple(sorted(int(c) for c in subset)))

    def required_classes(self) -> np.ndarray:
        """int64 class indices a model must score: the subset, else 0..999."""
        return np.arange(N_CLASSES) if self.classes is None else np.asarray(self.classes, dtype=np.int64)

    def check_model(self, model_name: str, model_classes: Sequence[int] | None, dataset: str) -> None:
        """InputError when a model scoring only ``model_classes`` (None: all
        1000) lacks a class that ``dataset`` is scored on."""
        if model_classes is None:
            return
        missing = np.setdiff1d(self.required_classes(), np.asarray(model_classes, dtype=np.int64))
        if missing.size:
            names = imagenet_classes().names
            shown = ", ".join(f"{c} ({names[c]})" for c in missing[:3])
            scope = f"the {len(self.classes)} classes {dataset} is scored on" if self.classes else "the 1000 ImageNet classes"
            raise InputError(f"model {model_name} scores {len(model_classes)} ImageNet classes and lacks "
                             f"{missing.size} of {scope}: {shown}{' ...' if missing.size > 3 else ''}; "
                             f"it cannot be scored on {dataset}")

    def top_k(self, logits: "object", k: int) -> np.ndarray:
        """int16 (n, k) ImageNet class indices of the ``k`` largest logits
        (a torch tensor (n, 1000)), within the subset when there is one."""
        if logits.shape[1] != N_CLASSES:
            raise InputError(f"the model gives {logits.shape[1]} scores per image, not one per ImageNet class "
                             f"({N_CLASSES}); only ImageNet-1k classifiers can be scored")
        if self.classes is None:
            return logits.topk(k, dim=1).indices.numpy().astype(np.int16)
        import torch

        sub = torch.as_tensor(self.classes, dtype=torch.int64)
        return sub[logits[:, sub].topk(k, dim=1).indices].numpy().astype(np.int16)

    @staticmethod
    def correct(preds: np.ndarray, labels: np.ndarray, targets: Sequence[tuple[int, ...]] = ()) -> tuple[np.ndarray, np.ndarray]:
        """(correct1, correct5), int8 (n,) each, for predictions (n, k) and
        labels (n,); ``targets``: per image the accepted classes (an empty
        tuple, or no targets at all: the label alone)."""
        labels = np.asarray(labels, dtype=np.int64)
        lens = np.fromiter((len(t) for t in targets), dtype=np.int64, count=len(targets))
        if lens.any():
            flat = np.fromiter(chain.from_iterable(targets), dtype=np.int64, count=int(lens.sum()))
            accepted = np.full((len(labels), int(lens.max())), _NO_LABEL, dtype=np.int64)
            accepted[np.repeat(np.arange(len(lens)), lens), np.arange(len(flat)) - np.repeat(np.cumsum(lens) - lens, lens)] = flat
            accepted[lens == 0, 0] = labels[lens == 0]
        else:
            accepted = labels[:, None]
        hit = preds[:, :, None] == accepted[:, None, :]
        return hit[:, 0].any(axis=1).astype(np.int8), hit.any(axis=(1, 2)).astype(np.int8)

    def to_dict(self) -> dict:
        """JSON-ready: ``class_subset`` (the sorted indices, or None)."""
        return {"class_subset": None if self.classes is None else list(self.classes)}
