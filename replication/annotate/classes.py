"""What an annotator is told about a class: its name(s) and a one-line
definition (the WordNet gloss, as in Recht et al.'s tasks).

For ImageNet the names and glosses come from the project's one class table
(:func:`replication.classes.imagenet_classes`). Other class sets come from a
JSON list like ImageNetV2's ``class_info.json``, or a CSV
``class_id,names,gloss`` (names separated by ``;``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from replication.classes import imagenet_classes
from replication.errors import InputError
from replication.io.jsonfile import read_json


@dataclass(frozen=True)
class ClassDescription:
    """One class as annotators see it: ``names[0]`` is the main name."""

    class_id: int
    names: tuple[str, ...]
    gloss: str

    def to_dict(self) -> dict:
        """JSON form: ``{"class_id", "names", "gloss"}``."""
        return {"class_id": self.class_id, "names": list(self.names), "gloss": self.gloss}


def _from_records(records: list, source: str) -> dict[int, ClassDescription]:
    out: dict[int, ClassDescription] = {}
    for i, rec in enumerate(records, start=1):
        cid = rec.get("class_id", rec.get("cid")) if isinstance(rec, dict) else None
        names = rec.get("names", rec.get("synset")) if isinstance(rec, dict) else None
        if isinstance(names, str):
            names = [n.strip() for n in names.split(";")]
        if cid is None or not str(cid).strip().lstrip("-").isdigit() or not names:
            raise InputError(f"{source}: entry {i} needs a class_id (or cid) and names (or synset)")
        names = tuple(str(n).strip() for n in names if str(n).strip())
        cid = int(cid)
        if cid in out:
            raise InputError(f"{source}: entry {i}: class_id {cid} given twice")
        gloss = rec.get("gloss")
        out[cid] = ClassDescription(cid, names, "" if gloss is None or gloss != gloss else str(gloss).strip())
    return out


def load_class_descriptions(path: str | os.PathLike | None = None) -> dict[int, ClassDescription]:
    """Class id -> :class:`ClassDescription`: the shipped ImageNet table, or
    ``path`` (JSON list like ``class_info.json``, or CSV ``class_id,names,gloss``)."""
    if path is None:
        table = imagenet_classes()
        return {i: ClassDescription(i, names, gloss)
                for i, (names, gloss) in enumerate(zip(table.synonyms, table.glosses))}
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: class description file not found")
    if p.suffix.lower() == ".json":
        records = read_json(p, list, "a JSON list of {class_id, names, gloss} entries")
        return _from_records(records, str(p))
    from replication.io.tables import read_table, require_columns

    df = read_table(p)
    require_columns(p, df, ("class_id", "names"))
    return _from_records(df.to_dict("records"), str(p))
