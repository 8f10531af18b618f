"""The Keras callbacks of a run, as module-level classes that save and restore their own state.

Each resumable callback has ``state() -> (counters, arrays)`` (what the checkpoint keeps) and
``restore(counters, arrays)`` (put back on resume). Keras' own ``EarlyStopping`` and
``ReduceLROnPlateau`` reset their counters in ``on_train_begin``; theirs are put back right after
that reset, so a resumed run waits, reduces and stops exactly where an uninterrupted one does.

Imports Keras: imported by :mod:`.loop` only after the backend is configured.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from graphspec.errors import Diagnostic, DiagnosticSink, Path, TrainError
from graphspec.train import rundir

if TYPE_CHECKING:
    from graphspec.train.loop import _Run

FLUSH_SECONDS = 60.0
"""Longest time best.keras lags behind the best epoch while training runs (it is exact at the end)."""
HISTORY_SECONDS = 5.0
"""history.json/.csv are rewritten after an epoch at most this often while training runs (exact at the end)."""


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



def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if hasattr(value, "numpy"):  # a scalar tensor
        return np.asarray(value.numpy()).item()
    return value


def _direction_of(run: "_Run", model, monitor: str, mode: str, where: Path) -> str:
    try:
        return monitor_direction(model, monitor, mode)
    except TrainError as error:  # located at the callback's monitor in the spec
        located = DiagnosticSink(source=run.checked.loaded.source)
        for d in error.diagnostics:
            located.error(d.code, d.message, where, d.hint)
        raise TrainError(located.sorted()) from None


def _weights(arrays: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    keys = sorted((k for k in arrays if k.startswith(prefix)), key=lambda k: int(k.rsplit("/", 1)[1]))
    return [arrays[k] for k in keys]


class Guard(keras.callbacks.Callback):
    """NaN/Inf losses: stop after the current batch; signals: leave ``fit`` at the next batch's start.

    ``async_safe``: Keras may run it on its callback thread, so the training loop keeps
    dispatching steps asynchronously (as a plain ``model.fit`` does) instead of waiting for
    every batch's logs; a NaN is then caught within a batch or two of where it appears."""

    async_safe = True

    def __init__(self, run: "_Run"):
        super().__init__()
        self.run = run
        self._batches = threading.Condition()
        self._begun = 0
        self._ended = 0

    def on_train_batch_begin(self, batch, logs=None):
        # Called on the main thread at the start of every batch: after a signal or a NaN loss, leave
        # fit here, at the end of the batch that was running, before Keras validates or records a
        # partial epoch (stop_training alone ends the epoch, then Keras validates it).
        if self.run.signal_received or self.run.nan_at is not None:
            from graphspec.train.loop import _StopNow

            raise _StopNow()
        self.run.batch = batch  # the batch now running: when the next one begins, it has finished
        with self._batches:
            self._begun += 1

    def on_train_batch_end(self, batch, logs=None):
        run = self.run
        loss = (logs or {}).get("loss")
        with self._batches:
            if loss is not None and not math.isfinite(float(loss)):
                # Keras' callback threads may run batch ends out of order: keep the first NaN batch
                where = (run.epoch, batch)
                if run.nan_at is None or where < run.nan_at[:2]:
                    run.nan_at = (*where, float(loss))
                self.model.stop_training = True
            self._ended += 1
            self._batches.notify_all()

    def on_test_begin(self, logs=None):
        # The start of fit's validation, on the main thread. With this callback on Keras' callback
        # threads, a NaN in the epoch's last batches may not have been seen yet (Keras waits for those
        # threads only at the epoch's end, after validating): wait for every batch end of the epoch,
        # then leave fit if one was NaN (that epoch is dropped, not validated on NaN weights).
        with self._batches:
            self._batches.wait_for(lambda: self._ended >= self._begun, timeout=600)
        if self.run.nan_at is not None:
            from graphspec.train.loop import _StopNow

            raise _StopNow()

    def on_epoch_begin(self, epoch, logs=None):
        if self.run.signal_received or self.run.nan_at is not None:  # after an epoch's end: that epoch is saved
            from graphspec.train.loop import _StopNow

            raise _StopNow()
        self.run.epoch = epoch
        self.run.batch = -1


