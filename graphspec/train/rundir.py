"""The run directory: its layout and atomic writes.

``runs/<spec name>/<run name>/`` by default::

    run.json           status (running / interrupted / failed / completed), spec path, times, overrides
    spec.yaml          the spec's text as trained
    spec.json          the canonical spec;  spec.sha256: its hash
    settings.json      the resolved train settings (defaults filled in, seed drawn)
    versions.json      Python, TensorFlow, Keras, NumPy and graphspec versions
    model.keras        the final model (with the spec and its hash in its metadata)
    best.keras         the best model by the monitored quantity
    checkpoint.npz     the resumable state: weights, optimizer, RNG, epoch, callbacks, history
    history.json/.csv  one row per epoch
    metrics.json       final metrics (last epoch, train and validation)
    curves.png         loss and metric curves
    logs/              TensorBoard logs
    .lock              flock-ed while a train writes the folder (one writer at a time)

Every file is written to a temporary name in the same folder, fsynced and renamed
(``os.replace``), and the folder is fsynced: a crash leaves the old file or the
new one, never half of one; the temporary files a kill leaves are removed by the
next train that locks the folder. A folder holding nothing trained (killed before
its first checkpoint) is reused by ``--name`` and restarted by ``--resume``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import platform
import time
from pathlib import Path as FsPath
from typing import Any

from graphspec.errors import Diagnostic, GraphspecError, TrainError

RUN_FILES = ("run.json", "spec.yaml", "spec.json", "spec.sha256", "settings.json", "versions.json", "model.keras",
             "best.keras", "checkpoint.npz", "history.json", "history.csv", "metrics.json", "curves.png")


# Atomic writing is shared with `graphspec build`; kept importable from here.
from graphspec.files import AtomicFile, atomic_write_bytes, atomic_write_json, atomic_write_text, fix_mode, fsync_dir  # noqa: E402,F401


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    result = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("tensorflow", "tensorflow-cpu", "keras", "jax", "jaxlib", "numpy", "graphspec"):
        try:
            result[package] = version(package)
        except PackageNotFoundError:
            continue
    try:
        import tensorflow as tf

        result["tensorflow"] = tf.__version__
    except ImportError:  # pragma: no cover
        pass
    try:
        import keras

        result["keras_backend"] = keras.backend.backend()
    except ImportError:  # pragma: no cover
        pass
    return result


_RUN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


LOCK_FILE = ".lock"


class RunLock:
    """An exclusive ``flock`` on ``<run>/.lock``, held while a ``train`` writes the run directory:
    a second ``train`` into the same folder (the same ``--name``, or ``--resume`` of a running run)
    is refused instead of writing into it too. The kernel releases it when the process ends,
    however it ends, so a killed run leaves no stale lock."""

    def __init__(self, run_dir: FsPath):
        self.run_dir = FsPath(run_dir)
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        path = self.run_dir / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise TrainError([Diagnostic(code="cannot-write", file=str(self.run_dir), message=f"cannot create "
                                         f"'{path}': {exc.strerror or exc}", hint="check that the folder is writable")]) from None
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no locking
            self.fd = fd
            return self
        for attempt in range(6):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if attempt < 5:
                    # another command's refuse_if_held() may hold a shared lock for an instant: not a writer
                    time.sleep(0.02)
                    continue
                error = self._locked_error(fd)
                os.close(fd)
                raise error from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass  # the pid is only for the message
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def refuse_if_held(self) -> None:
        """Raise ``run-locked`` if another process holds the lock now; creates and changes nothing.

        ``train`` asks this before importing TensorFlow, so a second ``train`` into a running run's
        folder is refused in a fraction of a second; :meth:`acquire` still decides, later."""
        try:
            fd = os.open(self.run_dir / LOCK_FILE, os.O_RDONLY)
        except OSError:
            return  # no lock file (a new folder) or unreadable: acquire() reports what matters
        try:
            import fcntl

            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # conflicts with a writer's exclusive lock
            except OSError:
                raise self._locked_error(fd) from None
        except ImportError:  # pragma: no cover - not POSIX: no locking
            pass
        finally:
            os.close(fd)

    def _locked_error(self, fd: int) -> TrainError:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            holder = os.read(fd, 64).decode("ascii", "replace").strip()
        except OSError:
            holder = ""
        return TrainError([Diagnostic(
            code="run-locked", file=str(self.run_dir),
            message=f"another graphspec train{f' (pid {holder})' if holder.isdigit() else ''} is writing "
            f"'{self.run_dir}'", hint="wait for it to finish (or stop it), or train under another --name")])


def is_temp_file(name: str) -> bool:
    """A temporary file of an atomic write of one of the run's files (``.checkpoint.npz.x8f2.tmp``)."""
    return name.startswith(".") and any(name.startswith(f".{f}.") for f in RUN_FILES)


