"""The resumable checkpoint (``checkpoint.npz``) and the checks before a run is resumed.

Written atomically at the end of every epoch: every model variable (weights and the dropout RNG
states), every optimizer variable (iteration count, learning rate, moments), the callbacks' own
state (see :mod:`.callbacks`), whether early stopping ended the run, and the history. ``--resume``
refuses a changed spec (:func:`model_hash`), changed settings (:func:`settings_hash`) or changed
training data (SHA-256 of its files).
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path as FsPath

import numpy as np

from graphspec.errors import Diagnostic, TrainError
from graphspec.pipeline import CheckedSpec
from graphspec.train import rundir

STATE_FILE = "checkpoint.npz"
_META_KEY = "__meta__"


@dataclass
class Progress:
    """A run's progress as the checkpoint saves it (with the variables and the callbacks' own state):
    the history, the epochs completed, whether early stopping (or a user callback) ended training."""

    history: list[dict[str, float]] = field(default_factory=list)
    epochs: int = 0
    """Completed epochs."""
    stopped_early: bool = False

    def record(self, row: dict[str, float], stopped_early: bool) -> None:
        """An epoch ended: its row of the history (``row["epoch"]`` is 1-based)."""
        self.history.append(row)
        self.epochs = int(row["epoch"])
        self.stopped_early = stopped_early

    def meta(self) -> dict:
        return {"epoch": self.epochs, "stopped_early": self.stopped_early, "history": self.history}

    @classmethod
    def from_meta(cls, meta: dict) -> "Progress":
        return cls(history=list(meta.get("history", [])), epochs=int(meta["epoch"]),
                   stopped_early=bool(meta.get("stopped_early")))


def model_hash(checked: CheckedSpec) -> str:
    """Hash of the canonical spec without its train section, and of the saved models it loads:
    what the resume check calls "the spec" (a swapped encoder file is a changed model)."""
    from graphspec.canonical import canonical_data, saved_model_digests

    data = canonical_data(checked.graph)
    data.pop("train", None)
    data["saved_models"] = saved_model_digests(checked.graph)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def settings_hash(settings) -> str:
    """Hash of the settings (a :class:`~graphspec.train.settings.TrainSettings` or its JSON form) but ``verbose``."""
    settings = _as_json(settings)
    text = json.dumps({k: v for k, v in settings.items() if k != "verbose"}, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# -- state -------------------------------------------------------------------------------------

def _model_variables(model) -> list:
    seen, result = set(), []
    for v in model.variables:
        if id(v) not in seen:
            seen.add(id(v))
            result.append(v)
    return result


def _optimizer_variables(model) -> list:
    optimizer = model.optimizer
    return list(optimizer.variables) if optimizer is not None else []


def _value(v) -> np.ndarray:
    value = v.numpy() if hasattr(v, "numpy") else np.asarray(v)
    return np.asarray(value)


def save_state(path: FsPath, model, meta: dict, extra: dict[str, np.ndarray] | None = None) -> None:
    write_state(path, state_arrays(model, meta, extra))


def state_arrays(model, meta: dict, extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The checkpoint's arrays: host copies of every variable taken now (``Variable.numpy()`` copies), so
    they can be written while training goes on."""
    arrays: dict[str, np.ndarray] = {}
    for i, v in enumerate(_model_variables(model)):
        arrays[f"model/{i}"] = _value(v)
    for i, v in enumerate(_optimizer_variables(model)):
        arrays[f"optimizer/{i}"] = _value(v)
    for key, value in (extra or {}).items():
        arrays[f"extra/{key}"] = value
    meta = dict(meta, model_variables=[v.path for v in _model_variables(model)],
                optimizer_variables=[v.path for v in _optimizer_variables(model)])
    arrays[_META_KEY] = np.frombuffer(json.dumps(meta, allow_nan=True).encode(), dtype=np.uint8)
    return arrays


