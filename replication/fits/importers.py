"""Published results tables -> accuracy tables (``model`` + dataset-id columns
in percent, other columns carried along).

- :func:`import_timm`: timm's ``results/`` folder (``results-imagenet.csv``,
  ``results-imagenetv2-matched-frequency.csv``, ``-real``, ``-a``, ``-r``,
  ``results-sketch.csv``), outer-joined on ``(model, img_size)``; models
  evaluated at two image sizes become two rows ``<name>@<img_size>``. GMACs per
  image from ``benchmark-infer-*.csv`` are joined when those files are present.
- :func:`import_testbed`: Taori et al.'s ``robustness_top1s.csv`` with the
  categories of ``model_types.csv``.

Nothing is dropped silently: every row that finds no partner in a join is
kept and named in the :class:`ImportResult` messages (also logged as warnings).
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from replication.errors import InputError
from replication.io.tables import check_percent, name_list, read_table, require_unique
from replication.summary import Summary

log = logging.getLogger(__name__)

#: dataset id -> file in timm's results folder (top-1 in percent, keyed on model + img_size)
TIMM_RESULTS = {
    "imagenet-val": "results-imagenet.csv",
    "imagenetv2-matched-frequency": "results-imagenetv2-matched-frequency.csv",
    "imagenet-real": "results-imagenet-real.csv",
    "imagenet-a": "results-imagenet-a.csv",
    "imagenet-r": "results-imagenet-r.csv",
    "imagenet-sketch": "results-sketch.csv",
}
TIMM_KEYS = ("model", "img_size")
TIMM_META = ("param_count", "crop_pct", "interpolation")

#: testbed column -> dataset id (the ImageNet-v2 sets as the testbed's paper plots use them)
TESTBED_COLUMNS = {
    "val": "imagenet-val",
    "imagenetv2-matched-frequency-format-val": "imagenetv2-matched-frequency",
    "imagenetv2-threshold-0.7-format-val": "imagenetv2-threshold0.7",
    "imagenetv2-top-images-format-val": "imagenetv2-top-images",
    "imagenet-a": "imagenet-a",
    "imagenet-r": "imagenet-r",
    "imagenet-sketch": "imagenet-sketch",
    "objectnet-1.0-beta": "objectnet",
}
#: images behind each testbed dataset column (for binomial intervals; the testbed's eval-setting sizes)
DATASET_SIZES = {"imagenet-val": 50_000, "imagenetv2-matched-frequency": 10_000,
                 "imagenetv2-threshold0.7": 10_000, "imagenetv2-top-images": 10_000,
                 "imagenet-a": 7_500, "imagenet-r": 30_000, "imagenet-sketch": 50_000, "objectnet": 18_514}
_LISTED = 5


@dataclass
class ImportResult:
    """An imported accuracy table and what happened on the way.

    Attributes
    ----------
    source : str                 ``"timm"`` or ``"testbed"``
    table : pandas.DataFrame     the accuracy table (percent)
    datasets : list of str       its dataset columns
    messages : list of str       every row kept without a partner, every file skipped
    counts : dict                rows read per input file
    """

    source: str
    table: pd.DataFrame
    datasets: list[str]
    messages: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def _note(self, msg: str) -> None:
        self.messages.append(msg)
        log.warning(msg)

    def summary(self) -> Summary:
        """Models with a value and mean top-1 (percent) per dataset, input row
        counts and the messages logged while importing."""
        rows = pd.DataFrame({"models with a value": self.table[self.datasets].notna().sum(),
                             "mean top-1 (%)": self.table[self.datasets].mean()})
        info = [("Source", self.source), ("Rows", str(len(self.table))),
                ("Input rows", ", ".join(f"{k}: {v}" for k, v in self.counts.items()))]
        return Summary("Imported accuracy table", info, rows, notes=list(self.messages))

    def to_dict(self) -> dict:
        """JSON-ready: source, row count, dataset columns, input counts, messages."""
        return {"source": self.source, "rows": len(self.table), "datasets": self.datasets,
                "counts": self.counts, "messages": self.messages}


def _percent(frame: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    raw = frame[col]
    vals = pd.to_numeric(raw.astype(str).str.replace(",", "", regex=False).str.strip().replace({"": np.nan, "nan": np.nan}),
                         errors="coerce")
    bad = vals.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{path}: row {i + 1}: {col} {raw.iloc[i]!r} is not a number")
    out = ((vals < 0) | (vals > 100)).to_numpy()
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise InputError(f"{path}: row {i + 1}: {col} = {vals.iloc[i]} is outside 0..100 (percent)")
    return vals.to_numpy(dtype=float)


# --------------------------------------------------------------------------- timm
def _read_timm_file(path: Path) -> pd.DataFrame:
    df = read_table(path)
    missing = [c for c in (*TIMM_KEYS, "top1") if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns))}")
    required = [c for c in (*TIMM_KEYS, "top1", "top1_err", "top5", "top5_err", *TIMM_META) if c in df.columns]
    blank = df[required].isna().any(axis=1).to_numpy()   # timm fills these in every row
    if blank.any():
        i = int(np.flatnonzero(blank)[0])
        cols = [c for c in required if pd.isna(df[c].iloc[i])]
        raise InputError(f"{path}: row {i + 1}{'' if blank.sum() == 1 else f' (+{int(blank.sum()) - 1} more)'}: "
                         f"{', '.join(cols)} blank; timm's results files fill them in every row (is the file cut short?)")
    size = pd.to_numeric(df["img_size"], errors="coerce")
    if size.isna().any() or (size != size.round()).any():
        i = int(np.flatnonzero((size.isna() | (size != size.round())).to_numpy())[0])
        raise InputError(f"{path}: row {i + 1}: img_size {df['img_size'].iloc[i]!r} is not an integer")
    df["img_size"] = size.astype(np.int64)
    dup = df.duplicated(list(TIMM_KEYS), keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise InputError(f"{path}: row {i + 1}: duplicate (model, img_size) = ({df['model'].iloc[i]}, {df['img_size'].iloc[i]})")
    df["top1"] = _percent(df, "top1", path)
    return df


def _pt_version(name: str) -> int:
    m = re.search(r"-pt(\d+)-", name)
    return int(m.group(1)) if m else -1


def load_timm_gmacs(folder: str | os.PathLike) -> pd.DataFrame:
    """GMACs per image from timm's ``benchmark-infer-*.csv`` files.

    Keyed on ``(architecture, img_size)`` (architecture = model name before
    the first '.'). Where files disagree the newest PyTorch version wins
    (pt291 > pt240 > ...; pt210 differs for some attention models).

    Returns a DataFrame ``architecture, img_size, infer_gmacs, gmacs_source``
    (empty when there are no benchmark files).
    """
    files = sorted(Path(folder).glob("benchmark-infer-*.csv"),
                   key=lambda p: (-_pt_version(p.name), "dynamo" in p.name, p.name))
    parts = []
    for rank, path in enumerate(files):
        b = read_table(path)
        missing = [c for c in ("model", "infer_img_size", "infer_gmacs") if c not in b.columns]
        if missing:   # e.g. CPU benchmarks without a GMACs column
            log.debug("%s: no %s column; skipped", path, ", ".join(missing))
            continue
        parts.append(pd.DataFrame({"architecture": b["model"].astype(str),
                                   "img_size": pd.to_numeric(b["infer_img_size"], errors="coerce"),
                                   "infer_gmacs": pd.to_numeric(b["infer_gmacs"], errors="coerce"),
                                   "gmacs_source": path.name, "_rank": rank}))
    if not parts:
        return pd.DataFrame(columns=["architecture", "img_size", "infer_gmacs", "gmacs_source"])
    allb = pd.concat(parts, ignore_index=True).dropna(subset=["img_size", "infer_gmacs"])
    allb = allb[allb["infer_gmacs"] > 0]
    allb["img_size"] = allb["img_size"].astype(np.int64)
    best = allb.sort_values("_rank", kind="stable").drop_duplicates(["architecture", "img_size"], keep="first")
    return best.drop(columns="_rank").reset_index(drop=True)


def import_timm(folder: str | os.PathLike, *, gmacs: bool = True) -> ImportResult:
    """Join timm's results tables into one accuracy table.

    Parameters
    ----------
    folder : path
        timm's ``results/`` folder; ``results-imagenet.csv`` is required, the
        other files of :data:`TIMM_RESULTS` are joined when present.
    gmacs : bool, default=True
        Also join ``infer_gmacs`` (GMACs per image) from the benchmark files.

    Returns
    -------
    ImportResult
        ``table`` columns: ``model`` (unique id: timm name, plus ``@<img_size>``
        for models evaluated at two sizes), ``timm_model``, ``architecture``,
        ``img_size``, one column per dataset id (top-1, percent),
        ``param_count`` (millions), ``crop_pct``, ``interpolation`` and, when
        benchmark files exist, ``infer_gmacs`` and ``gmacs_source``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder (expected timm's results/ folder with results-imagenet.csv)")
    base_path = folder / TIMM_RESULTS["imagenet-val"]
    if not base_path.is_file():
        raise InputError(f"{base_path}: no such file (timm's results folder must hold results-imagenet.csv)")
    result = ImportResult("timm", pd.DataFrame(), [])
    frames: dict[str, pd.DataFrame] = {}
    for dataset, name in TIMM_RESULTS.items():
        path = folder / name
        if not path.is_file():
            result._note(f"{path}: not found; no {dataset} column")
            continue
        frames[dataset] = _read_timm_file(path)
        result.counts[name] = len(frames[dataset])
    base = frames["imagenet-val"]
    keys = list(TIMM_KEYS)
    table = base[keys + [c for c in TIMM_META if c in base.columns]].copy()
    table["imagenet-val"] = base["top1"].to_numpy()
    for dataset, frame in frames.items():
        if dataset == "imagenet-val":
            continue
        part = frame[keys + ["top1"] + [c for c in TIMM_META if c in frame.columns]].rename(
            columns={"top1": dataset, **{c: f"_{c}" for c in TIMM_META}})
        merged = table.merge(part, on=keys, how="outer", indicator=True)
        only_left = merged["_merge"] == "left_only"
        only_right = merged["_merge"] == "right_only"
        if only_left.any():
            result._note(f"{TIMM_RESULTS[dataset]}: no row for {int(only_left.sum())} configuration(s) "
                         f"({name_list(_config_names(merged[only_left]), _LISTED)}); their {dataset} is blank")
        if only_right.any():
            result._note(f"{TIMM_RESULTS[dataset]}: {int(only_right.sum())} configuration(s) not in "
                         f"the files joined before it ({name_list(_config_names(merged[only_right]), _LISTED)}); kept as extra rows "
                         f"with blank values for those files")
        for c in TIMM_META:   # metadata from the first file that has the row
            if f"_{c}" in merged.columns:
                merged[c] = merged[c].where(merged[c].notna(), merged[f"_{c}"]) if c in merged else merged[f"_{c}"]
        table = merged.drop(columns=["_merge"] + [f"_{c}" for c in TIMM_META if f"_{c}" in merged.columns])
    datasets = [d for d in TIMM_RESULTS if d in frames]
    table["timm_model"] = table["model"].astype(str)
    table["architecture"] = table["timm_model"].str.split(".", n=1).str[0]
    n_sizes = table.groupby("timm_model")["img_size"].transform("nunique")
    two = n_sizes > 1
    table["model"] = np.where(two, table["timm_model"] + "@" + table["img_size"].astype(str), table["timm_model"])
    clash = table["model"].duplicated(keep=False)
    if clash.any():
        raise InputError(f"{folder}: model ids collide after adding @img_size: {name_list(table.loc[clash, 'model'].unique(), _LISTED)}")
    if "param_count" in table.columns:
        table["param_count"] = pd.to_numeric(table["param_count"].astype(str).str.replace(",", "", regex=False),
                                             errors="coerce")
    if gmacs:
        table = _join_gmacs(table, folder, result)
    lead = ["model", "timm_model", "architecture", "img_size", *datasets]
    result.table = table[lead + [c for c in table.columns if c not in lead]].reset_index(drop=True)
    check_percent(folder, result.table[datasets].to_numpy(dtype=float), datasets,
                  where=lambda rows: f"configuration(s) {name_list(result.table.loc[rows, 'model'], _LISTED)}")
    result.datasets = datasets
    log.info("timm: %d configurations (%d models at two image sizes)", len(table), int(table.loc[two, "timm_model"].nunique()))
    return result


def _config_names(frame: pd.DataFrame) -> list[str]:
    return [f"{m}@{s}" for m, s in zip(frame["model"], frame["img_size"])]


def _join_gmacs(table: pd.DataFrame, folder: Path, result: ImportResult) -> pd.DataFrame:
    g = load_timm_gmacs(folder)
    if g.empty:
        result._note(f"{folder}: no benchmark-infer-*.csv files; no infer_gmacs column")
        return table
    out = table.merge(g, on=["architecture", "img_size"], how="left")
    missing = out["infer_gmacs"].isna()
    if missing.any():
        result._note(f"benchmark-infer-*.csv: no GMACs for {int(missing.sum())} of {len(out)} configurations "
                     f"({name_list(out.loc[missing, 'model'], _LISTED)}); their infer_gmacs is blank")
    return out


# --------------------------------------------------------------------------- testbed
def import_testbed(path: str | os.PathLike, model_types: str | os.PathLike | None = None) -> ImportResult:
    """Read the testbed's ``robustness_top1s.csv`` as an accuracy table.

    The ImageNet-v2 ``*-format-val`` columns and ``val`` become the dataset ids
    (:data:`TESTBED_COLUMNS`); the testbed's own columns that share a name with
    a dataset id are kept as ``testbed:<name>``; all other columns are carried.
    ``model_types`` (default: ``model_types.csv`` beside ``path``, when it
    exists) adds ``model_type`` and ``nat_model_type`` (STANDARD, MORE_DATA,
    ROBUST_INTV, ...). Models without a category are kept and named.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "robustness_top1s.csv"
    df = read_table(path)
    first = str(df.columns[0])
    if "model" not in df.columns:
        df = df.rename(columns={first: "model"})
    df["model"] = df["model"].astype(str)
    require_unique(path, df, "model")
    missing = [c for c in TESTBED_COLUMNS if c not in df.columns]
    if "val" in missing:
        raise InputError(f"{path}: no 'val' column; is this the testbed's robustness_top1s.csv?")
    result = ImportResult("testbed", pd.DataFrame(), [], counts={path.name: len(df)})
    if missing:
        result._note(f"{path}: column(s) {', '.join(missing)} not found")
    ids = {src: dst for src, dst in TESTBED_COLUMNS.items() if src in df.columns}
    clashing = {c: f"testbed:{c}" for c in df.columns if c in ids.values()}
    df = df.rename(columns={**clashing, **ids})
    datasets = list(ids.values())
    for col in datasets:
        df[col] = _percent(df, col, path)
    sizes = {f"{col}_n": n for col, n in DATASET_SIZES.items() if col in datasets}
    df = pd.concat([df, pd.DataFrame(sizes, index=df.index)], axis=1)
    types_path = Path(model_types) if model_types is not None else path.parent / "model_types.csv"
    if types_path.is_file():
        types = read_table(types_path)
        if "model" not in types.columns:
            raise InputError(f"{types_path}: no 'model' column")
        types = types.drop_duplicates("model", keep="first")
        cols = [c for c in types.columns if c != "model"]
        df = df.merge(types, on="model", how="left")
        untyped = df[cols[0]].isna() if cols else pd.Series(False, index=df.index)
        if untyped.any():
            result._note(f"{types_path}: no category for {int(untyped.sum())} model(s) ({name_list(df.loc[untyped, 'model'], _LISTED)})")
        result.counts[types_path.name] = len(types)
    elif model_types is not None:
        raise InputError(f"{types_path}: no such file")
    else:
        result._note(f"{types_path}: not found; no model categories")
    lead = ["model", *datasets]
    result.table = df[lead + [c for c in df.columns if c not in lead]]
    check_percent(path, result.table[datasets].to_numpy(dtype=float), datasets)
    result.datasets = datasets
    return result
