"""``graphspec runs``: list run directories and compare them, by reading their files only.

A run directory is a folder holding ``run.json`` (see :mod:`graphspec.train.rundir`);
``runs/<spec>/<run>/`` by default. Everything here reads ``run.json``,
``metrics.json`` and ``history.json`` -- nothing imports TensorFlow, so listing a
hundred runs takes a fraction of a second. A run whose files are missing or damaged
is listed with what could be read (status ``damaged``), never a traceback.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path as FsPath
from typing import Any

from graphspec.errors import Diagnostic, TrainError

_MAX_DEPTH = 3
"""``DIR/run.json``, ``DIR/<run>/run.json`` and ``DIR/<spec>/<run>/run.json`` are found."""


@dataclass
class RunInfo:
    """What ``graphspec runs`` shows of one run directory."""

    path: FsPath
    name: str
    spec: str | None = None
    spec_hash: str | None = None
    graph_hash: str | None = None
    """The expanded graph's hash (equal for specs that build the same model); None for runs before 2026-12."""
    status: str = "damaged"
    epochs: int | None = None
    started: str | None = None
    finished: str | None = None
    duration_s: float | None = None
    best: dict | None = None
    final: dict = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    problem: str | None = None

    def to_dict(self) -> dict:
        return {"path": str(self.path), "name": self.name, "spec": self.spec, "spec_hash": self.spec_hash,
                "graph_hash": self.graph_hash, "status": self.status, "epochs": self.epochs, "started": self.started, "finished": self.finished,
                "duration_s": self.duration_s, "best": self.best, "final": self.final, "overrides": self.overrides,
                "problem": self.problem}


def _read_json(path: FsPath) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


def _override_text(item: Any) -> str | None:
    if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], (list, tuple)):
        path = ".".join(str(p) for p in item[0])
        value = item[1] if isinstance(item[1], str) else json.dumps(item[1])
        return f"{path}={value}"
    return None