def write_state(path: FsPath, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    rundir.atomic_write_bytes(path, buffer.getvalue())


class StateWriter:
    """Writes checkpoints one at a time on a background thread, so that an epoch's checkpoint (the
    npz, its fsync, the rename and the folder's fsync: most of a small model's per-epoch cost) overlaps
    the next epoch's training instead of holding it up. The arrays are host copies taken at the epoch's
    end (:func:`state_arrays`); each write is atomic, so a kill during one leaves the previous
    checkpoint whole (the resumed run replays from it exactly). :meth:`wait` joins the write in flight
    and raises its error (a full disk); it is called before the next write, when training ends, and
    before anything reports which checkpoint is kept."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def write(self, path: FsPath, arrays: dict[str, np.ndarray], done) -> None:
        """Write ``arrays`` to ``path`` in the background; ``done()`` is called once it is on disk."""
        self.wait()

        def work() -> None:
            try:
                write_state(path, arrays)
                done()
            except BaseException as exc:  # raised again by wait(), in the training thread
                self._error = exc

        self._thread = threading.Thread(target=work, name="graphspec-checkpoint")
        self._thread.start()

    def wait(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def settle(self) -> None:
        """Wait for the write in flight, dropping its error: for paths that already report another error
        (or an interruption); a failed write keeps the previous checkpoint, which is what they report."""
        try:
            self.wait()
        except Exception:
            pass


def read_state(path: FsPath) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(arrays.pop(_META_KEY).tobytes().decode())
    return meta, arrays


def restore_state(model, meta: dict, arrays: dict[str, np.ndarray], where: str) -> None:
    model_vars = _model_variables(model)
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    optimizer_vars = _optimizer_variables(model)
    if len(model_vars) != len(meta["model_variables"]) or len(optimizer_vars) != len(meta["optimizer_variables"]):
        raise TrainError([Diagnostic(code="resume-mismatch", message=f"{where} does not match the model "
                                     f"({len(meta['model_variables'])} saved variables, the model has {len(model_vars)})")])
    for prefix, variables in (("model", model_vars), ("optimizer", optimizer_vars)):
        for i, v in enumerate(variables):
            value = arrays[f"{prefix}/{i}"]
            if tuple(value.shape) != tuple(v.shape):
                raise TrainError([Diagnostic(code="resume-mismatch", message=f"{where}: variable '{v.path}' has shape "
                                             f"{tuple(v.shape)}, the checkpoint {tuple(value.shape)}")])
            v.assign(value)


def _as_json(settings) -> dict:
    return settings.as_json() if hasattr(settings, "as_json") else settings


def saved_epoch(path: FsPath) -> int | None:
    """The epoch a checkpoint file holds (reads only its metadata); None when there is none or it is unreadable."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return int(json.loads(archive[_META_KEY].tobytes().decode())["epoch"])
    except Exception:
        return None


def _same_but_epochs(run_dir: FsPath, settings: dict, saved_hash: str | None) -> bool:
    """Whether the run's settings were these but for ``epochs`` (``--resume --epochs N`` extends a run)."""
    try:
        saved = rundir.read_json(run_dir / "settings.json")
    except (OSError, ValueError):
        return False
    if not isinstance(saved, dict) or not isinstance(saved.get("epochs"), int):
        return False
    return saved_hash == settings_hash(dict(_as_json(settings), epochs=saved["epochs"]))


def _changed_settings(run_dir: FsPath, settings) -> str:
    settings = _as_json(settings)
    try:
        saved = rundir.read_json(run_dir / "settings.json")
    except (OSError, ValueError):
        saved = None
    if not isinstance(saved, dict):
        return "see spec.yaml and run.json in the run directory"
    return ", ".join(sorted(k for k in set(saved) | set(settings) if k != "verbose" and saved.get(k) != settings.get(k))) \
        or "see settings.json"


def _check_resume(run_dir: FsPath, checked: CheckedSpec, settings, recorded: dict,
                  fingerprint: list | None, extending: bool = False) -> tuple[dict, dict]:
    """The checkpoint to resume from, after checking that the spec, the settings and the data are the run's.

    ``extending`` (``--resume --epochs N``): the settings may differ in ``epochs``, which must then be more
    than the epochs the checkpoint holds.

    A run directory without a checkpoint (the run stopped before its first epoch began) resumes
    from epoch 0 -- the same seed gives the same initial weights -- when its spec and settings,
    recorded in run.json, are those of now; ``({}, {})`` is returned for it."""
    path = run_dir / STATE_FILE
    if path.is_file():
        try:
            meta, arrays = read_state(path)
        except Exception as exc:  # a damaged file
            raise TrainError([Diagnostic(code="resume-error", file=str(run_dir), message=f"cannot read {path}: {exc}",
                                         hint="the checkpoint is damaged; start a new run")]) from None
    else:
        meta, arrays = {"model_hash": recorded.get("model_hash"), "settings_hash": recorded.get("settings_hash")}, {}
        if meta["model_hash"] is None:  # written before run.json recorded them: the whole spec's hash
            from graphspec.canonical import spec_hash as hash_of

            if recorded.get("spec_hash") != hash_of(checked.graph):
                raise TrainError([Diagnostic(code="resume-changed", file=str(run_dir), message="the spec or its train "
                                             f"settings changed since '{run_dir}' was started",
                                             hint="resume with the spec as it was, or start a new run")])
            meta = {"model_hash": model_hash(checked), "settings_hash": settings_hash(settings)}
    now = model_hash(checked)
    if meta.get("model_hash") != now:
        raise TrainError([Diagnostic(code="resume-changed", file=str(run_dir), message=f"the spec changed since '{run_dir}' was started "
                                     f"(model hash {str(meta.get('model_hash'))[:19]}..., now {now[:19]}...)",
                                     hint="resume with the spec as it was (see spec.yaml in the run directory), "
                                     "or start a new run")])
    if extending and meta.get("settings_hash") != settings_hash(settings) \
            and _same_but_epochs(run_dir, settings, meta.get("settings_hash")):
        done = int(meta.get("epoch", 0)) if path.is_file() else 0
        if settings.epochs <= done:
            raise TrainError([Diagnostic(code="resume-error", file=str(run_dir), message=f"--epochs {settings.epochs} "
                                         f"does not extend the run in '{run_dir}': {done} epochs are trained",
                                         hint=f"--epochs is the new total: give more than {done}")])
    elif meta.get("settings_hash") != settings_hash(settings):
        raise TrainError([Diagnostic(code="resume-changed", file=str(run_dir), message="the train settings changed since the run was "
                                     f"started ({_changed_settings(run_dir, settings)})",
                                     hint="resume without overrides, or start a new run")])
    before = meta.get("data_sha256") if path.is_file() else None
    if before is None:
        before = recorded.get("data_sha256")
    if before is not None and fingerprint is not None:
        now_by = {(f["where"], f["path"]): f["sha256"] for f in fingerprint}
        changed = [f"{f['where']} '{f['path']}'" for f in before
                   if now_by.get((f.get("where"), f.get("path"))) != f.get("sha256")]
        if changed:
            raise TrainError([Diagnostic(
                code="resume-data-changed", file=str(run_dir),
                message=f"the training data changed since '{run_dir}' was started: {', '.join(changed)} "
                "(SHA-256 recorded in run.json and the checkpoint)",
                hint="put the data back as it was to resume, or train the new data in a new run: "
                "graphspec train SPEC")])
    return (meta, arrays) if path.is_file() else ({}, {})

