"""The votes table (one row per vote) and the annotations table counted from
it, with quality control on the control images. Plain pandas: importable
without the web stack (``replication import-annotations --source votes``
counts a votes file with :func:`count_votes` too).

Votes table (``../shared/CONTRACTS.md``): ``dataset, image_id, class_id,
annotator_id, task_id, selected`` (0/1), ``submitted_at`` (UTC ISO 8601),
``is_control`` (0/1); optional ``target_class_id`` (the task's class; where
absent it is the class of the task's non-control votes, since every image to
label in a task is of the task's class).

Quality control follows Recht et al.'s use of controls: a positive control
(an image of the task's class) answered "not selected" or a negative control
(another class) answered "selected" is an error; the annotators (or single
submissions) whose share of correct control answers is below a threshold are
dropped, and every count dropped is reported, never dropped silently.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from replication.errors import InputError
from replication.io.tables import _fail, _integer_column, name_list, require_columns

VOTE_COLUMNS = ("dataset", "image_id", "class_id", "annotator_id", "task_id", "selected", "submitted_at",
                "is_control")
#: QC units: every vote of an annotator, one submitted task, or nothing dropped
QC_LEVELS = ("annotator", "submission", "none")
#: default share of control answers an annotator must get right
MIN_CONTROL_ACCURACY = 0.7
_ISO_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|\+00:?00)$"


def validate_votes(df: pd.DataFrame, path: str | os.PathLike = "<votes>") -> pd.DataFrame:
    """Check a votes table and return a clean copy (int64 ids and flags).

    One-line :class:`InputError` naming the file and rows for: missing
    columns, empty keys, ``selected``/``is_control`` not 0/1, ``submitted_at``
    not UTC ISO 8601 (``2024-05-01T12:00:00Z``), one annotator voting twice on
    an image to label, or twice on a control within one task.
    """
    require_columns(path, df, VOTE_COLUMNS)
    if len(df) == 0:
        raise InputError(f"{path}: the votes table has no rows")
    out = df.copy()
    for col in ("dataset", "image_id", "annotator_id", "task_id"):
        bad = out[col].isna().to_numpy() | (out[col].astype(str).str.strip() == "").to_numpy()
        _fail(path, bad, f"{col} is empty", out)
        out[col] = out[col].astype(str)
    for col in ("class_id", "selected", "is_control", *(("target_class_id",) if "target_class_id" in out else ())):
        out[col] = _integer_column(path, out, col)
    _fail(path, out["class_id"].to_numpy() < 0, "class_id < 0", out)
    for col in ("selected", "is_control"):
        _fail(path, ~np.isin(out[col].to_numpy(), (0, 1)), f"{col} is not 0 or 1", out)
    stamps = out["submitted_at"].astype(str)
    _fail(path, ~stamps.str.match(_ISO_UTC).to_numpy(),
          "submitted_at is not a UTC ISO 8601 time like 2024-05-01T12:00:00Z", out)
    out["submitted_at"] = stamps
    label = out["is_control"].to_numpy() == 0
    twice = np.zeros(len(out), bool)
    twice[label] = out[label].duplicated(["annotator_id", "dataset", "image_id"]).to_numpy()
    _fail(path, twice, "the same annotator voted twice on this image", out)
    _fail(path, out.duplicated(["annotator_id", "dataset", "image_id", "task_id"]).to_numpy(),
          "the same annotator answered this image twice in one task", out)
    return out.reset_index(drop=True)


def _target_class(votes: pd.DataFrame, path: str | os.PathLike) -> np.ndarray:
    """The class of each vote's task, shape (V,)."""
    if "target_class_id" in votes:
        return votes["target_class_id"].to_numpy(np.int64)
    labels = votes[votes["is_control"] == 0]
    per_task = labels.groupby("task_id")["class_id"].agg(["min", "max"])
    mixed = per_task.index[per_task["min"] != per_task["max"]]
    if len(mixed):
        raise InputError(f"{path}: task(s) {name_list(mixed, 3)} hold images to label of several classes; "
                         f"give a target_class_id column")
    target = votes["task_id"].map(per_task["min"])
    unknown = target.isna().to_numpy() & (votes["is_control"].to_numpy() == 1)
    if unknown.any():
        tasks = votes.loc[unknown, "task_id"].unique()
        raise InputError(f"{path}: task(s) {name_list(tasks, 3)} have only control votes, so their class is "
                         f"unknown; give a target_class_id column")
    return target.fillna(-1).to_numpy(np.int64)


@dataclass
class QualityReport:
    """What quality control kept and dropped.

    Attributes
    ----------
    level : str
        ``annotator``, ``submission`` or ``none``.
    min_control_accuracy : float
    units : DataFrame
        One row per annotator (or per annotator and task): ``n_controls``,
        ``n_correct``, ``accuracy`` (NaN without controls), ``accepted``.
    counts : dict
        ``n_votes``, ``n_label_votes``, ``n_label_votes_dropped``, ``n_annotators``,
        ``n_annotators_dropped``, ``n_submissions``, ``n_submissions_dropped``,
        ``n_units_without_controls``, ``n_images``, ``n_images_without_accepted_votes``.
    images_without_votes : list of str
        ``dataset/image_id`` of images every vote of which was dropped (left
        out of the annotations table).
    """

    level: str
    min_control_accuracy: float
    units: pd.DataFrame
    counts: dict = field(default_factory=dict)
    images_without_votes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """A few readable lines for the command line."""
        c = self.counts
        if self.level == "none":
            head = "quality control off: every vote counted"
        else:
            unit = "annotators" if self.level == "annotator" else "submissions"
            dropped = c["n_annotators_dropped"] if self.level == "annotator" else c["n_submissions_dropped"]
            total = c["n_annotators"] if self.level == "annotator" else c["n_submissions"]
            head = (f"quality control: dropped {dropped} of {total} {unit} with control accuracy below "
                    f"{self.min_control_accuracy:g} ({c['n_label_votes_dropped']} of {c['n_label_votes']} votes "
                    f"on images to label)")
        out = [head]
        if c["n_units_without_controls"]:
            out.append(f"{c['n_units_without_controls']} {self.level}(s) answered no control and were kept")
        if c["n_images_without_accepted_votes"]:
            out.append(f"{c['n_images_without_accepted_votes']} image(s) lost every vote and are left out "
                       f"(first: {name_list(self.images_without_votes, 3)})")
        return out

    def to_dict(self) -> dict:
        """JSON form: level, threshold, counts, the dropped images and every unit's control accuracy."""
        units = self.units.astype({"accuracy": object}).where(self.units.notna(), None)
        return {"level": self.level, "min_control_accuracy": self.min_control_accuracy, **self.counts,
                "images_without_accepted_votes": self.images_without_votes,
                "units": units.to_dict("records")}


