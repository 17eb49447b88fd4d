"""Natural-shift test sets released as wnid class folders: ImageNet-A and
ImageNet-R (Hendrycks et al.; 200-class subsets, with a README) and
ImageNet-Sketch (Wang et al. 2019; all 1000 classes)::

    imagenet-r/                          sketch/
      README.txt                           n01440764/sketch_0.JPEG ...
      n01443537/art_0.jpg  ...             n01443537/...
      ...        (200 wnid folders)        ...        (1000 wnid folders)

File names repeat across class folders (``art_0``, ``sketch_0``), so the
image id keeps its folder: ``n01443537/art_0``. Label = index of the
folder's wnid in the sorted-wnid class table; for a subset the logits are
restricted to it when scoring (:mod:`evaluators.scoring`).
"""
from __future__ import annotations

import os
from collections.abc import Iterable

from replication.classes import imagenet_classes
from evaluators.datasets.imagenet_folder import ImageNetFolder

#: files of the released archives that are not images of a class
RELEASE_NOTES = ("README.txt",)


class ImageNetShiftFolder(ImageNetFolder):
    """wnid class folders of a natural-shift release, optionally a class subset::

        root/
          README.txt               (ignored)
          n01443537/  art_0.jpg  ...
          ...                      (one folder per class)

    Label rule: the wnid's index (0..999) when it is in ``classes`` (or
    any wnid when ``classes`` is None); other folders, a wnid outside the
    subset included, are listed in ``problems``. ``image_id`` is
    ``<wnid>/<file stem>``; ``class_subset`` is ``classes``.

    Parameters
    ----------
    root : str or os.PathLike
        The folder that holds the wnid folders.
    classes : iterable of int, default=None
        ImageNet class indices of the subset (None: all 1000).
    """

    layout = "imagenet-shift-folder"
    folder_in_id = True

    def __init__(self, root: str | os.PathLike, classes: Iterable[int] | None = None):
        self.class_subset = None if classes is None else tuple(sorted(int(c) for c in classes))
        super().__init__(root)
        notes = {f"file outside class folders: {n}" for n in RELEASE_NOTES}
        self.problems = [p for p in self.problems if p not in notes]

    def label_of(self, folder: str) -> int | None:
        """Class index of wnid ``folder`` when it is in the subset, else None."""
        index = imagenet_classes().wnid_to_index.get(folder)
        return index if self.class_subset is None or index in self.class_subset else None
