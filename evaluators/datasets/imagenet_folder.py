"""ImageNet val as wnid class folders (the layout torchvision's ``ImageNet``
and most training scripts use)::

    root/
      n01440764/ILSVRC2012_val_00000293.JPEG
      n01443537/...
      ...                      (1000 folders, 50 images each)

Label = index of the wnid in the shipped class table (sorted-wnid order).
"""
from __future__ import annotations

from evaluators.classes import imagenet_classes
from evaluators.datasets.class_folder import ClassFolder


class ImageNetFolder(ClassFolder):
    layout = "imagenet-folder"

    def label_of(self, folder: str) -> int | None:
        return imagenet_classes().wnid_to_index.get(folder)
