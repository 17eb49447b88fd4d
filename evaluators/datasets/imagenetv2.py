"""ImageNet-v2 as released, extracted or as the ``.tar.gz`` archive::

    imagenetv2-matched-frequency-format-val/
      0/<sha1>.jpeg  ... (10 images)
      1/...
      ...
      999/...

Label = ``int(folder name)``. (torchvision's ``ImageFolder`` sorts folder names
as strings -- 0, 1, 10, 100, 101, ... -- and so mislabels 990 of the 1000
classes.) ``root`` may be the ``*-format-val`` folder itself or a folder that
holds exactly one such folder.
"""
from __future__ import annotations

import gzip
import os
import tarfile
from pathlib import Path

from replication.classes import N_CLASSES
from evaluators.datasets.base import ImageSource, Sample, image_id_of, is_image_name
from evaluators.datasets.class_folder import ClassFolder
from replication.errors import InputError


def int_label(folder: str) -> int | None:
    """``int(folder)`` for a canonical decimal name in 0..999 ('7', not '07'), else None."""
    if folder.isdigit() and str(int(folder)) == folder and int(folder) < N_CLASSES:
        return int(folder)
    return None


def _resolve_v2_root(root: Path) -> Path:
    if root.is_dir() and not any(int_label(p.name) is not None for p in root.iterdir() if p.is_dir()):
        inner = [p for p in root.iterdir() if p.is_dir() and p.name.endswith("-format-val")]
        if len(inner) == 1:
            return inner[0]
    return root


class ImageNetV2Folder(ClassFolder):
    """ImageNet-v2 extracted from its release archive::

        root/                      (e.g. imagenetv2-matched-frequency-format-val/)
          0/    7a1b...e2.jpeg  ...   (10 images per class, named by sha1)
          1/
          ...
          999/

    Label rule: ``int(folder name)`` for canonical names ``"0".."999"`` (never
    the string-sorted position, which would put 10 before 2). Other folders are
    listed in ``problems``. ``image_id`` is the file stem (the sha1).

    Parameters
    ----------
    root : str or os.PathLike
        The ``*-format-val`` folder, or a folder holding exactly one such
        folder (it is then used).
    """

    layout = "imagenetv2-folder"

    def __init__(self, root: str | os.PathLike):
        super().__init__(_resolve_v2_root(Path(root)))

    def label_of(self, folder: str) -> int | None:
        """``int(folder)`` for ``"0".."999"``, else None."""
        return int_label(folder)


class ImageNetV2Tar(ImageSource):
    """ImageNet-v2 read straight from ``imagenetv2-<variant>.tar.gz`` (or an
    uncompressed ``.tar``) without extracting::

        imagenetv2-matched-frequency.tar.gz
          imagenetv2-matched-frequency-format-val/
            0/    7a1b...e2.jpeg  ...
            1/
            ...
            999/

    Label rule: ``int(parent folder name)`` of each member, for ``"0".."999"``;
    members elsewhere are listed in ``problems``. ``image_id`` is the member's
    file stem; ``location`` is the member name.

    The archive is listed once (one pass); each process then keeps its own
    file handle and reads members in index order, so a gzip archive is
    decompressed about once per DataLoader worker. Members that are not
    regular files, or whose data the archive cuts short, become per-image
    errors with a reason.
    """

    layout = "imagenetv2-tar"

    def __init__(self, root: str | os.PathLike):
        super().__init__(root)
        if not self.root.is_file():
            raise InputError(f"{self.root}: archive not found")
        self._members: dict[str, tuple[int, int, str | None]] = {}
        self._handle = None
        self._pid = None
        self._scan()

    @property
    def _compressed(self) -> bool:
        with open(self.root, "rb") as f:
            return f.read(2) == b"\x1f\x8b"

    def _scan(self) -> None:
        samples = []
        try:
            tf = tarfile.open(self.root, "r:*")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InputError(f"{self.root}: not a readable tar archive ({exc})") from None
        with tf:
            try:
                for m in tf:
                    parts = m.name.strip("/").split("/")
                    if m.isdir() or any(p.startswith(".") for p in parts):
                        continue
                    if len(parts) < 2 or not is_image_name(parts[-1]):
                        self.problems.append(f"archive entry not read: {m.name}")
                        continue
                    label = int_label(parts[-2])
                    if label is None:
                        self.problems.append(f"archive entry outside class folders 0..999: {m.name}")
                        continue
                    kind = None if m.isreg() else ("symlink" if m.issym() else "hard link" if m.islnk() else "special file")
                    self._members[m.name] = (m.offset_data, m.size, kind)
                    samples.append(Sample(image_id_of(m.name), label, m.name))
            except (tarfile.TarError, OSError, EOFError) as exc:
                self.problems.append(f"archive ends early or is damaged after {len(samples)} images ({exc})")
        self._set_samples(samples)

    def _file(self):
        if self._handle is None or self._pid != os.getpid():
            self._handle = gzip.open(self.root, "rb") if self._compressed else open(self.root, "rb")
            self._pid = os.getpid()
        return self._handle

    def read_bytes(self, index: int) -> bytes:
        """Raw bytes of archive member ``samples[index]``; raises OSError for
        a member that is not a regular file, unreadable or truncated."""
        name = self.samples[index].location
        offset, size, kind = self._members[name]
        if kind is not None:
            raise OSError(f"unreadable archive member ({kind}, not a regular file)")
        f = self._file()
        try:
            f.seek(offset)
            data = f.read(size)
        except (OSError, EOFError) as exc:
            self._handle = None
            raise OSError(f"unreadable archive member: {exc}") from None
        if len(data) != size:
            raise OSError(f"archive member truncated: {len(data)} of {size} bytes")
        return data

    def describe(self, index: int) -> str:
        """``"<archive name>:<member name>"`` of sample ``index``."""
        return f"{self.root.name}:{self.samples[index].location}"

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handle"] = None
        return state