class LrSchedule(keras.callbacks.Callback):
    """``train.callbacks.lr_schedule``: the learning rate of each epoch from a Keras schedule."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        value = float(keras.ops.convert_to_numpy(self.schedule(epoch)))
        self.model.optimizer.learning_rate.assign(value)


class _Resumable:
    """Mixin for Keras' EarlyStopping and ReduceLROnPlateau: the counters of a resumed run
    (``pending``) are applied right after Keras' own reset in ``on_train_begin``. The direction of
    ``mode: auto`` comes from :func:`monitor_direction` (Keras' own rule, also for a multi-output
    model's per-output names)."""

    key = ""
    where: Path = ()
    counters: tuple[str, ...] = ()

    def __init__(self, run: "_Run", **kwargs):
        super().__init__(**kwargs)
        self.run = run
        self.pending: dict | None = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.pending is not None:
            for attribute, value in self.pending.items():
                setattr(self, attribute, value)
            self.pending = None

    def _set_monitor_op(self):
        self.mode = _direction_of(self.run, self.model, self.monitor, self.mode, self.where)
        super()._set_monitor_op()

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return {a: _plain(getattr(self, a, None)) for a in self.counters}, {}

    def restore(self, counters: dict, arrays: dict[str, np.ndarray]) -> None:
        self.pending = {a: v for a, v in counters.items() if a in self.counters and (v is not None or a == "best")}


class EarlyStopping(_Resumable, keras.callbacks.EarlyStopping):
    key = "early_stopping"
    where = ("train", "callbacks", "early_stopping", "monitor")
    counters = ("wait", "best", "stopped_epoch", "best_epoch")

    def state(self):
        counters, arrays = super().state()
        if self.best_weights is not None:
            for i, w in enumerate(self.best_weights):
                arrays[f"early_stopping_best/{i}"] = np.asarray(w)
        return counters, arrays

    def restore(self, counters, arrays):
        super().restore(counters, arrays)
        weights = _weights(arrays, "extra/early_stopping_best/")
        self.pending["best_weights"] = weights or None


class ReduceLROnPlateau(_Resumable, keras.callbacks.ReduceLROnPlateau):
    key = "reduce_lr"
    where = ("train", "callbacks", "reduce_lr_on_plateau", "monitor")
    counters = ("wait", "best", "cooldown_counter")
    """(The learning rate it lowered is an optimizer variable, saved with the others.)"""


class BestModel(keras.callbacks.Callback):
    """Tracks the best epoch. Its weights are kept in memory (and in the checkpoint while they differ
    from the current ones); ``best.keras`` is written when training ends or stops, and at most every
    FLUSH_SECONDS in between, so a small model's epochs do not each pay for a full ``model.save``.
    Lower or higher is better as Keras decides it (:func:`monitor_direction`)."""

    key = "best_model"
    counters = ("best", "best_epoch", "written_epoch")

    def __init__(self, run: "_Run", monitor: str, mode: str):
        super().__init__()
        self.run = run
        self.monitor = monitor
        self.mode = mode
        self.direction: str | None = mode if mode in ("min", "max") else None
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_weights: list | None = None
        self.written_epoch: int | None = None
        self.last_flush = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if self.run.nan_at is not None:
            return
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        if self.direction is None:
            self.direction = _direction_of(self.run, self.model, self.monitor, self.mode,
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
        run = self.run
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

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        counters = {a: _plain(getattr(self, a, None)) for a in self.counters}
        arrays = {}
        if self.best_weights is not None and self.best_epoch != self.run.progress.epochs - 1:
            for i, w in enumerate(self.best_weights):
                arrays[f"best_model/{i}"] = np.asarray(w)
        return counters, arrays

    def restore(self, counters: dict, arrays: dict[str, np.ndarray]) -> None:
        for attribute, value in counters.items():
            setattr(self, attribute, value)
        if self.best_epoch is not None:
            weights = _weights(arrays, "extra/best_model/")
            if weights:
                self.best_weights = weights
            elif self.best_epoch == self.run.progress.epochs - 1:
                self.best_weights = self.run.model.get_weights()  # the checkpoint's own weights


class EpochRecorder(keras.callbacks.Callback):
    """Last in the list: records the epoch's row of the history and writes the resumable checkpoint."""

    def __init__(self, run: "_Run"):
        super().__init__()
        self.run = run

    def on_epoch_end(self, epoch, logs=None):
        run = self.run
        stopping = bool(self.model.stop_training)
        if run.nan_at is not None:  # a NaN stops the epoch part-way: not a completed epoch
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
        run.progress.record(row, stopped_early=stopping)  # early stopping (or a user callback) ended training here
        run.epochs_run.append(epoch)
        run.save_checkpoint(self.model)
        if run.is_chief and run.run_dir is not None and time.monotonic() - run.history_written > HISTORY_SECONDS:
            rundir.write_history(run.run_dir, run.progress.history)
            run.history_written = time.monotonic()


class EpochLine(keras.callbacks.Callback):
    """One plain line per epoch on stdout (no progress bar, no carriage returns, no colour): what a
    log file or a CI job shows. ``epoch 3/25 - 4.1s - loss 0.4123 - accuracy 0.8750 - val_loss ...``"""

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        import sys

        parts = [f"epoch {epoch + 1}/{self.params.get('epochs', '?')}", f"{time.monotonic() - self.started:.1f}s"]
        for key, value in (logs or {}).items():
            try:
                parts.append(f"{key} {float(value):.4g}")
            except (TypeError, ValueError):
                continue
        print(" - ".join(parts), file=self.stream or sys.stdout, flush=True)


def make_callbacks(run: "_Run") -> list:
    """The Keras callbacks of a run, in the order they must see each epoch's end (the recorder last)."""
    callbacks: list = [Guard(run)]
    spec = run.settings.callbacks
    sink = DiagnosticSink(source=run.checked.loaded.source)
    if spec.lr_schedule is not None:
        from graphspec.emit import make_object

        optimizer_lr = getattr(run.model.optimizer, "_learning_rate", None)
        if isinstance(optimizer_lr, keras.optimizers.schedules.LearningRateSchedule):
            sink.error("bad-schedule", "compile.optimizer.learning_rate is already a schedule; give one or the other",
                       ("train", "callbacks", "lr_schedule"))
            sink.raise_if_errors(TrainError)
        callbacks.append(LrSchedule(make_object("schedules", spec.lr_schedule.model_dump(mode="json"))))
    if spec.early_stopping is not None:
        run.early_stopping = EarlyStopping(run, **spec.early_stopping.model_dump(mode="json"),
                                           verbose=1 if run.verbose else 0)
        callbacks.append(run.early_stopping)
    if spec.reduce_lr_on_plateau is not None:
        run.reduce_lr = ReduceLROnPlateau(run, **spec.reduce_lr_on_plateau.model_dump(mode="json"),
                                          verbose=1 if run.verbose else 0)
        callbacks.append(run.reduce_lr)
    best = spec.best_model
    if best is not False and best is not None:
        monitor = best.monitor or ("val_loss" if run.has_validation else "loss")
        run.best_model = BestModel(run, monitor, best.mode)
        callbacks.append(run.best_model)
    tb = spec.tensorboard
    if tb is not False and tb is not None and run.is_chief and run.run_dir is not None:
        scalars = tensorboard_callback(run.run_dir / "logs", tb.model_dump(mode="json"))
        if isinstance(scalars, _EpochScalars):
            run.scalars = scalars
        callbacks.append(scalars)
    callbacks.append(EpochRecorder(run))
    return callbacks


class EventFile:
    """One TensorBoard event file (``events.out.tfevents.<time>.<host>.<pid>.<n>.v2``): TFRecord-framed
    ``Event`` protocol buffers, the first naming the format (``brain.Event:2``), then one scalar per
    event in the layout ``tf.summary.scalar`` writes (a float tensor with the scalars plugin's metadata).

    Written with TensorFlow's record writer and protocol buffers, not with ``tf.summary``: its eager ops
    and summary writer resource woke TensorFlow's thread pools at every epoch, ~25 ms of CPU per epoch
    on the JAX backend (which otherwise runs no TensorFlow op in an epoch): a tenth of a small model's
    epoch (docs/benchmarks.md). A file is never appended to; each writer starts its own, as TensorFlow's
    does, and TensorBoard reads a folder's files in order."""

    _made = 0

    def __init__(self, folder: FsPath):
        import tensorflow as tf
        from tensorflow.core.util import event_pb2

        folder.mkdir(parents=True, exist_ok=True)
        EventFile._made += 1
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.{EventFile._made}.v2"
        self.path = folder / name
        self._event = event_pb2.Event
        self._records = tf.io.TFRecordWriter(str(self.path))
        self._records.write(self._event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())

    def scalars(self, step: int, values: dict[str, float]) -> None:
        from tensorflow.core.framework import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

        metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
        now = time.time()
        for tag, value in values.items():
            tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=tensor_shape_pb2.TensorShapeProto(),
                                            float_val=[value])
            summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, metadata=metadata, tensor=tensor)])
            self._records.write(self._event(wall_time=now, step=step, summary=summary).SerializeToString())

    def flush(self) -> None:
        self._records.flush()

    def close(self) -> None:
        self._records.close()