def read_run_info(run_dir: str | os.PathLike, name: str | None = None, *, history: bool = False) -> RunInfo:
    """One run directory's summary (``history``: also its per-epoch history)."""
    path = FsPath(run_dir)
    info = RunInfo(path=path, name=name or path.name)
    try:
        run = _read_json(path / "run.json")
        if not isinstance(run, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        info.problem = f"run.json cannot be read ({type(exc).__name__})"
        return info
    info.spec = run.get("spec") if isinstance(run.get("spec"), str) else None
    info.spec_hash = run.get("spec_hash") if isinstance(run.get("spec_hash"), str) else None
    info.graph_hash = run.get("graph_hash") if isinstance(run.get("graph_hash"), str) else None
    info.status = str(run.get("status") or "unknown")
    info.started, info.finished = run.get("started"), run.get("finished")
    start, end = _time(info.started), _time(info.finished)
    if start is not None and end is not None:
        info.duration_s = (end - start).total_seconds()
    if isinstance(run.get("epochs"), int):
        info.epochs = run["epochs"]
    info.overrides = [t for t in map(_override_text, run.get("overrides") or []) if t]
    try:
        metrics = _read_json(path / "metrics.json")
    except (OSError, ValueError):
        metrics = None
    if isinstance(metrics, dict):
        if isinstance(metrics.get("final"), dict):
            info.final = {k: v for k, v in metrics["final"].items() if _number(v)}
        if isinstance(metrics.get("best"), dict):
            info.best = metrics["best"]
        if info.epochs is None and isinstance(metrics.get("epochs"), int):
            info.epochs = metrics["epochs"]
    if history or not info.final:
        try:
            rows = _read_json(path / "history.json")
        except (OSError, ValueError):
            rows = []
        info.history = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
        if info.epochs is None and info.history:
            info.epochs = len(info.history)
        if not info.final and info.history:  # an interrupted run: its last completed epoch
            info.final = {k: v for k, v in info.history[-1].items() if k != "epoch" and _number(v)}
    return info


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def find_runs(root: str | os.PathLike) -> list[FsPath]:
    """Run directories (folders with a run.json) in ``root``, up to ``root/<spec>/<run>``."""
    root = FsPath(root)
    if not root.is_dir():
        raise TrainError([Diagnostic(code="file-not-found", file=str(root),
                                     message=f"no folder '{root}'", hint="give the folder holding the run "
                                     "directories (graphspec train --runs; default runs/)")])
    found: list[FsPath] = []
    level = [root]
    for _ in range(_MAX_DEPTH):
        below = []
        for folder in level:
            if (folder / "run.json").is_file():
                found.append(folder)
                continue
            try:
                below.extend(sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
            except OSError:
                continue
        level = below
    return found


def list_runs(root: str | os.PathLike) -> list[RunInfo]:
    """Every run under ``root``, oldest first (by ``started``, then path)."""
    root = FsPath(root)
    runs = []
    for path in find_runs(root):
        name = str(path.relative_to(root)) if path != root else path.name
        runs.append(read_run_info(path, name))
    return sorted(runs, key=lambda r: (r.started or "", r.name))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.4f}"
    return str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _best_text(info: RunInfo) -> str:
    best = info.best
    if best and _number(best.get("value")):
        return f"{best.get('monitor')}={_fmt(best['value'])} @{best.get('epoch')}"
    shown = [(k, v) for k, v in info.final.items() if k.startswith("val_") and k != "val_learning_rate"]
    if not shown:
        shown = [(k, v) for k, v in info.final.items() if k != "learning_rate"]
    return " ".join(f"{k}={_fmt(v)}" for k, v in shown[:2]) or "-"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_list(runs: list[RunInfo]) -> str:
    rows = [["run", "spec", "hash", "status", "epochs", "best", "duration", "overrides"]]
    for info in runs:
        rows.append([info.name, info.spec or "?", (info.spec_hash or "?").removeprefix("sha256:")[:12],
                     info.status + (f" ({info.problem})" if info.problem else ""),
                     _fmt(info.epochs), _best_text(info), _duration(info.duration_s),
                     " ".join(info.overrides) or "-"])
    return table(rows)


def compare(paths: list[str | os.PathLike]) -> list[RunInfo]:
    """The runs in ``paths`` (each a run directory), with their histories; raises TrainError for a
    path that is not a run directory."""
    result = []
    for path in paths:
        path = FsPath(path)
        if not (path / "run.json").is_file():
            raise TrainError([Diagnostic(code="not-a-run", file=str(path), message=f"'{path}' is not a run "
                                         "directory (no run.json)", hint="list the runs: graphspec runs [DIR]")])
        result.append(read_run_info(path, str(path), history=True))
    return result


def labels(runs: list[RunInfo]) -> list[str]:
    """Short, distinct names: the run folder's name, or more of its path where those collide."""
    names = [r.path.name for r in runs]
    if len(set(names)) == len(names):
        return names
    names = [f"{r.path.parent.name}/{r.path.name}" for r in runs]
    return names if len(set(names)) == len(names) else [str(r.path) for r in runs]


def format_compare(runs: list[RunInfo]) -> str:
    """Metrics side by side: one row per quantity, one column per run; the best value of a row marked ``*``."""
    heads = labels(runs)
    keys: list[str] = []
    for info in runs:
        for key in info.final:
            if key not in keys:
                keys.append(key)
    keys.sort(key=lambda k: (k.startswith("val_"), k == "learning_rate", k))
    rows = [["", *heads],
            ["spec", *[r.spec or "?" for r in runs]],
            ["hash", *[(r.spec_hash or "?").removeprefix("sha256:")[:12] for r in runs]],
            ["graph", *[(r.graph_hash or "?").removeprefix("sha256:")[:12] for r in runs]],
            ["status", *[r.status for r in runs]],
            ["epochs", *[_fmt(r.epochs) for r in runs]],
            ["duration", *[_duration(r.duration_s) for r in runs]],
            ["best", *[_best_text(r) if r.best else "-" for r in runs]]]
    for key in keys:
        values = [r.final.get(key) for r in runs]
        numbers = [v for v in values if _number(v) and math.isfinite(v)]
        mark = None
        if len(numbers) > 1 and key not in ("learning_rate",) and len(set(numbers)) > 1:
            mark = min(numbers) if ("loss" in key or "error" in key) else max(numbers)
        rows.append([key, *[_fmt(v) + (" *" if mark is not None and v == mark else "") for v in values]])
    differing = _differing_overrides(runs)
    if differing:
        rows.append(["overrides", *[" ".join(o for o in r.overrides if o in differing) or "-" for r in runs]])
    return table(rows) + "\n(* the best of the row: lowest loss/error, highest other metric; final metrics)"


def _differing_overrides(runs: list[RunInfo]) -> set[str]:
    every = [set(r.overrides) for r in runs]
    union = set().union(*every) if every else set()
    common = set.intersection(*every) if every else set()
    return union - common
