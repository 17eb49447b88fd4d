"""Model families of the 67 models Recht et al. 2019 evaluated, from their names."""
from __future__ import annotations

import re

#: (family, pattern on the lower-cased model name), first match wins
FAMILY_PATTERNS: tuple[tuple[str, str], ...] = (
    ("Fisher vectors", r"^fv_"),
    ("NASNet / PNASNet", r"nasnet"),
    ("Inception / Xception", r"inception|xception"),
    ("DenseNet", r"^densenet"),
    ("VGG", r"^vgg"),
    ("MobileNet / SqueezeNet / AlexNet", r"mobilenet|squeezenet|alexnet"),
    ("ResNet / ResNeXt / SENet", r"resne|senet"),
    ("DPN / PolyNet", r"^dpn|polynet"),
)
OTHER = "other"


def model_family(name: str) -> str:
    """The family of a model id (``resnet50`` -> ``ResNet / ResNeXt / SENet``);
    ``other`` when no pattern matches."""
    low = name.lower()
    return next((fam for fam, pat in FAMILY_PATTERNS if re.search(pat, low)), OTHER)


def families(models: list[str]) -> dict[str, list[str]]:
    """Models grouped by family, families in :data:`FAMILY_PATTERNS` order
    (``other`` last), models in input order; empty families left out."""
    order = [f for f, _ in FAMILY_PATTERNS] + [OTHER]
    groups: dict[str, list[str]] = {f: [] for f in order}
    for m in models:
        groups[model_family(m)].append(m)
    return {f: ms for f, ms in groups.items() if ms}