def control_accuracy(votes: pd.DataFrame, level: str = "annotator",
                     path: str | os.PathLike = "<votes>") -> pd.DataFrame:
    """Correct control answers per annotator (``level="annotator"``) or per
    annotator and task (``"submission"``): ``n_controls, n_correct, accuracy``."""
    keys = ["annotator_id"] if level == "annotator" else ["annotator_id", "task_id"]
    control = votes["is_control"].to_numpy() == 1
    positive = votes["class_id"].to_numpy() == _target_class(votes, path)
    correct = control & (votes["selected"].to_numpy() == positive)
    frame = votes[keys].assign(n_controls=control.astype(np.int64), n_correct=correct.astype(np.int64))
    out = frame.groupby(keys, sort=True).sum().reset_index()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["accuracy"] = np.where(out["n_controls"] > 0, out["n_correct"] / out["n_controls"].clip(lower=1), np.nan)
    return out


def count_votes(votes: pd.DataFrame, *, min_control_accuracy: float = MIN_CONTROL_ACCURACY,
                level: str = "annotator", path: str | os.PathLike = "<votes>",
                validated: bool = False) -> tuple[pd.DataFrame, QualityReport]:
    """The annotations table counted from a votes table, after quality control.

    Parameters
    ----------
    votes : DataFrame in the votes-table format
    min_control_accuracy : float in [0, 1], default=0.7
        Units (annotators or submissions) whose share of correct control
        answers is below this are dropped; units without controls are kept.
    level : {"annotator", "submission", "none"}
    path : str
        Name of the votes table for error messages.
    validated : bool
        Skip :func:`validate_votes` (already done).

    Returns
    -------
    annotations : DataFrame ``dataset, image_id, n_annotators, n_selected, class_id``
        One row per image with at least one accepted vote on it as an image to
        label; control votes never count.
    report : QualityReport
    """
    if level not in QC_LEVELS:
        raise InputError(f"quality control level must be one of {', '.join(QC_LEVELS)}, got {level!r}")
    if not 0.0 <= min_control_accuracy <= 1.0:
        raise InputError(f"the minimum control accuracy must lie in [0, 1], got {min_control_accuracy}")
    v = votes if validated else validate_votes(votes, path)
    keys = ["annotator_id"] if level != "submission" else ["annotator_id", "task_id"]
    units = control_accuracy(v, "annotator" if level != "submission" else "submission", path)
    units["accepted"] = True if level == "none" else ~(units["accuracy"] < min_control_accuracy)
    accepted = v[keys].merge(units[keys + ["accepted"]], on=keys, how="left")["accepted"].to_numpy(bool)
    label = v["is_control"].to_numpy() == 0
    kept = v[label & accepted]
    annotations = (kept.groupby(["dataset", "image_id"], sort=True)
                   .agg(n_annotators=("selected", "size"), n_selected=("selected", "sum"), class_id=("class_id", "first"))
                   .reset_index())
    all_images = v.loc[label, ["dataset", "image_id"]].drop_duplicates()
    lost = all_images.merge(annotations[["dataset", "image_id"]], how="left", indicator=True)
    lost = lost[lost["_merge"] == "left_only"]
    per_annotator = units.groupby("annotator_id")["accepted"].all() if level == "submission" else None
    counts = {
        "n_votes": int(len(v)),
        "n_label_votes": int(label.sum()),
        "n_label_votes_dropped": int((label & ~accepted).sum()),
        "n_annotators": int(v["annotator_id"].nunique()),
        "n_annotators_dropped": int((~units["accepted"]).sum()) if level == "annotator" else 0,
        "n_submissions": int(len(v.drop_duplicates(["annotator_id", "task_id"]))),
        "n_submissions_dropped": (int((~units["accepted"]).sum()) if level == "submission" else
                                  int(len(v.loc[~accepted].drop_duplicates(["annotator_id", "task_id"])))),
        "n_units_without_controls": int(units["accuracy"].isna().sum()),
        "n_images": int(len(all_images)),
        "n_images_without_accepted_votes": int(len(lost)),
    }
    if per_annotator is not None:
        counts["n_annotators_with_a_dropped_submission"] = int((~per_annotator).sum())
    report = QualityReport(level=level, min_control_accuracy=float(min_control_accuracy), units=units,
                           counts=counts, images_without_votes=(lost["dataset"] + "/" + lost["image_id"]).tolist())
    annotations["n_annotators"] = annotations["n_annotators"].astype(np.int64)
    annotations["n_selected"] = annotations["n_selected"].astype(np.int64)
    return annotations[["dataset", "image_id", "n_annotators", "n_selected", "class_id"]], report
