"""Image folders -> the table ``replication annotate plan`` reads
(``dataset, image_id, class_id, path``), listed by the evaluators' dataset
readers (:mod:`evaluators.datasets`), so image ids and labels are exactly
those that ``replication evaluate`` gives the same folders."""
from __future__ import annotations

import logging
import os

import pandas as pd

from replication.errors import InputError

log = logging.getLogger(__name__)


def list_folder(dataset: str, root: str | os.PathLike, *, layout: str = "auto",
                labels: str | os.PathLike | None = None) -> pd.DataFrame:
    """The images of one dataset folder: ``dataset, image_id, class_id, path``
    (absolute paths). Layouts with files on disk only (not archives or
    Hugging Face copies, whose images have no path to serve)."""
    from evaluators.datasets import open_dataset
    from evaluators.datasets.base import FileSource

    source = open_dataset(dataset, root, layout=layout, labels=labels)
    if not isinstance(source, FileSource):
        raise InputError(f"{root}: the {source.layout} layout has no image files to serve; extract it to a folder")
    if not source.samples:
        raise InputError(f"{root}: no labelled images found ({source.layout} layout)")
    if source.problems:
        log.warning("%s: %d entries are not labelled images and were left out (first: %s)", root,
                    len(source.problems), "; ".join(source.problems[:3]))
    base = os.path.abspath(source.root)
    return pd.DataFrame({"dataset": dataset, "image_id": [s.image_id for s in source.samples],
                         "class_id": [s.label for s in source.samples],
                         "path": [os.path.join(base, s.location) for s in source.samples]})