def remove_temp_files(run_dir: FsPath) -> list[str]:
    """Delete what interrupted atomic writes left (a SIGKILL or power loss between writing and
    renaming). Only called while holding the run's lock, so no write of this run is in flight."""
    removed = []
    try:
        entries = list(FsPath(run_dir).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if is_temp_file(entry.name) and entry.is_file():
            try:
                entry.unlink()
                removed.append(entry.name)
            except OSError:
                pass
    return removed


def has_training_state(run_dir: FsPath) -> bool:
    """Whether a run directory holds anything trained (a checkpoint or a model) that reuse would lose."""
    return any((run_dir / name).exists() for name in ("checkpoint.npz", "model.keras", "best.keras"))


def _status(run_dir: FsPath) -> str | None:
    try:
        info = read_json(run_dir / "run.json")
        return info.get("status") if isinstance(info, dict) else None
    except (OSError, ValueError):
        return None


def check_run_name(run_name: str | None) -> None:
    """Refuse a run name that is not one folder name (``bad-run-name``)."""
    if run_name is not None and not _RUN_NAME.fullmatch(run_name):
        # A run name often comes from a branch or PR title: it must not steer the path.
        raise TrainError([Diagnostic(code="bad-run-name", message=f"'{run_name}' is not a run name",
                                     hint="letters, digits, '.', '_' and '-', not starting with '.' (one folder)")])


def _mkdir(path: FsPath, exist_ok: bool) -> None:
    try:
        path.mkdir(parents=True, exist_ok=exist_ok)
    except FileExistsError:
        raise
    except OSError as exc:
        raise TrainError([Diagnostic(code="cannot-write", message=f"cannot create the run directory "
                                     f"'{path}': {exc.strerror}", hint="choose another --runs folder")]) from None


def new_run_dir(root: str | os.PathLike, spec_name: str, run_name: str | None) -> FsPath:
    """``root/<spec name>/<run name>`` (see :func:`open_run_dir`); the lock is dropped at once."""
    path, lock = open_run_dir(root, spec_name, run_name)
    lock.release()
    return path


def open_run_dir(root: str | os.PathLike, spec_name: str, run_name: str | None) -> tuple[FsPath, RunLock]:
    """``root/<spec name>/<run name>``, created and locked; the run name defaults to a timestamp, made unique.

    A named folder that already exists is reused only when it holds nothing trained (no
    checkpoint, no model: a run stopped before its first epoch began) and only graphspec's
    run files; its leftovers are then overwritten. Otherwise it is ``run-exists``, with a hint
    that fits its state (resume it, or it completed)."""
    check_run_name(run_name)
    base = FsPath(root) / spec_name
    name = run_name or time.strftime("%Y%m%d-%H%M%S")
    candidate = base / name
    if run_name is None:
        suffix = 2
        while True:
            try:
                _mkdir(candidate, exist_ok=False)  # atomic: two runs started in the same second differ
                break
            except FileExistsError:
                candidate = base / f"{name}-{suffix}"
                suffix += 1
        return candidate, RunLock(candidate).acquire()
    try:
        _mkdir(candidate, exist_ok=True)
    except FileExistsError:  # a file of that name
        raise TrainError([Diagnostic(code="run-exists", message=f"'{candidate}' exists and is not a folder",
                                     hint="choose another --name")]) from None
    lock = RunLock(candidate).acquire()
    try:
        foreign = sorted(e.name for e in candidate.iterdir()
                         if e.name not in RUN_FILES and e.name not in (LOCK_FILE, "logs", "evaluation.json")
                         and not is_temp_file(e.name))
        if has_training_state(candidate) or foreign:
            status = _status(candidate)
            if foreign and not has_training_state(candidate):
                hint = "choose another --name (the folder holds files that graphspec did not write: " \
                       f"{', '.join(foreign[:3])})"
            elif status == "completed":
                hint = f"choose another --name (that run completed; evaluate it: graphspec evaluate {candidate})"
            else:
                hint = f"continue it: graphspec train --resume {candidate}, or choose another --name"
            raise TrainError([Diagnostic(code="run-exists", message=f"run directory '{candidate}' already exists"
                                         f"{f' ({status})' if status else ''}", hint=hint)])
        remove_temp_files(candidate)
    except BaseException:
        lock.release()
        raise
    return candidate, lock


STATUSES = ("running", "interrupted", "failed", "completed")


class RunDirectory:
    """One run directory, locked while open, and the lifecycle of its ``run.json``.

    ``created`` (the header files, ``run.json`` last, so a folder with a ``run.json`` has them all)
    -> ``running`` -> ``completed`` / ``interrupted`` / ``failed``; an interrupted or failed run goes
    back to ``running`` when resumed, a completed one when extended (``--resume --epochs N``).
    Every status change is one atomic rewrite of ``run.json`` made here."""

    def __init__(self, path: FsPath, lock: RunLock):
        self.path = FsPath(path)
        self.lock = lock

    @classmethod
    def create(cls, root: str | os.PathLike, spec_name: str, run_name: str | None) -> "RunDirectory":
        """A new run's folder (see :func:`open_run_dir`), locked."""
        path, lock = open_run_dir(root, spec_name, run_name)
        return cls(path, lock)

    @classmethod
    def reopen(cls, path: str | os.PathLike) -> "RunDirectory":
        """An existing run's folder, locked, without what killed writes left behind."""
        path = FsPath(path)
        lock = RunLock(path).acquire()
        remove_temp_files(path)
        return cls(path, lock)

    def release(self) -> None:
        self.lock.release()

    def write_header(self, *, spec_text: str, canonical_json: str, spec_hash: str, settings: dict,
                     info: dict) -> None:
        """The files that say what is trained and how; ``run.json`` (status running) last."""
        atomic_write_text(self.path / "spec.yaml", spec_text)
        atomic_write_text(self.path / "spec.json", json.dumps(json.loads(canonical_json), indent=1, sort_keys=True) + "\n")
        atomic_write_text(self.path / "spec.sha256", spec_hash + "\n")
        atomic_write_json(self.path / "settings.json", settings)
        atomic_write_json(self.path / "versions.json", versions())
        atomic_write_json(self.path / "run.json", dict(info, status="running"))

    def update(self, strict: bool = False, **changes) -> bool:
        """Record changes in run.json; False if it could not be written (``strict``: raise)."""
        return update_run_json(self.path, strict=strict, **changes)

    def running(self, **changes) -> bool:
        return self.update(status="running", **changes)

    def interrupted(self, at_epoch: int) -> bool:
        return self.update(status="interrupted", interrupted_at_epoch=at_epoch)

    def failed(self, error: str | None) -> bool:
        return self.update(status="failed", error=error)

    def completed(self, epochs: int, **changes) -> None:
        self.update(strict=True, status="completed", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    epochs=epochs, **changes)


def update_run_json(run_dir: FsPath | None, strict: bool = False, **changes) -> bool:
    """Record changes in ``run_dir/run.json``; False if it could not be written (``strict``: raise)."""
    if run_dir is None or not (run_dir / "run.json").is_file():
        return False
    try:
        info = read_json(run_dir / "run.json")
        info.update(changes)
        atomic_write_json(run_dir / "run.json", info)
    except (OSError, ValueError, AttributeError, GraphspecError):
        if strict:
            raise
        return False
    return True


def data_fingerprint(checked, *, train_data: bool = True, validation_data: bool = True) -> list[dict]:
    """SHA-256 of every data file (or folder) the spec's train section names, streamed: what
    ``--resume`` compares to notice changed training data. The built-in dataset is its packaged file."""
    train = checked.spec.train
    if train is None:
        return []
    from graphspec.files import spec_data_paths

    dumped = train.model_dump(mode="json")
    found = []
    for where, raw in spec_data_paths(dumped):
        if (where[:2] == ("train", "data") and not train_data) or (where[:2] == ("train", "validation")
                                                                  and not validation_data):
            continue
        found.append((".".join(str(p) for p in where[:-1]), raw, (checked.directory / raw).resolve()))
    for where, source, wanted in (("train.data", dumped.get("data"), train_data),
                                  ("train.validation.data", (dumped.get("validation") or {}).get("data"),
                                   validation_data)):
        if wanted and isinstance(source, dict) and source.get("builtin"):
            from graphspec.train.data import DATA_DIR

            found.append((where, f"builtin:{source['builtin']}", DATA_DIR / f"{source['builtin']}.npz"))
    return [{"where": where, "path": raw, "sha256": _digest(path)} for where, raw, path in found]


def _digest(path: FsPath) -> str | None:
    digest = hashlib.sha256()
    try:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                digest.update(file.relative_to(path).as_posix().encode() + b"\0")
                _stream(file, digest)
                digest.update(b"\0")
        else:
            _stream(path, digest)
    except OSError:
        return None
    return "sha256:" + digest.hexdigest()


def _stream(path: FsPath, digest) -> None:
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)


