"""Annotation tasks that follow Recht et al.'s MTurk design (ImageNetV2,
``sample_args_10.json``): one target class per task, 48 images per task of
which 3 are positive controls (images of the target class) and 3 negative
controls (images of other classes), the rest images to label; every task is
done by N distinct annotators (10 by default), so every labelled image gets N
votes from N different people.

The reference and the candidate images of a class are shuffled together
before they are cut into tasks, so both sets are judged side by side, by the
same annotators, in the same tasks -- otherwise the matching that follows
would itself be biased.

Images to annotate: a table ``dataset, image_id, class_id, path`` and an
optional ``role``:

* ``label`` (the default): the image is annotated (gets N votes);
* ``control``: the image is only shown as a control, never counted (e.g.
  held-out images with high agreement in an earlier round);
* ``both``: annotated in its own task and used as a control in others.

Where the table has no ``role`` column, the images of the datasets named by
``controls_from`` (default: ``imagenet-val`` when present) get ``both``:
their labels come from the original dataset's own verification. A control
vote never enters an image's count; controls only measure the annotators.

Classes with fewer images than a task holds get one smaller task; a class
with 43..84 images gets two tasks of about equal size, and so on. Controls
rotate through each class's pool (round robin), so tasks share as few
controls as the pool allows. Everything random comes from one seeded
Generator: the same table and seed give byte-identical plan files.

On disk (``plan.json``, ``images.csv``, ``tasks.csv``)::

    images.csv  image_no, dataset, image_id, class_id, role, path (absolute)
    tasks.csv   task_id, class_id (the task's target class), position, image_no,
                kind (label | positive | negative)
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from replication.annotate.classes import ClassDescription, load_class_descriptions
from replication.annotate.files import file_problems, sniff
from replication.errors import InputError
from replication.io.atomic import write_outputs
from replication.io.tables import _fail, _integer_column, name_list, read_table, require_columns

PLAN_FORMAT = "replication-annotate-plan/1"
IMAGE_COLUMNS = ("dataset", "image_id", "class_id", "path")
ROLES = ("label", "control", "both")
KINDS = ("label", "positive", "negative")
#: the dataset whose images serve as controls when the table says nothing (its labels were verified)
DEFAULT_CONTROLS_FROM = ("imagenet-val",)


@dataclass(frozen=True)
class PlanSettings:
    """The design of a plan (Recht et al.'s: 48 images, 3 + 3 controls, 10 annotators).

    Parameters
    ----------
    annotators : int, default=10
        Distinct annotators per task, hence votes per labelled image.
    images_per_task : int, default=48
    positive_controls, negative_controls : int, default=3
    seed : int, default=0
    timeout_s : int, default=600
        Seconds an annotator has for a task before it is handed to someone
        else (Recht et al.'s ``assignment_duration``).
    """

    annotators: int = 10
    images_per_task: int = 48
    positive_controls: int = 3
    negative_controls: int = 3
    seed: int = 0
    timeout_s: int = 600

    def validate(self) -> None:
        """Raise InputError naming the first bad setting."""
        if self.annotators < 1:
            raise InputError(f"--annotators must be >= 1, got {self.annotators}")
        if self.positive_controls < 0 or self.negative_controls < 0:
            raise InputError("the numbers of controls must be >= 0")
        if self.images_per_task - self.positive_controls - self.negative_controls < 1:
            raise InputError(f"--images-per-task {self.images_per_task} leaves no room for images to label "
                             f"besides {self.positive_controls} + {self.negative_controls} controls")
        if self.timeout_s < 1:
            raise InputError(f"--timeout must be >= 1 second, got {self.timeout_s}")

    @property
    def labels_per_task(self) -> int:
        """Images to label per full task."""
        return self.images_per_task - self.positive_controls - self.negative_controls


@dataclass
class Plan:
    """Annotation tasks with their images (see module doc).

    Attributes
    ----------
    images : DataFrame ``image_no, dataset, image_id, class_id, role, path``
    items : DataFrame ``task_id, class_id, position, image_no, kind``, one row per
        image shown in a task, ordered by task then position.
    classes : dict of int to ClassDescription
        The target classes of the tasks.
    settings : PlanSettings
    warnings : list of str
    """

    images: pd.DataFrame
    items: pd.DataFrame
    classes: dict[int, ClassDescription]
    settings: PlanSettings
    warnings: list[str] = field(default_factory=list)

    @property
    def plan_id(self) -> str:
        """sha256 (hex, 16 digits) of the images (without their paths, so the
        files may move), the tasks and the settings: a database holds one plan."""
        h = hashlib.sha256()
        h.update(self.images.drop(columns="path").to_csv(index=False).encode())
        h.update(self.items.to_csv(index=False).encode())
        h.update(json.dumps(asdict(self.settings), sort_keys=True).encode())
        return h.hexdigest()[:16]

    def tasks(self) -> pd.DataFrame:
        """One row per task: ``task_id, class_id, n_items, n_label, n_positive, n_negative``."""
        counts = pd.crosstab(self.items["task_id"], self.items["kind"]).reindex(columns=list(KINDS), fill_value=0)
        first = self.items.groupby("task_id", sort=False)["class_id"].first()
        out = pd.DataFrame({"task_id": first.index, "class_id": first.to_numpy()})
        for kind in KINDS:
            out[f"n_{kind}"] = counts.loc[out["task_id"], kind].to_numpy()
        out.insert(2, "n_items", out[[f"n_{k}" for k in KINDS]].sum(axis=1))
        return out

    def summary(self) -> dict:
        """Counts for plan.json and the command's printout."""
        roles = self.images["role"].value_counts().to_dict()
        labelled = self.images["role"].isin(("label", "both"))
        return {
            "n_images": int(len(self.images)),
            "n_label_images": int(labelled.sum()),
            "n_control_only_images": int(roles.get("control", 0)),
            "n_dual_use_images": int(roles.get("both", 0)),
            "label_images_per_dataset": self.images.loc[labelled, "dataset"].value_counts().sort_index().to_dict(),
            "n_classes": int(self.images.loc[labelled, "class_id"].nunique()),
            "n_tasks": int(self.items["task_id"].nunique()),
            "n_assignments": int(self.items["task_id"].nunique() * self.settings.annotators),
            "n_votes": int(len(self.items) * self.settings.annotators),
        }

    def to_json(self) -> dict:
        """The content of plan.json."""
        return {"format": PLAN_FORMAT, "plan_id": self.plan_id, "settings": asdict(self.settings),
                "summary": self.summary(), "warnings": self.warnings,
                "classes": {str(c): d.to_dict() for c, d in sorted(self.classes.items())}}

    def write(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write plan.json, images.csv and tasks.csv into ``out_dir``, all or none."""
        out = Path(out_dir)
        return write_outputs({out / "images.csv": self.images, out / "tasks.csv": self.items,
                              out / "plan.json": self.to_json()})

    @classmethod
    def read(cls, plan_dir: str | os.PathLike) -> "Plan":
        """Read and check a plan folder written by :meth:`write`."""
        return _read_plan(Path(plan_dir))

    def media_types(self, source: str = "images.csv") -> list[str]:
        """The media type of every image file, by row; InputError naming the
        rows whose file is missing, unreadable or not an image."""
        sniffed = [sniff(p) for p in self.images["path"]]
        problems = [(i, why) for i, (_, why) in enumerate(sniffed) if why is not None]
        if problems:
            shown = "; ".join(f"row {i + 1} {self.images['path'].iat[i]} ({why})" for i, why in problems[:3])
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            raise InputError(f"{source}: {len(problems)} image file(s) cannot be served: {shown}{more}")
        return [kind for kind, _ in sniffed]


def validate_images(df: pd.DataFrame, path: str | os.PathLike = "<images>", *,
                    base_dir: str | os.PathLike | None = None,
                    controls_from: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Check a table of images to annotate and return a clean copy with
    ``image_no, dataset, image_id, class_id, role, path`` (paths made absolute,
    relative ones taken from ``base_dir``). Every file is checked."""
    require_columns(path, df, IMAGE_COLUMNS)
    if len(df) == 0:
        raise InputError(f"{path}: the image table has no rows")
    out = df.copy()
    for col in ("dataset", "image_id", "path"):
        bad = out[col].isna().to_numpy() | (out[col].astype(str).str.strip() == "").to_numpy()
        _fail(path, bad, f"{col} is empty", out)
        out[col] = out[col].astype(str).str.strip()
    out["class_id"] = _integer_column(path, out, "class_id")
    _fail(path, out["class_id"].to_numpy() < 0, "class_id < 0", out)
    _fail(path, out.duplicated(subset=["dataset", "image_id"]).to_numpy(), "duplicate image_id within its dataset", out)
    if "role" in out.columns:
        out["role"] = out["role"].fillna("label").astype(str).str.strip().str.lower().replace("", "label")
        _fail(path, ~out["role"].isin(ROLES).to_numpy(), f"role must be one of {', '.join(ROLES)}", out)
        if controls_from:
            raise InputError(f"{path}: has a role column; --controls-from applies only to tables without one")
    else:
        present = set(out["dataset"])
        sources = tuple(controls_from) if controls_from else tuple(d for d in DEFAULT_CONTROLS_FROM if d in present)
        unknown = [d for d in sources if d not in present]
        if unknown:
            raise InputError(f"--controls-from: no images of {name_list(unknown)} in {path} "
                             f"(datasets: {name_list(sorted(present))})")
        out["role"] = np.where(out["dataset"].isin(sources), "both", "label")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    out["path"] = [os.path.abspath(p if os.path.isabs(p) else base / p) for p in out["path"]]
    problems = file_problems(out["path"])
    if problems:
        mask = np.zeros(len(out), bool)
        mask[[i for i, _ in problems]] = True
        reasons = sorted({why for _, why in problems})
        _fail(path, mask, f"image file {'; '.join(reasons[:3])} (first: {out['path'].iat[problems[0][0]]})", out)
    out = out.sort_values(["class_id", "dataset", "image_id"], kind="stable").reset_index(drop=True)
    out.insert(0, "image_no", np.arange(len(out), dtype=np.int64))
    return out[["image_no", "dataset", "image_id", "class_id", "role", "path"]]


def build_plan(images: pd.DataFrame, settings: PlanSettings = PlanSettings(), *,
               classes: dict[int, ClassDescription] | None = None, source: str = "<images>") -> Plan:
    """Cut validated images (see :func:`validate_images`) into tasks (module doc).

    Parameters
    ----------
    images : DataFrame from :func:`validate_images`
    settings : PlanSettings
    classes : dict of int to ClassDescription, optional
        Descriptions of the target classes (default: the shipped ImageNet table).
    source : str
        Name of the image table, for error messages.
    """
    settings.validate()
    classes = load_class_descriptions() if classes is None else classes
    rng = np.random.default_rng(settings.seed)
    labelled = images[images["role"].isin(("label", "both"))]
    if labelled.empty:
        raise InputError(f"{source}: no image to label (every row has role 'control')")
    targets = np.unique(labelled["class_id"].to_numpy())
    undescribed = [int(c) for c in targets if int(c) not in classes]
    if undescribed:
        raise InputError(f"{source}: no name or description for class_id {name_list(undescribed)}; "
                         f"give a class file with --classes")
    control = images[images["role"].isin(("control", "both"))]
    control_nos = {int(c): rng.permutation(g.to_numpy()) for c, g in control.groupby("class_id")["image_no"]}
    n_ctrl = settings.positive_controls + settings.negative_controls
    if n_ctrl and not control_nos:
        raise InputError(f"{source}: no control images: mark some with a role column (control or both), name "
                         f"their dataset with --controls-from, or plan without controls "
                         f"(--positive-controls 0 --negative-controls 0)")
    cursor = {c: 0 for c in control_nos}

    def take(cls: int, count: int, exclude: set[int]) -> list[int]:
        """Up to ``count`` distinct control images of ``cls``, round robin, none in ``exclude``."""
        pool = control_nos.get(cls, np.empty(0, np.int64))
        picked: list[int] = []
        for _ in range(len(pool)):
            if len(picked) == count:
                break
            no = int(pool[cursor[cls] % len(pool)])
            cursor[cls] += 1
            if no not in exclude and no not in picked:
                picked.append(no)
        return picked

    control_classes = np.array(sorted(control_nos), dtype=np.int64)
    rows: list[tuple[str, int, int, int, str]] = []
    short_pos: list[int] = []
    short_neg: list[int] = []
    by_class = labelled.groupby("class_id")["image_no"]
    for cls, group in by_class:
        cls = int(cls)
        order = rng.permutation(group.to_numpy())
        n_tasks = -(-len(order) // settings.labels_per_task)
        for t, chunk in enumerate(np.array_split(order, n_tasks)):
            chunk_set = {int(x) for x in chunk}
            pos = take(cls, settings.positive_controls, chunk_set)
            others = control_classes[control_classes != cls]
            neg_classes = rng.choice(others, size=min(settings.negative_controls, len(others)), replace=False)
            neg = [n for c in neg_classes for n in take(int(c), 1, chunk_set)]
            short_pos += [cls] if len(pos) < settings.positive_controls else []
            short_neg += [cls] if len(neg) < settings.negative_controls else []
            shown = [(int(n), "label") for n in chunk] + [(n, "positive") for n in pos] + [(n, "negative") for n in neg]
            task_id = f"c{cls:04d}-t{t + 1:02d}"
            for position, k in enumerate(rng.permutation(len(shown))):
                rows.append((task_id, cls, position, *shown[k]))
    items = pd.DataFrame(rows, columns=["task_id", "class_id", "position", "image_no", "kind"])
    warnings = []
    if short_pos:
        warnings.append(f"{len(set(short_pos))} class(es) have fewer than {settings.positive_controls} positive "
                        f"control images for some tasks: {name_list(sorted(set(short_pos)))}")
    if short_neg:
        warnings.append(f"fewer than {settings.negative_controls} classes with control images: "
                        f"some tasks have fewer negative controls")
    used = {int(c): classes[int(c)] for c in targets}
    return Plan(images=images.reset_index(drop=True), items=items, classes=used, settings=settings,
                warnings=warnings)


def _read_plan(plan_dir: Path) -> Plan:
    meta_path, images_path, tasks_path = plan_dir / "plan.json", plan_dir / "images.csv", plan_dir / "tasks.csv"
    for p in (meta_path, images_path, tasks_path):
        if not p.is_file():
            raise InputError(f"{plan_dir}: not a plan folder ({p.name} missing; make one with 'replication annotate plan')")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != PLAN_FORMAT:
        raise InputError(f"{meta_path}: not a plan file of format {PLAN_FORMAT}")
    try:
        settings = PlanSettings(**meta["settings"])
        classes = {int(c): ClassDescription(int(d["class_id"]), tuple(d["names"]), str(d["gloss"]))
                   for c, d in meta["classes"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{meta_path}: malformed settings or classes ({exc})") from None
    images = read_table(images_path)
    require_columns(images_path, images, ("image_no", "dataset", "image_id", "class_id", "role", "path"))
    for col in ("image_no", "class_id"):
        images[col] = _integer_column(images_path, images, col)
    _fail(images_path, images["image_no"].to_numpy() != np.arange(len(images)), "image_no is not the row number - 1")
    _fail(images_path, ~images["role"].isin(ROLES).to_numpy(), "unknown role", images)
    items = read_table(tasks_path)
    require_columns(tasks_path, items, ("task_id", "class_id", "position", "image_no", "kind"))
    items["task_id"] = items["task_id"].astype(str)
    for col in ("class_id", "position", "image_no"):
        items[col] = _integer_column(tasks_path, items, col)
    _fail(tasks_path, ~items["image_no"].isin(images["image_no"]).to_numpy(), "image_no not in images.csv")
    _fail(tasks_path, ~items["kind"].isin(KINDS).to_numpy(), f"kind must be one of {', '.join(KINDS)}")
    _fail(tasks_path, items.duplicated(["task_id", "image_no"]).to_numpy(), "an image twice in one task")
    expected = items.groupby("task_id", sort=False).cumcount().to_numpy()
    _fail(tasks_path, items["position"].to_numpy() != expected, "positions are not 0, 1, 2, ... within each task")
    plan = Plan(images=images[["image_no", "dataset", "image_id", "class_id", "role", "path"]], items=items,
                classes=classes, settings=settings, warnings=list(meta.get("warnings", [])))
    if plan.plan_id != meta.get("plan_id"):
        raise InputError(f"{plan_dir}: images.csv or tasks.csv changed after planning (plan id {plan.plan_id} "
                         f"!= {meta.get('plan_id')} in plan.json); plan again")
    return plan


def read_images(path: str | os.PathLike, *, controls_from: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Read and validate an image table; relative paths are taken from its folder."""
    return validate_images(read_table(path), path, base_dir=Path(path).resolve().parent, controls_from=controls_from)
