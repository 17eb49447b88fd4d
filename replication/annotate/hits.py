"""The crowd-platform route: a plan's tasks as HITs, and the platform's
results back into the votes database (so export and quality control are the
same as for the web application's votes).

Supported: Amazon Mechanical Turk, both ways of publishing.

* Requester UI (a "project" with a layout and a batch): ``layout.html`` is the
  layout (inside MTurk's ``crowd-form``), its ``${variables}`` are the headers
  of ``batch_input.csv`` (one row per task); set "assignments per task" to the
  plan's number of annotators (``hit_settings.json`` has Recht et al.'s
  settings). The batch results CSV the requester UI lets you download (one
  row per assignment: ``HITId, AssignmentId, WorkerId, AssignmentStatus,
  SubmitTime, Input.*, Answer.*``) is what :func:`read_results` reads.
* API (HTMLQuestion or ExternalQuestion): ``tasks/<task_id>.html`` is a
  self-contained page per task that reads ``assignmentId`` and
  ``turkSubmitTo`` from its URL and posts ``assignmentId``, ``task_id`` and
  ``selected`` to ``externalSubmit``. Assignments fetched through the API
  import the same way once written with the columns above (``Answer.task_id``
  stands in for ``Input.task_id``).

The answer ``selected`` is the comma-separated 0-based positions of the
selected images. Images are referred to by opaque names (an HMAC of the
image number keyed by the plan id), so workers cannot tell reference from
candidate images by their URLs; ``images.csv`` maps each name to its file,
for uploading under ``--image-base-url``.

Other platforms (Prolific, ...) link participants to a web page: host
``replication annotate serve`` and hand out its annotator links; their
submission codes are not handled here.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from replication.annotate.db import Database
from replication.annotate.plan import Plan
from replication.annotate.store import image_key
from replication.errors import InputError
from replication.io.atomic import write_outputs
from replication.io.tables import _fail, require_columns

#: Recht et al.'s HIT settings (``sample_args_10.json``, ``submit_hits``); assignments = the plan's annotators
HIT_SETTINGS = {"title": "Label new images for machine learning dataset",
                "description": "Select images containing objects of the appropriate type",
                "keywords": "image, label, machine learning, artificial intelligence",
                "reward": "0.1", "assignment_duration": 600, "life_time": 604800, "auto_approval_delay": 259200}
RESULT_COLUMNS = ("HITId", "AssignmentId", "WorkerId", "AssignmentStatus", "Answer.selected")
_ACCEPTED = {"Submitted", "Approved"}
#: time zones MTurk writes in its result files (it writes US Pacific time)
_TZ = {"PST": -8, "PDT": -7, "UTC": 0, "GMT": 0}


def _names(plan: Plan) -> dict[int, str]:
    """Opaque file name (without extension) of every image: image_no -> name."""
    return {int(no): image_key(plan.plan_id, no) for no in plan.images["image_no"]}


def _extension(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    return ext if re.fullmatch(r"\.[a-z0-9]{1,5}", ext) else ".img"


def write_hits(plan: Plan, out_dir: str | os.PathLike, image_base_url: str, *, link_images: bool = False) -> dict:
    """Write the HIT files of ``plan`` into ``out_dir`` (see module doc), all
    or none; returns counts. ``link_images`` adds ``images/<name>`` symbolic
    links to the image files, ready to upload."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    if not re.match(r"^https?://", image_base_url):
        raise InputError(f"--image-base-url must start with https:// (or http://), got {image_base_url!r}")
    base = image_base_url.rstrip("/") + "/"
    out = Path(out_dir)
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape(["html"]))
    template = env.get_template("hit.html")
    names = _names(plan)
    files = {no: names[no] + _extension(p) for no, p in zip(plan.images["image_no"], plan.images["path"])}
    width = int(plan.items.groupby("task_id").size().max())
    slots = [f"image_{i:02d}" for i in range(width)]
    rows, outputs = [], {}
    for task_id, group in plan.items.groupby("task_id", sort=True):
        desc = plan.classes[int(group["class_id"].iat[0])]
        urls = [base + files[int(no)] for no in group.sort_values("position")["image_no"]]
        values = {"task_id": task_id, "class_name": desc.names[0], "gloss": _sentence(desc.gloss),
                  "also_called": f"Also called: {', '.join(desc.names[1:])}." if len(desc.names) > 1 else "",
                  "n_images": len(urls)}
        rows.append({**values, **dict(zip(slots, urls + [""] * (width - len(urls))))})
        outputs[out / "tasks" / f"{task_id}.html"] = template.render(mode="standalone", images=urls, **values)
    layout = template.render(mode="layout", images=[f"${{{s}}}" for s in slots],
                             **{k: f"${{{k}}}" for k in ("task_id", "class_name", "gloss", "also_called")})
    shown = plan.items["image_no"].unique()
    manifest = pd.DataFrame({"file": [files[int(n)] for n in shown],
                             "path": plan.images.set_index("image_no").loc[shown, "path"].to_numpy()})
    settings = {**HIT_SETTINGS, "max_assignments": plan.settings.annotators, "plan_id": plan.plan_id,
                "image_base_url": base, "answer": "selected: comma-separated 0-based positions of the selected images"}
    outputs.update({out / "layout.html": layout, out / "batch_input.csv": pd.DataFrame(rows),
                    out / "images.csv": manifest, out / "hit_settings.json": settings})
    write_outputs(outputs)
    if link_images:
        folder = out / "images"
        folder.mkdir(parents=True, exist_ok=True)
        for name, path in zip(manifest["file"], manifest["path"]):
            link = folder / name
            if not link.is_symlink():
                os.symlink(path, link)
    return {"tasks": len(rows), "images": len(manifest), "max_assignments": plan.settings.annotators}


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")) if text else ""