def write_history(run_dir: FsPath, history: list[dict[str, float]]) -> None:
    atomic_write_json(run_dir / "history.json", history)
    keys: list[str] = []
    for row in history:
        for key in row:
            if key not in keys:
                keys.append(key)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(keys)
    for row in history:
        writer.writerow([_num(row.get(k)) for k in keys])
    atomic_write_text(run_dir / "history.csv", buffer.getvalue())


def _num(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)
    return "" if value is None else value


# -- curves.png: drawn by graphspec.train.curves (matplotlib, the optional 'plots' extra) ----------

def plot_curves(history: list[dict[str, float]], path: str | os.PathLike, **options: Any) -> FsPath | None:
    """Draw the history's curves to ``path`` (see :func:`graphspec.train.curves.plot_curves`);
    None, and nothing written, when matplotlib is not installed."""
    from graphspec.train.curves import plot_curves as draw

    return draw(history, path, **options)


def read_json(path: FsPath) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_run(run_dir: FsPath) -> dict:
    """A run directory's ``run.json``, checked: a run directory that is damaged or not a run
    is a clear error, not a traceback."""
    def not_a_run(why: str, hint: str = "give a directory written by graphspec train") -> TrainError:
        return TrainError([Diagnostic(code="not-a-run", file=str(run_dir), message=f"'{run_dir}' is not a usable "
                                      f"run directory: {why}", hint=hint)])

    if not (run_dir / "run.json").is_file():
        if run_dir.is_dir() and not has_training_state(run_dir):
            raise not_a_run("it has no run.json", "it holds nothing trained (the run stopped before its first epoch "
                            "began); start it again, reusing the folder: graphspec train SPEC --runs "
                            f"{run_dir.parent.parent} --name {run_dir.name}")
        raise not_a_run("it has no run.json")
    try:
        info = read_json(run_dir / "run.json")
    except (OSError, ValueError) as exc:
        raise not_a_run(f"run.json cannot be read ({exc})") from None
    if not isinstance(info, dict) or not isinstance(info.get("spec_path", ""), str) \
            or not isinstance(info.get("overrides", []), list):
        raise not_a_run("run.json is not what graphspec writes")
    if not (run_dir / "spec.yaml").is_file():
        raise not_a_run("it has no spec.yaml")
    return info
