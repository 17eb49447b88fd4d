"""Importers for published per-image vote sets: each turns one source's files
into the contract annotations table (``dataset, image_id, n_annotators,
n_selected[, class_id]``) and, where the source carries model results, a
correctness matrix.

=======================  ===================================================  ===========
source                   PATH                                                 correctness
=======================  ===================================================  ===========
``madrylab``             Engstrom et al. 2020's annotation DataFrame (one      yes
                         row per vote; ``torch.save`` file, or the same table
                         as Parquet/CSV)
``real``                 ImageNet-ReaL's raw rater data (``raters.npz``, or    no
                         its folder) plus ImageNet val's labels
``cleanlab``             Northcutt et al. 2021's ``imagenet_mturk.json``        no
``imagenet-multilabel``  Tsipras et al. 2020's CLASSIFY-task DataFrame          no
                         (pickle) or its per-image CSV
``votes``                the project's own votes table (``annotate export      no
                         --votes-out``), after the controls' quality control
=======================  ===================================================  ===========

Each source is one class with a ``read(path) -> ImportedVotes`` method (options
in ``__init__``). It validates its schema, refuses a truncated or mis-typed
file with an :class:`~replication.errors.InputError` that names the file and
rows, and reports what it leaves out and why (``ImportedVotes.dropped``).
This module imports nothing heavy, so the command line can list the sources.
"""
from __future__ import annotations

import importlib

#: source name -> "module:class" under replication.votes (imported on use)
SOURCES: dict[str, str] = {
    "madrylab": "madrylab:MadryLabVotes",
    "real": "real:RealVotes",
    "cleanlab": "cleanlab:CleanlabVotes",
    "imagenet-multilabel": "multilabel:MultiLabelVotes",
    "votes": "own:OwnVotes",
}


def source_class(name: str) -> type:
    """The importer class registered under ``name`` (KeyError for an unknown name)."""
    module, cls = SOURCES[name].split(":")
    return getattr(importlib.import_module(f"replication.votes.{module}"), cls)


__all__ = ["SOURCES", "source_class"]
