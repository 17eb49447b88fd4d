"""ImageNet val as wnid class folders (the layout torchvision's ``ImageNet``
and most training scripts use)::

    root/
      n01440764/ILSVRC2012_val_00000293.JPEG
      n01443537/...
      ...                      (1000 folders, 50 images each)

Label = index of the wnid in the shipped class table (sorted-wnid order).
"""
from __future__ import annotations

from replication.classes import imagenet_classes
from evaluators.datasets.class_folder import ClassFolder


class ImageNetFolder(ClassFolder):
    """ImageNet val (or train) as wnid class folders::

        root/
          n01440764/  ILSVRC2012_val_00000293.JPEG  ...
          n01443537/
          ...
          n15075141/               (1000 folders)

    Label rule: index of the folder's wnid in the shipped class table
    (sorted-wnid order, 0..999); other folders are listed in ``problems``.
    ``image_id`` is the file stem.

    Parameters
    ----------
    root : str or os.PathLike
        The folder that holds the wnid folders.
    """

    layout = "imagenet-folder"

    def label_of(self, folder: str) -> int | None:
        """Class index of wnid ``folder``, or None when it is not a wnid."""
        return imagenet_classes().wnid_to_index.get(folder)
