"""ObjectNet 1.0 as released (Barbu et al. 2019), read through its own
mapping files to the ImageNet classes it shares::

    objectnet-1.0/
      images/
        air_freshener/  0a1b...c3.png  ...
        alarm_clock/    ...
        ...                                   (313 folders)
      mappings/
        folder_to_objectnet_label.json        {folder: ObjectNet label}
        objectnet_to_imagenet_1k.json         {ObjectNet label: "ImageNet name; ImageNet name"}  (113)
        imagenet_to_label_2012_v2             one ImageNet class name per line
        pytorch_to_imagenet_2012_id.json      {PyTorch class index: line of imagenet_to_label_2012_v2}

Only the 113 ObjectNet classes that map to ImageNet are read (the other
200 folders hold classes ImageNet lacks). An image is correct when the
prediction is any ImageNet class of its ObjectNet class; the logits are
restricted to the union of those classes (125), as the imagenet-testbed
does (``src/eval_settings/objectnet.py``). Images carry a red border:
``border`` pixels are cut from each side before preprocessing (2, as the
ObjectNet authors' evaluation code and the testbed do).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

from replication.classes import N_CLASSES
from evaluators.datasets.base import FileSource, Sample, image_id_of, is_image_name
from replication.errors import InputError
from replication.io.jsonfile import read_json

MAPPING_FILES = ("folder_to_objectnet_label.json", "objectnet_to_imagenet_1k.json", "imagenet_to_label_2012_v2",
                 "pytorch_to_imagenet_2012_id.json")
#: pixels of red border cut from each side (abarbu/objectnet-template-pytorch; imagenet-testbed)
BORDER = 2


def _read_json(path: Path) -> dict:
    return read_json(path, dict, "a JSON object")


def read_objectnet_mapping(mappings: Path) -> dict[str, tuple[int, ...]]:
    """``{image folder: sorted ImageNet class indices}`` for the ObjectNet
    classes that map to ImageNet, from the release's ``mappings/`` folder."""
    for name in MAPPING_FILES:
        if not (mappings / name).is_file():
            raise InputError(f"{mappings / name}: ObjectNet mapping file not found; ObjectNet is scored through the "
                             f"mapping files of its release (objectnet-1.0/mappings/: {', '.join(MAPPING_FILES)})")
    folder_label = _read_json(mappings / MAPPING_FILES[0])
    to_imagenet = _read_json(mappings / MAPPING_FILES[1])
    lines = [ln.strip() for ln in (mappings / MAPPING_FILES[2]).read_text(encoding="utf-8").splitlines()]
    pytorch_to_line = _read_json(mappings / MAPPING_FILES[3])
    try:
        line_to_index = {int(line): int(index) for index, line in pytorch_to_line.items()}
    except (TypeError, ValueError):
        raise InputError(f"{mappings / MAPPING_FILES[3]}: expected integer class indices and line numbers") from None
    if sorted(line_to_index.values()) != list(range(N_CLASSES)) or len(lines) != N_CLASSES:
        raise InputError(f"{mappings}: {MAPPING_FILES[2]} ({len(lines)} lines) and {MAPPING_FILES[3]} must cover "
                         f"the {N_CLASSES} ImageNet classes once each")
    by_name: dict[str, list[int]] = {}
    for line, name in enumerate(lines):
        by_name.setdefault(name, []).append(line_to_index[line])
    label_folder = {label: folder for folder, label in folder_label.items()}
    out = {}
    for label, names in to_imagenet.items():
        if label not in label_folder:
            raise InputError(f"{mappings / MAPPING_FILES[1]}: ObjectNet class {label!r} has no folder in {MAPPING_FILES[0]}")
        indices = []
        for name in str(names).split("; "):
            found = by_name.get(name.strip(), [])
            if len(found) != 1:
                raise InputError(f"{mappings / MAPPING_FILES[1]}: ImageNet class name {name!r} (of {label!r}) "
                                 f"{'is not' if not found else 'is more than once'} in {MAPPING_FILES[2]}")
            indices += found
        out[label_folder[label]] = tuple(sorted(indices))
    return out


class ObjectNetFolder(FileSource):
    """ObjectNet 1.0 as released (see the module docstring for the tree).

    Label rule: an image in ``images/<folder>/`` has the ImageNet classes its
    folder maps to (``Sample.targets``, every one counts as correct);
    ``label`` is the smallest of them. Folders of the 200 ObjectNet classes
    that map to no ImageNet class are not read (counted in
    ``unmapped_images``); folders the mapping does not name, stray files
    and non-images are listed in ``problems``. ``image_id`` is the file
    stem; ``class_subset`` is the union of the mapped classes.

    :meth:`read_bytes` returns the image with ``border`` pixels cut from each
    side, as an uncompressed PPM file (so every decoder and the crop cache
    see the cropped image).

    Parameters
    ----------
    root : str or os.PathLike
        The ``objectnet-1.0`` folder (holding ``images/`` and ``mappings/``).
    border : int, default=BORDER
        Pixels cut from each side.

    Raises
    ------
    InputError
        When ``images/`` or a mapping file is missing, or the mapping is inconsistent.
    """

    layout = "objectnet"

    def __init__(self, root: str | os.PathLike, border: int = BORDER):
        super().__init__(root)
        self.border = border
        images = self.root / "images"
        if not images.is_dir():
            raise InputError(f"{images}: ObjectNet image folder not found (expected objectnet-1.0/images/<class folder>/)")
        self.folder_classes = read_objectnet_mapping(self.root / "mappings")
        self.class_subset = tuple(sorted({c for cs in self.folder_classes.values() for c in cs}))
        known = set(_read_json(self.root / "mappings" / MAPPING_FILES[0]))
        self.unmapped_images = 0
        samples = []
        for entry in sorted(os.scandir(images), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if not entry.is_dir():
                self.problems.append(f"file outside class folders: images/{entry.name}")
                continue
            files = sorted(os.scandir(entry.path), key=lambda e: e.name)
            if entry.name not in self.folder_classes:
                n = sum(1 for f in files if is_image_name(f.name))
                if entry.name in known:
                    self.unmapped_images += n
                else:
                    self.problems.append(f"extra folder images/{entry.name}/ is not an ObjectNet class folder ({n} images not used)")
                continue
            targets = self.folder_classes[entry.name]
            for f in files:
                rel = f"images/{entry.name}/{f.name}"
                if f.name.startswith("."):
                    continue
                if f.is_dir() or not is_image_name(f.name):
                    self.problems.append(f"not an image file: {rel}")
                else:
                    samples.append(Sample(image_id_of(f.name), targets[0], rel, targets))
        self._set_samples(samples)

    def read_bytes(self, index: int) -> bytes:
        """The image of sample ``index`` without its border, as PPM bytes;
        OSError with the reason when it cannot be read or decoded."""
        from evaluators.decode import DecodeError, decode_image

        try:
            img = decode_image(super().read_bytes(index))
        except DecodeError as exc:
            raise OSError(str(exc)) from None
        b = self.border
        if min(img.size) <= 2 * b:
            raise OSError(f"image of {img.size[0]}x{img.size[1]} pixels is no larger than its {b}-pixel border")
        buf = io.BytesIO()
        img.crop((b, b, img.size[0] - b, img.size[1] - b)).save(buf, format="PPM")
        return buf.getvalue()