class _EpochScalars(keras.callbacks.Callback):
    """Epoch scalars in TensorBoard's layout (``logs/train``, ``logs/validation``, tags ``epoch_<name>``),
    one :class:`EventFile` per folder. The files are flushed at most every HISTORY_SECONDS, like the
    history files, and closed at the end, as Keras' own ``TensorBoard`` callback leaves flushing to its
    writer (every 2 minutes)."""

    def __init__(self, log_dir: FsPath):
        super().__init__()
        self.log_dir = FsPath(log_dir)
        self.writers: dict[str, EventFile] = {}
        self.flushed = 0.0

    def on_epoch_end(self, epoch, logs=None):
        split_values: dict[str, dict[str, float]] = {}
        for key, value in (logs or {}).items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            split = "validation" if key.startswith("val_") else "train"
            split_values.setdefault(split, {})["epoch_" + (key[4:] if split == "validation" else key)] = number
        for split, values in split_values.items():
            if split not in self.writers:
                self.writers[split] = EventFile(self.log_dir / split)
            self.writers[split].scalars(epoch, values)
        if time.monotonic() - self.flushed > HISTORY_SECONDS:
            for writer in self.writers.values():
                writer.flush()
            self.flushed = time.monotonic()

    def on_train_end(self, logs=None):
        self.close()

    def close(self) -> None:
        """Close the files (what they hold reaches the disk); also called when training stops otherwise."""
        writers, self.writers = self.writers, {}
        for writer in writers.values():
            writer.close()


def tensorboard_callback(log_dir: FsPath, options: dict) -> Any:
    """Keras' TensorBoard callback when the ``tensorboard`` package is installed; otherwise epoch scalars
    written with TensorFlow's own summary writer, in the same layout (``logs/train``, ``logs/validation``,
    tags ``epoch_<name>``), readable by TensorBoard. (TensorFlow >= 2.21 no longer installs TensorBoard.)"""
    try:
        import tensorboard  # noqa: F401

        return keras.callbacks.TensorBoard(log_dir=str(log_dir), profile_batch=0, **options)
    except ImportError:
        return _EpochScalars(log_dir)


RESUMABLE = ("early_stopping", "reduce_lr", "best_model")
"""The run's attributes holding callbacks whose state the checkpoint keeps, in the checkpoint's order."""
