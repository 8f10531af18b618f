"""``graphspec train``: fit a spec's model on its data, in a run directory, resumably.

Order of work: check the spec (with overrides) -> resolve the settings (seed) ->
configure TensorFlow (devices, determinism, precision, strategy) -> build the
model with :func:`graphspec.emit.emit` -> open and check the data -> write the
run directory's header files -> ``model.fit`` -> final files.

Resumable state (``checkpoint.npz``) is written atomically at the end of every
epoch: every model variable (weights and the dropout RNG states), every
optimizer variable (iteration count, learning rate, moments), the callbacks'
counters (put back after Keras' own reset in ``on_train_begin``), whether early
stopping ended the run, and the history. Epoch *e*'s batches depend only on
(seed, *e*), so a resumed run replays exactly what an uninterrupted one does.
SIGTERM and SIGINT stop the run after the current batch; the last completed
epoch's state is the resumable checkpoint; during the final save they are
deferred until it is written. A NaN/Inf loss stops the run with an error and the
last good checkpoint is kept. A failed write (a full disk) is ``cannot-write``
with the way to resume. The run directory is locked while it is written, and
``--resume`` refuses changed training data (SHA-256 of its files).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any, Callable

import numpy as np

from graphspec.errors import Diagnostic, DiagnosticSink, GraphspecError, Path, TrainError
from graphspec.pipeline import CheckedSpec
from graphspec.train import data as datalib
from graphspec.train import rundir
from graphspec.train.settings import check_with_overrides, resolved_settings

STATE_FILE = "checkpoint.npz"
FLUSH_SECONDS = 60.0
"""Longest time best.keras lags behind the best epoch while training runs (it is exact at the end)."""
HISTORY_SECONDS = 5.0
"""history.json/.csv are rewritten after an epoch at most this often while training runs (exact at the end)."""
_META_KEY = "__meta__"


class TrainInterrupted(TrainError):
    """SIGINT/SIGTERM stopped the run; its last completed epoch is saved and resumable."""

    def __init__(self, diagnostics, signum: int, run_dir: FsPath):
        super().__init__(diagnostics)
        self.signum = signum
        self.run_dir = run_dir

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass
class RunResult:
    run_dir: FsPath | None
    model: Any
    history: list[dict[str, float]]
    metrics: dict[str, float]
    settings: dict[str, Any]
    spec_hash: str
    epochs_run: list[int] = field(default_factory=list)
    """Epoch numbers (0-based) trained by this call (a resumed run skips the finished ones)."""


def model_hash(checked: CheckedSpec) -> str:
    """Hash of the canonical spec without its train section, and of the saved models it loads:
    what the resume check calls "the spec" (a swapped encoder file is a changed model)."""
    from graphspec.canonical import canonical_data, saved_model_digests

    data = canonical_data(checked.graph)
    data.pop("train", None)
    data["saved_models"] = saved_model_digests(checked.graph)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def settings_hash(settings: dict) -> str:
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
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    rundir.atomic_write_bytes(path, buffer.getvalue())


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


# -- callbacks ---------------------------------------------------------------------------------

def monitor_direction(model, monitor: str, mode: str = "auto", where: Path = ()) -> str:
    """``"min"`` or ``"max"`` for a monitored quantity, decided by Keras' own logic.

    ``mode`` min/max is taken as given. For ``auto``, Keras' ``MonitorCallback`` decides (the
    one rule ``EarlyStopping``, ``ReduceLROnPlateau`` and ``ModelCheckpoint`` use: ``loss`` is
    minimised, a metric object's ``_direction`` says the rest). Keras matches metric objects
    by their bare name, so a multi-output model's ``val_digit_accuracy`` (the metric
    ``accuracy`` of output ``digit``) or ``val_digit_loss`` is then looked up the same way
    under its output's name. Needs the model's metrics built (call it at an epoch's end)."""
    if mode in ("min", "max"):
        return mode
    from keras import ops
    from keras.src.callbacks.monitor_callback import MonitorCallback
    from keras.src.trainers import compile_utils

    probe = MonitorCallback(monitor, "auto")
    probe.set_model(model)
    try:
        probe._set_monitor_op()
        return "min" if probe.monitor_op is ops.less else "max"
    except ValueError:
        pass
    name = monitor.removeprefix("val_")
    for output in getattr(model, "output_names", None) or ():
        if name == f"{output}_loss":
            return "min"  # Keras' rule for 'loss', per output
    for metrics in model.metrics:
        if not isinstance(metrics, compile_utils.CompileMetrics):
            continue
        for group in list(getattr(metrics, "_flat_metrics", None) or ()) + \
                list(getattr(metrics, "_flat_weighted_metrics", None) or ()):
            if not group:
                continue
            for metric in group.metrics:
                full = f"{group.output_name}_{metric.name}" if group.output_name else metric.name
                if full == name and hasattr(metric, "_direction"):
                    return "max" if metric._direction == "up" else "min"
    raise TrainError([Diagnostic(
        code="unknown-direction", path=tuple(where),
        message=f"Keras cannot tell whether '{monitor}' should be minimised or maximised",
        hint="give mode: min or mode: max next to the monitor")])


def make_callbacks(keras, run: "_Run"):
    """The Keras callbacks of a run, in the order they must see each epoch's end."""

    class Guard(keras.callbacks.Callback):
        """NaN/Inf losses and signals: stop after the current batch.

        ``async_safe``: Keras may run it on its callback thread, so the training loop keeps
        dispatching steps asynchronously (as a plain ``model.fit`` does) instead of waiting for
        every batch's logs; a NaN is then caught within a batch or two of where it appears."""

        async_safe = True

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                run.nan_at = (run.epoch, batch, float(loss))
                self.model.stop_training = True
            if run.signal_received:
                self.model.stop_training = True

        def on_epoch_begin(self, epoch, logs=None):
            run.epoch = epoch

    class LrSchedule(keras.callbacks.Callback):
        def __init__(self, schedule):
            super().__init__()
            self.schedule = schedule

        def on_epoch_begin(self, epoch, logs=None):
            value = float(keras.ops.convert_to_numpy(self.schedule(epoch)))
            self.model.optimizer.learning_rate.assign(value)

    def direction_of(model, monitor: str, mode: str, where: Path) -> str:
        try:
            return monitor_direction(model, monitor, mode)
        except TrainError as error:  # located at the callback's monitor in the spec
            located = DiagnosticSink(source=run.checked.loaded.source)
            for d in error.diagnostics:
                located.error(d.code, d.message, where, d.hint)
            raise TrainError(located.sorted()) from None

    class Resumable:
        """Keras' EarlyStopping and ReduceLROnPlateau reset their counters in ``on_train_begin``;
        a resumed run's counters (``pending``, from the checkpoint) are put back right after that,
        so the resumed run waits, reduces and stops exactly where an uninterrupted one does. The
        direction of ``mode: auto`` comes from :func:`monitor_direction` (Keras' own rule, also
        for a multi-output model's per-output names)."""

        where: Path = ()
        pending: dict | None = None

        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if self.pending is not None:
                for attribute, value in self.pending.items():
                    setattr(self, attribute, value)
                self.pending = None

        def _set_monitor_op(self):
            self.mode = direction_of(self.model, self.monitor, self.mode, self.where)
            super()._set_monitor_op()

    class EarlyStopping(Resumable, keras.callbacks.EarlyStopping):
        where = ("train", "callbacks", "early_stopping", "monitor")

    class ReduceLROnPlateau(Resumable, keras.callbacks.ReduceLROnPlateau):
        where = ("train", "callbacks", "reduce_lr_on_plateau", "monitor")

    class BestModel(keras.callbacks.Callback):
        """Tracks the best epoch. Its weights are kept in memory (and in the checkpoint while they differ
        from the current ones); ``best.keras`` is written when training ends or stops, and at most every
        FLUSH_SECONDS in between, so a small model's epochs do not each pay for a full ``model.save``.
        Lower or higher is better as Keras decides it (:func:`monitor_direction`)."""

        def __init__(self, monitor: str, mode: str):
            super().__init__()
            self.monitor = monitor
            self.mode = mode
            self.direction: str | None = mode if mode in ("min", "max") else None
            self.best: float | None = None
            self.best_epoch: int | None = None
            self.best_weights: list | None = None
            self.written_epoch: int | None = None
            self.last_flush = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            if run.stopped_abnormally:
                return
            value = (logs or {}).get(self.monitor)
            if value is None or not math.isfinite(float(value)):
                return
            if self.direction is None:
                self.direction = direction_of(self.model, self.monitor, self.mode,
                                              ("train", "callbacks", "best_model", "monitor"))
            value = float(value)
            better = self.best is None or (value < self.best if self.direction == "min" else value > self.best)
            if better:
                self.best, self.best_epoch = value, epoch
                self.best_weights = self.model.get_weights()
                if time.monotonic() - self.last_flush > FLUSH_SECONDS:
                    self.flush()

        def on_train_end(self, logs=None):
            self.flush()

        def flush(self) -> None:
            """Write best.keras from the best weights, if they are newer than the file."""
            self.last_flush = time.monotonic()
            if (not run.is_chief or run.run_dir is None or self.best_weights is None
                    or self.written_epoch == self.best_epoch):
                return
            from graphspec.emit import save_artifact

            current = self.model.get_weights()
            try:
                self.model.set_weights(self.best_weights)
                save_artifact(run.checked, self.model, run.run_dir / "best.keras")
                rundir.fix_mode(run.run_dir / "best.keras")
            finally:
                self.model.set_weights(current)
            self.written_epoch = self.best_epoch

    class State(keras.callbacks.Callback):
        """Last in the list: records the epoch and writes the resumable checkpoint."""

        def on_epoch_end(self, epoch, logs=None):
            stopping = bool(self.model.stop_training)  # read before the signal check: a signal sets both
            if run.stopped_abnormally:
                return
            row = {"epoch": epoch + 1}
            for key, value in (logs or {}).items():
                try:
                    row[key] = float(value)
                except (TypeError, ValueError):
                    continue
            if "learning_rate" not in row and self.model.optimizer is not None:
                try:
                    row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                except Exception:  # a schedule object: not a number to log
                    pass
            run.history.append(row)
            run.epochs_run.append(epoch)
            run.completed_epochs = epoch + 1
            run.stopped_early = stopping  # early stopping (or a user callback) ended training here
            run.save_checkpoint(self.model)
            if run.is_chief and run.run_dir is not None and time.monotonic() - run.history_written > HISTORY_SECONDS:
                rundir.write_history(run.run_dir, run.history)
                run.history_written = time.monotonic()

    callbacks = [Guard()]
    spec = run.settings["callbacks"]
    sink = DiagnosticSink(source=run.checked.loaded.source)
    if spec.get("lr_schedule"):
        from graphspec.emit import make_object

        optimizer_lr = getattr(run.model.optimizer, "_learning_rate", None)
        if isinstance(optimizer_lr, keras.optimizers.schedules.LearningRateSchedule):
            sink.error("bad-schedule", "compile.optimizer.learning_rate is already a schedule; give one or the other",
                       ("train", "callbacks", "lr_schedule"))
            sink.raise_if_errors(TrainError)
        callbacks.append(LrSchedule(make_object("schedules", dict(spec["lr_schedule"]))))
    es = spec.get("early_stopping")
    if es:
        run.early_stopping = EarlyStopping(**es, verbose=1 if run.verbose else 0)
        callbacks.append(run.early_stopping)
    rl = spec.get("reduce_lr_on_plateau")
    if rl:
        run.reduce_lr = ReduceLROnPlateau(**rl, verbose=1 if run.verbose else 0)
        callbacks.append(run.reduce_lr)
    best = spec.get("best_model")
    if best is not False and best is not None:
        monitor = best.get("monitor") or ("val_loss" if run.has_validation else "loss")
        run.best_model = BestModel(monitor, best.get("mode", "auto"))
        callbacks.append(run.best_model)
    tb = spec.get("tensorboard")
    if tb is not False and tb is not None and run.is_chief and run.run_dir is not None:
        callbacks.append(tensorboard_callback(keras, run.run_dir / "logs", tb))
    callbacks.append(State())
    return callbacks


def tensorboard_callback(keras, log_dir: FsPath, options: dict):
    """Keras' TensorBoard callback when the ``tensorboard`` package is installed; otherwise epoch scalars
    written with TensorFlow's own summary writer, in the same layout (``logs/train``, ``logs/validation``,
    tags ``epoch_<name>``), readable by TensorBoard. (TensorFlow >= 2.21 no longer installs TensorBoard.)"""
    try:
        import tensorboard  # noqa: F401

        return keras.callbacks.TensorBoard(log_dir=str(log_dir), profile_batch=0, **options)
    except ImportError:
        pass
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))

    class EpochScalars(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.writers: dict = {}

        def _writer(self, name):
            if name not in self.writers:
                self.writers[name] = tf.summary.create_file_writer(str(log_dir / name))
            return self.writers[name]

        def on_epoch_end(self, epoch, logs=None):
            for key, value in (logs or {}).items():
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    continue
                split = "validation" if key.startswith("val_") else "train"
                tag = "epoch_" + (key[4:] if split == "validation" else key)
                with self._writer(split).as_default():
                    tf.summary.write(tag, tf.constant(number, tf.float32), step=epoch, metadata=metadata)
            for writer in self.writers.values():
                writer.flush()

        def on_train_end(self, logs=None):
            for writer in self.writers.values():
                writer.close()

    return EpochScalars()


_CALLBACK_STATE = {
    "early_stopping": ("wait", "best", "stopped_epoch", "best_epoch"),
    "reduce_lr": ("wait", "best", "cooldown_counter"),
    "best_model": ("best", "best_epoch", "written_epoch"),
}
"""Every counter of the callbacks that a resumed run must continue from (the learning rate that
ReduceLROnPlateau lowered is an optimizer variable, saved with the others)."""


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if hasattr(value, "numpy"):  # a scalar tensor
        return np.asarray(value.numpy()).item()
    return value


@dataclass
class _Run:
    checked: CheckedSpec
    settings: dict
    spec_hash: str
    run_dir: FsPath | None
    is_chief: bool
    verbose: int
    has_validation: bool = False
    model: Any = None
    history: list = field(default_factory=list)
    epochs_run: list = field(default_factory=list)
    completed_epochs: int = 0
    saved_epochs: int | None = None
    """The epoch of the last checkpoint written (None: none written by this call)."""
    stopped_early: bool = False
    epoch: int = 0
    nan_at: tuple | None = None
    signal_received: int | None = None
    final_phase: bool = False
    signal_in_final: int | None = None
    early_stopping: Any = None
    reduce_lr: Any = None
    best_model: Any = None
    history_written: float = 0.0
    data_fingerprint: dict | None = None

    @property
    def stopped_abnormally(self) -> bool:
        return self.nan_at is not None or self.signal_received is not None

    def callback_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        state: dict = {}
        extra: dict[str, np.ndarray] = {}
        for name, attributes in _CALLBACK_STATE.items():
            callback = getattr(self, name)
            if callback is None:
                continue
            state[name] = {a: _plain(getattr(callback, a, None)) for a in attributes}
        if self.early_stopping is not None and self.early_stopping.best_weights is not None:
            for i, w in enumerate(self.early_stopping.best_weights):
                extra[f"early_stopping_best/{i}"] = np.asarray(w)
        best = self.best_model
        if best is not None and best.best_weights is not None and best.best_epoch != self.completed_epochs - 1:
            for i, w in enumerate(best.best_weights):
                extra[f"best_model/{i}"] = np.asarray(w)
        return state, extra

    def restore_callbacks(self, state: dict, arrays: dict[str, np.ndarray]) -> None:
        """Put the checkpoint's counters back. Keras' callbacks reset theirs when ``fit`` begins, so
        theirs are applied then (``pending``, see ``make_callbacks``); best-model tracking is graphspec's."""
        for name in ("early_stopping", "reduce_lr"):
            callback = getattr(self, name, None)
            if callback is None or name not in state:
                continue
            pending = {a: v for a, v in state[name].items()
                       if a in _CALLBACK_STATE[name] and (v is not None or a == "best")}
            if name == "early_stopping":
                weights = sorted((k for k in arrays if k.startswith("extra/early_stopping_best/")),
                                 key=lambda k: int(k.rsplit("/", 1)[1]))
                pending["best_weights"] = [arrays[k] for k in weights] if weights else None
            callback.pending = pending
        best_model = self.best_model
        if best_model is not None and "best_model" in state:
            for attribute, value in state["best_model"].items():
                setattr(best_model, attribute, value)
        best = sorted((k for k in arrays if k.startswith("extra/best_model/")), key=lambda k: int(k.rsplit("/", 1)[1]))
        if self.best_model is not None and self.best_model.best_epoch is not None:
            if best:
                self.best_model.best_weights = [arrays[k] for k in best]
            elif self.best_model.best_epoch == self.completed_epochs - 1:
                self.best_model.best_weights = self.model.get_weights()  # the checkpoint's own weights

    def end_without_fit(self) -> None:
        """A resumed run with no epoch left to train (all done, or early stopping had stopped it):
        what ``fit``'s end would have done: early stopping's best weights back, best.keras written."""
        es = self.early_stopping
        if es is not None:
            es.set_model(self.model)
            es.on_train_begin()  # Keras' reset, then the checkpoint's counters
            es.verbose = 0
            es.on_train_end()
        if self.best_model is not None:
            self.best_model.set_model(self.model)
            self.best_model.on_train_end()

    def save_checkpoint(self, model) -> None:
        if not self.is_chief or self.run_dir is None:
            return
        state, extra = self.callback_state()
        meta = {"epoch": self.completed_epochs, "stopped_early": self.stopped_early, "history": self.history,
                "callbacks": state, "data_sha256": self.data_fingerprint,
                "spec_hash": self.spec_hash, "model_hash": model_hash(self.checked), "settings_hash": settings_hash(self.settings),
                "seed": self.settings["seed"], "time": time.time()}
        save_state(self.run_dir / STATE_FILE, model, meta, extra)
        self.saved_epochs = self.completed_epochs


# -- the run ------------------------------------------------------------------------------------

def _configure(settings: dict) -> None:
    import keras
    import tensorflow as tf

    if settings.get("deterministic"):
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(int(settings["seed"]))
    keras.mixed_precision.set_dtype_policy(settings.get("precision") or "float32")


def _emit_in(distribution, checked: CheckedSpec):
    from graphspec.emit import emit

    sink = DiagnosticSink(source=checked.loaded.source)
    if checked.spec.compile is None or checked.spec.compile.loss is None:
        sink.error("no-loss", "training needs a loss: the spec has no 'compile: {loss: ...}'",
                   ("compile",) if checked.spec.compile is not None else (),
                   "add e.g. compile: {optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}")
        sink.raise_if_errors(TrainError)
    with distribution.scope():
        return emit(checked)


def _open(checked, io_, settings, data, validation_data, need_targets=True):
    train_spec = checked.spec.train
    sink = DiagnosticSink(source=checked.loaded.source)
    if data is not None:
        examples = datalib.open_python(data, io_, need_targets=need_targets, description="the training data")
    elif train_spec is not None and train_spec.data is not None:
        examples = datalib.open_source(train_spec.data, checked, io_, ("train", "data"), need_targets=need_targets)
    else:
        sink.error("no-data", "no training data: the spec has no 'train: {data: ...}'", ("train",) if train_spec else (),
                   "add e.g. train: {data: {npz: data/train.npz}} (paths are relative to the spec)")
        raise TrainError(sink.sorted())
    validation = None
    val_settings = settings.get("validation")
    if validation_data is not None:
        validation = datalib.open_python(validation_data, io_, description="the validation data")
    elif val_settings and val_settings.get("data") is not None:
        validation = datalib.open_source(train_spec.validation.data, checked, io_, ("train", "validation", "data"))
    elif val_settings and val_settings.get("split") is not None:
        try:
            examples, validation = datalib.split(examples, val_settings["split"], int(settings["seed"]),
                                                 val_settings.get("shuffle_before_split", True))
        except TrainError as error:
            located = DiagnosticSink(source=checked.loaded.source)
            for d in error.diagnostics:
                located.error(d.code, d.message, ("train", "validation", "split"), d.hint)
            raise TrainError(located.sorted()) from None
    return examples, validation


def _changed_settings(run_dir: FsPath, settings: dict) -> str:
    try:
        saved = rundir.read_json(run_dir / "settings.json")
    except (OSError, ValueError):
        saved = None
    if not isinstance(saved, dict):
        return "see spec.yaml and run.json in the run directory"
    return ", ".join(sorted(k for k in set(saved) | set(settings) if k != "verbose" and saved.get(k) != settings.get(k))) \
        or "see settings.json"


def _check_resume(run_dir: FsPath, checked: CheckedSpec, settings: dict, recorded: dict,
                  fingerprint: list | None) -> tuple[dict, dict]:
    """The checkpoint to resume from, after checking that the spec, the settings and the data are the run's.

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
    if meta.get("settings_hash") != settings_hash(settings):
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


def train(spec: str | os.PathLike | CheckedSpec | None = None, *, overrides: list | None = None, data: Any = None,
          validation_data: Any = None, runs_root: str | os.PathLike = "runs", run_name: str | None = None,
          resume: str | os.PathLike | None = None, verbose: int | None = None, handle_signals: bool = True,
          write_run_dir: bool = True, callbacks: list | None = None,
          echo: Callable[[str], None] | None = None) -> RunResult:
    """Train a spec's model; returns the fitted model, its history and the run directory.

    ``spec`` is a spec file (or a :class:`CheckedSpec`); ``overrides`` come from
    :func:`graphspec.train.settings.override_list`. ``data``/``validation_data`` replace the
    spec's sources (Python API: dicts of arrays, ``(x, y)`` or ``tf.data.Dataset``).
    ``resume`` continues the run in that directory, refusing if the spec, settings or data changed.
    ``callbacks`` (Python API) are extra Keras callbacks, run before graphspec's checkpointing.

    The run directory is locked (``.lock``) while training writes it: a second ``train`` into
    it is refused with ``error[run-locked]``.
    """
    held: list = []
    previous_handlers: dict = {}
    try:
        return _train(spec, overrides=overrides, data=data, validation_data=validation_data, runs_root=runs_root,
                      run_name=run_name, resume=resume, verbose=verbose, handle_signals=handle_signals,
                      write_run_dir=write_run_dir, callbacks=callbacks, echo=echo, held=held,
                      previous_handlers=previous_handlers)
    finally:
        for signum, handler in previous_handlers.items():
            try:
                signal.signal(signum, handler)
            except (ValueError, TypeError):
                pass
        for lock in held:
            lock.release()


def _write_failed(error: GraphspecError, run: "_Run", run_dir: FsPath | None) -> GraphspecError:
    """A write that failed (a full disk, a lost mount) while training: the error says what is kept and how to go on."""
    if run_dir is None or not any(d.code == "cannot-write" for d in error.diagnostics):
        return error
    if (run_dir / STATE_FILE).is_file():
        saved = run.saved_epochs
        kept = (f"the checkpoint of epoch {saved} is kept" if saved else "the checkpoint of the run's start is kept"
                if saved == 0 else "the last checkpoint is kept")
        way = f"{kept}; free some space, then continue: graphspec train --resume {run_dir}"
    elif (run_dir / "run.json").is_file():
        way = f"nothing was trained yet; free some space, then start it over: graphspec train --resume {run_dir}"
    else:  # the header is incomplete: --name reuses a folder with nothing trained in it
        spec = run.checked.path or "SPEC"
        way = (f"nothing was trained yet; free some space, then start it again (the folder is reused): "
               f"graphspec train {spec} --runs {run_dir.parent.parent} --name {run_dir.name}")
    from dataclasses import replace

    return type(error)([replace(d, hint=way) if d.code == "cannot-write" else d for d in error.diagnostics])


def _train(spec, *, overrides, data, validation_data, runs_root, run_name, resume, verbose, handle_signals,
           write_run_dir, callbacks, echo, held: list, previous_handlers: dict) -> RunResult:
    echo = echo or (lambda text: print(text, file=sys.stderr))
    overrides = list(overrides or [])
    resume_dir = FsPath(resume) if resume is not None else None
    recorded: dict = {}
    if resume_dir is not None:
        recorded = rundir.read_run(resume_dir)
        if recorded.get("status") == "completed":
            raise TrainError([Diagnostic(code="resume-error", file=str(resume_dir), message=f"the run in '{resume_dir}' already completed",
                                         hint="start a new run")])
        if spec is None:
            spec = recorded.get("spec_path") or resume_dir / "spec.yaml"
        overrides = [(tuple(p), v) for p, v in recorded.get("overrides", [])] + overrides
    if spec is None:
        raise TrainError([Diagnostic(code="no-spec", message="give a spec file or --resume RUN")])

    if isinstance(spec, CheckedSpec):
        checked = spec
    else:
        checked = check_with_overrides(spec, overrides)
    from graphspec.canonical import canonical_json, spec_hash as hash_of

    spec_hash = hash_of(checked.graph)
    settings = resolved_settings(checked, seed=recorded.get("seed"))
    if verbose is not None:
        settings["verbose"] = verbose

    # TensorFlow from here on.
    from graphspec.train.distribute import make_distribution

    if settings["strategy"] == "mirrored":
        from graphspec.train.distribute import configure_cpu_devices

        configure_cpu_devices(settings.get("cpu_devices"))
    distribution = make_distribution(settings["strategy"], settings.get("cpu_devices"))
    _configure(settings)
    import keras

    model = _emit_in(distribution, checked)
    if settings["jit_compile"] != "auto":
        model.jit_compile = bool(settings["jit_compile"]) and not settings.get("deterministic")
    io_ = datalib.model_io(checked, model)
    examples, validation = _open(checked, io_, settings, data, validation_data)
    fingerprint = None
    if write_run_dir or resume_dir is not None:
        fingerprint = rundir.data_fingerprint(checked, train_data=data is None, validation_data=validation_data is None)

    writes = write_run_dir and distribution.is_chief  # non-chief workers write nothing
    if resume_dir is not None and writes:
        held.append(rundir.RunLock(resume_dir).acquire())
        rundir.remove_temp_files(resume_dir)
    meta: dict = {}
    arrays: dict = {}
    if resume_dir is not None:
        meta, arrays = _check_resume(resume_dir, checked, settings, recorded, fingerprint)

    run_dir: FsPath | None = None
    if writes:
        if resume_dir is not None:
            run_dir = resume_dir
        else:
            run_dir, lock = rundir.open_run_dir(runs_root, checked.spec.name, run_name)
            held.append(lock)
    run = _Run(checked=checked, settings=settings, spec_hash=spec_hash, run_dir=run_dir,
               is_chief=distribution.is_chief, verbose=settings["verbose"], has_validation=validation is not None,
               model=model, data_fingerprint=fingerprint)

    def on_signal(signum, frame):
        name = signal.Signals(signum).name
        signal.signal(signum, previous_handlers.get(signum, signal.SIG_DFL))  # a second signal acts at once
        if run.final_phase:
            run.signal_in_final = signum
            echo(f"\n{name}: finishing the final save first")
            return
        run.signal_received = signum
        model.stop_training = True
        echo(f"\n{name}: stopping after this batch; the last completed epoch is kept")

    if handle_signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                previous_handlers[signum] = signal.signal(signum, on_signal)
            except ValueError:  # not the main thread
                break

    try:
        return _run(run, checked, settings, model, io_, examples, validation, distribution, keras, meta, arrays,
                    resume_dir, recorded, spec, overrides, callbacks, echo, canonical_json)
    except TrainInterrupted:
        raise  # run.json already says interrupted (or completed, for a signal during the final save)
    except GraphspecError as error:
        error = _write_failed(error, run, run_dir)
        if not _update_run_json(run_dir, status="failed", error=str(error.diagnostics[0].message)[:500]
                                if error.diagnostics else None) and run_dir is not None \
                and any(d.code == "cannot-write" for d in error.diagnostics):
            echo(f"warning: could not record the failure in {run_dir / 'run.json'} (it may still say 'running')")
        raise error from None
    except BaseException as exc:
        _update_run_json(run_dir, status="failed", error=f"{type(exc).__name__}: {str(exc)[:500]}")
        raise


def _run(run: _Run, checked, settings, model, io_, examples, validation, distribution, keras, meta, arrays,
         resume_dir, recorded, spec, overrides, callbacks, echo, canonical_json) -> RunResult:
    run_dir = run.run_dir
    spec_hash = run.spec_hash
    if run_dir is not None and resume_dir is None:
        # run.json last: a folder with a run.json has every header file.
        info = {"status": "running", "spec": checked.spec.name, "spec_path": str(FsPath(str(spec)).resolve())
                if not isinstance(spec, CheckedSpec) and spec is not None else None,
                "spec_hash": spec_hash, "model_hash": model_hash(checked), "settings_hash": settings_hash(settings),
                "seed": settings["seed"],
                "overrides": [[list(p), v] for p, v in overrides], "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "command": sys.argv, "data": datalib.describe(examples),
                "validation": datalib.describe(validation) if validation is not None else None,
                "data_sha256": run.data_fingerprint,
                "strategy": distribution.kind, "replicas": distribution.replicas}
        rundir.atomic_write_text(run_dir / "spec.yaml", checked.loaded.source.text)
        rundir.atomic_write_text(run_dir / "spec.json", json.dumps(json.loads(canonical_json(checked.graph)), indent=1,
                                                                   sort_keys=True) + "\n")
        rundir.atomic_write_text(run_dir / "spec.sha256", spec_hash + "\n")
        rundir.atomic_write_json(run_dir / "settings.json", settings)
        rundir.atomic_write_json(run_dir / "versions.json", rundir.versions())
        rundir.atomic_write_json(run_dir / "run.json", info)

    extra_callbacks = list(callbacks or [])
    callbacks = make_callbacks(keras, run)
    callbacks[-1:-1] = extra_callbacks
    first_epoch = 0
    if model.optimizer is not None and not model.optimizer.built:
        with distribution.scope():  # every worker creates the optimizer's variables at the same point
            model.optimizer.build(model.trainable_variables)
    if meta:
        with distribution.scope():
            restore_state(model, meta, arrays, str(resume_dir / STATE_FILE))
        run.history = list(meta.get("history", []))
        run.completed_epochs = first_epoch = int(meta["epoch"])
        run.saved_epochs = first_epoch
        run.stopped_early = bool(meta.get("stopped_early"))
        run.restore_callbacks(meta.get("callbacks", {}), arrays)
        _update_run_json(run_dir, status="running", resumed_at_epoch=first_epoch)
        if run.stopped_early:
            echo(f"resuming {run_dir}: training had stopped early after epoch {first_epoch}; finishing the run")
        else:
            echo(f"resuming {run_dir} at epoch {first_epoch + 1} of {settings['epochs']}")
    elif run_dir is not None:
        if resume_dir is not None:
            _update_run_json(run_dir, status="running", resumed_at_epoch=0)
            echo(f"resuming {run_dir}: it holds no checkpoint (it stopped before its first epoch began); "
                 f"starting at epoch 1 of {settings['epochs']}")
        run.save_checkpoint(model)  # epoch 0: a run stopped in its first epoch restarts from the same weights

    global_batch = settings["batch_size"] * distribution.replicas
    epochs = settings["epochs"]
    train_ds, steps = datalib.training_dataset(
        examples, io_, batch_size=global_batch, seed=int(settings["seed"]), shuffle=settings["shuffle"],
        first_epoch=first_epoch, epochs=epochs, shuffle_buffer=settings["shuffle_buffer"],
        steps=settings.get("steps_per_epoch"), drop_remainder=distribution.kind == "multi-worker")
    val_ds = None
    if validation is not None:
        val_ds = datalib.eval_dataset(validation, io_, batch_size=global_batch)
    if distribution.kind != "default":
        from graphspec.train.distribute import distribute_options, prepare_model

        prepare_model(model, distribution, next(iter(datalib.eval_dataset(examples, io_, batch_size=global_batch))))

        train_ds = distribute_options(train_ds)
        val_ds = distribute_options(val_ds) if val_ds is not None else None

    if run.signal_received is None:
        if first_epoch < epochs and not run.stopped_early:
            with datalib.data_errors("training stopped on bad data"):
                model.fit(train_ds, epochs=epochs, initial_epoch=first_epoch, steps_per_epoch=steps,
                          validation_data=val_ds,
                          validation_freq=(settings.get("validation") or {}).get("frequency", 1),
                          callbacks=callbacks, verbose=settings["verbose"], shuffle=False)
        elif meta:
            run.end_without_fit()
    run.final_phase = True

    if run_dir is not None:
        rundir.write_history(run_dir, run.history)
    if run.nan_at is not None:
        epoch, batch, value = run.nan_at
        _update_run_json(run_dir, status="failed", error=f"loss {value} at epoch {epoch + 1}, batch {batch + 1}")
        where = f" in {run_dir / STATE_FILE}" if run_dir is not None else ""
        raise TrainError([Diagnostic(
            code="nan-loss", message=f"the loss became {value} at epoch {epoch + 1}, batch {batch + 1}; training "
            f"stopped", hint=f"the last good state (end of epoch {run.completed_epochs}) is kept{where}; lower the "
            "learning rate, check the data for NaN/Inf, or clip gradients (compile.optimizer.clipnorm)")])
    if run.signal_received is not None:
        _update_run_json(run_dir, status="interrupted", interrupted_at_epoch=run.epoch + 1)
        raise TrainInterrupted([Diagnostic(
            code="interrupted", message=f"{signal.Signals(run.signal_received).name} during epoch {run.epoch + 1}; "
            f"{run.completed_epochs} epoch(s) completed and saved",
            hint=f"continue with: graphspec train --resume {run_dir}" if run_dir is not None else None)],
            run.signal_received, run_dir)

    last = dict(run.history[-1]) if run.history else {}
    last.pop("epoch", None)
    metrics = dict(last)
    if val_ds is not None and run.history:
        # The model as it ends (early stopping may have restored an earlier epoch's weights).
        with datalib.data_errors("the final validation stopped on bad data"):
            final = model.evaluate(val_ds, verbose=0, return_dict=True)
        metrics = {k: v for k, v in last.items() if not k.startswith("val_")}
        metrics.update({f"val_{k}": float(v) for k, v in final.items()})
    if run_dir is not None:
        from graphspec.emit import save_artifact

        save_artifact(checked, model, run_dir / "model.keras")
        rundir.fix_mode(run_dir / "model.keras")
        if run.best_model is not None and not (run_dir / "best.keras").exists():
            save_artifact(checked, model, run_dir / "best.keras")
            rundir.fix_mode(run_dir / "best.keras")
        rundir.write_history(run_dir, run.history)
        rundir.atomic_write_json(run_dir / "metrics.json", {
            "epochs": run.completed_epochs, "final": metrics, "last_epoch": last,
            "best": {"monitor": run.best_model.monitor, "value": run.best_model.best,
                     "epoch": None if run.best_model.best_epoch is None else run.best_model.best_epoch + 1}
            if run.best_model is not None else None})
        curves_note: dict = {}
        try:
            best = run.best_model
            if rundir.plot_curves(run.history, run_dir / "curves.png", title=checked.spec.name,
                                  best_epoch=None if best is None or best.best_epoch is None else best.best_epoch + 1,
                                  monitor=None if best is None else best.monitor) is None:
                from graphspec.train.curves import MISSING_NOTE

                echo(f"note: {MISSING_NOTE}")
                curves_note = {"curves": MISSING_NOTE}
        except Exception as exc:  # the plot is a convenience: never fail a finished run over it
            echo(f"warning: could not draw curves.png: {exc}")
        _update_run_json(run_dir, strict=True, status="completed", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                         epochs=run.completed_epochs, **curves_note)
    if run.signal_in_final is not None:
        raise TrainInterrupted([Diagnostic(
            code="interrupted", message=f"{signal.Signals(run.signal_in_final).name} during the final save: the save "
            f"was finished first; the run completed ({run.completed_epochs} epochs)",
            hint=f"its results are in {run_dir}" if run_dir is not None else None)], run.signal_in_final, run_dir)
    return RunResult(run_dir=run_dir, model=model, history=run.history, metrics=metrics, settings=settings,
                     spec_hash=spec_hash, epochs_run=run.epochs_run)


def _update_run_json(run_dir: FsPath | None, strict: bool = False, **changes) -> bool:
    """Record a status change in run.json; False if it could not be written (``strict``: raise)."""
    if run_dir is None or not (run_dir / "run.json").is_file():
        return False
    try:
        info = rundir.read_json(run_dir / "run.json")
        info.update(changes)
        rundir.atomic_write_json(run_dir / "run.json", info)
    except (OSError, ValueError, AttributeError, GraphspecError):
        if strict:
            raise
        return False
    return True