def parse_submit_time(text: str) -> float | None:
    """Seconds since 1970 of MTurk's ``Wed Jan 10 12:34:56 PST 2024`` or an
    ISO 8601 time with a zone; None when it is neither."""
    text = str(text).strip()
    m = re.fullmatch(r"\w{3} (\w{3}) +(\d{1,2}) (\d{2}:\d{2}:\d{2}) ([A-Z]{3}) (\d{4})", text)
    if m and m.group(4) in _TZ:
        local = datetime.strptime(f"{m.group(1)} {m.group(2)} {m.group(5)} {m.group(3)}", "%b %d %Y %H:%M:%S")
        return (local - timedelta(hours=_TZ[m.group(4)])).replace(tzinfo=timezone.utc).timestamp()
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp.timestamp() if stamp.tzinfo is not None else None


@dataclass
class ImportReport:
    """What :func:`import_results` stored and skipped."""

    assignments: int = 0
    votes: int = 0
    workers: int = 0
    skipped_rejected: int = 0
    skipped_known: int = 0

    def lines(self) -> list[str]:
        """Readable summary lines."""
        out = [f"imported {self.assignments} assignment(s) of {self.workers} worker(s): {self.votes} votes"]
        if self.skipped_rejected:
            out.append(f"skipped {self.skipped_rejected} rejected assignment(s)")
        if self.skipped_known:
            out.append(f"skipped {self.skipped_known} assignment(s) imported before")
        return out


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """Read a batch results CSV as strings (every cell kept as written)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputError(f"{p}: cannot read the results CSV: {str(exc).strip().splitlines()[0]}") from None
    require_columns(p, df, RESULT_COLUMNS)
    if "Input.task_id" not in df and "Answer.task_id" not in df:
        raise InputError(f"{p}: missing column Input.task_id (or Answer.task_id): which task each row answers")
    if len(df) == 0:
        raise InputError(f"{p}: the results CSV has no rows")
    return df


def import_results(db: Database, plan: Plan, results: pd.DataFrame, path: str | os.PathLike = "<results>",
                   source: str = "mturk") -> ImportReport:
    """Store a platform's results (see :func:`read_results`) as votes in
    ``db``, which must hold ``plan``. Every row is checked before anything is
    written; then all are stored in one transaction. Rows of assignments
    imported before are skipped, so a re-downloaded file can be imported again."""
    from replication.annotate.store import load_plan

    df = results.reset_index(drop=True)
    report = ImportReport()
    status = df["AssignmentStatus"].str.strip()
    _fail(path, ~status.isin(_ACCEPTED | {"Rejected"}).to_numpy(),
          "AssignmentStatus must be Submitted, Approved or Rejected")
    for col in ("HITId", "AssignmentId", "WorkerId"):
        _fail(path, (df[col].str.strip() == "").to_numpy(), f"{col} is empty")
    task = (df["Input.task_id"] if "Input.task_id" in df else df["Answer.task_id"]).str.strip()
    if "Input.task_id" in df and "Answer.task_id" in df:
        _fail(path, ((df["Answer.task_id"].str.strip() != "") & (df["Answer.task_id"].str.strip() != task)).to_numpy(),
              "Answer.task_id differs from Input.task_id")
    sizes = plan.items.groupby("task_id").size()
    _fail(path, ~task.isin(sizes.index).to_numpy(), "task_id is not a task of this plan")
    _fail(path, df["AssignmentId"].duplicated().to_numpy(), "AssignmentId appears twice")
    keep = status.isin(_ACCEPTED).to_numpy()
    report.skipped_rejected = int((~keep).sum())
    twice = np.zeros(len(df), bool)
    twice[keep] = pd.DataFrame({"w": df["WorkerId"], "t": task})[keep].duplicated().to_numpy()
    _fail(path, twice, "the same worker answered this task twice")
    selections = []
    for i, (text, t) in enumerate(zip(df["Answer.selected"], task)):
        picked = _positions(text, int(sizes.get(t, 0)))
        if picked is None and keep[i]:
            _fail(path, np.arange(len(df)) == i, f"Answer.selected {text!r} is not comma-separated positions "
                                                 f"0..{int(sizes.get(t, 1)) - 1} of task {t}")
        selections.append(picked)
    stamps = df["SubmitTime"] if "SubmitTime" in df else pd.Series("", index=df.index)
    times = [parse_submit_time(s) if s else None for s in stamps]
    if "SubmitTime" in df:
        _fail(path, np.array([t is None for t in times]) & keep,
              "SubmitTime is not a time (MTurk's 'Wed Jan 10 12:34:56 PST 2024' or ISO 8601 with a zone)")
    items = {t: g.sort_values("position")[["position", "image_no", "kind"]].to_numpy()
             for t, g in plan.items.groupby("task_id")}
    ids = [f"{source}:{a.strip()}" for a in df["AssignmentId"]]
    workers = [f"{source}:{w.strip()}" for w in df["WorkerId"]]
    now = time.time()
    load_plan(db, plan)  # every row checked: now the database
    try:
        with db.transaction() as tx:
            known = {r[0] for r in tx.all("SELECT assignment_id FROM assignments WHERE assignment_id LIKE ?",
                                           (f"{source}:%",))}
            rows = [i for i in range(len(df)) if keep[i] and ids[i] not in known]
            report.skipped_known = int(sum(keep[i] and ids[i] in known for i in range(len(df))))
            per_task = pd.Series([task.iat[i] for i in rows], dtype=object).value_counts()
            for t, n in per_task.items():
                taken, replicas = tx.one("SELECT taken, replicas FROM tasks WHERE task_id = ?", (t,))
                if taken + n > replicas:
                    raise InputError(f"{path}: task {t} would get {taken + n} assignments, the plan asks for "
                                     f"{replicas} ({taken} stored already)")
            new_workers = sorted({workers[i] for i in rows})
            tx.executemany("INSERT INTO annotators (annotator_id, token_hash, source, created_at) VALUES (?, NULL, ?, ?) "
                           "ON CONFLICT (annotator_id) DO NOTHING", [(w, source, now) for w in new_workers])
            for i in rows:
                t, stamp = task.iat[i], float(times[i]) if times[i] is not None else now
                tx.execute("INSERT INTO assignments (assignment_id, task_id, annotator_id, nonce, status, issued_at, "
                           "expires_at, submitted_at) VALUES (?, ?, ?, '-', 'submitted', ?, NULL, ?)",
                           (ids[i], t, workers[i], stamp, stamp))
                tx.execute("UPDATE tasks SET taken = taken + 1, done = done + 1 WHERE task_id = ?", (t,))
                chosen = selections[i]
                tx.executemany("INSERT INTO votes (annotator_id, task_id, image_no, assignment_id, position, selected, "
                               "is_control, submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               [(workers[i], t, int(no), ids[i], int(pos), int(pos in chosen), int(kind != "label"),
                                 stamp) for pos, no, kind in items[t]])
                report.votes += len(items[t])
            report.assignments, report.workers = len(rows), len(new_workers)
    except db.IntegrityError as exc:
        raise InputError(f"{path}: conflicts with votes stored already ({' '.join(str(exc).split())[:200]}); "
                         f"nothing imported") from None
    return report


def _positions(text: str, n: int) -> set[int] | None:
    """The set of positions in ``"3,7,12"`` (empty text: none), or None when malformed or out of 0..n-1."""
    text = str(text).strip()
    if not text:
        return set()
    parts = [p.strip() for p in re.split(r"[,|; ]+", text) if p.strip()]
    if not all(p.isdigit() for p in parts):
        return None
    values = [int(p) for p in parts]
    if len(set(values)) != len(values) or any(v >= n for v in values):
        return None
    return set(values)
