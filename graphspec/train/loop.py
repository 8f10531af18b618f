"""``graphspec train``: fit a spec's model on its data, in a run directory, resumably.

Order of work: check the spec (with overrides) -> resolve the settings (seed) ->
configure TensorFlow (devices, determinism, precision, strategy) -> build the
model with :func:`graphspec.emit.emit` -> open and check the data -> write the
run directory's header files -> ``model.fit`` -> final files.

Resumable state (``checkpoint.npz``) is written atomically at the end of every
epoch: every model variable (weights and the dropout RNG states), every
optimizer variable (iteration count, learning rate, moments), the callbacks'
counters and the history. Epoch *e*'s batches depend only on (seed, *e*), so a
resumed run replays exactly what an uninterrupted one does. SIGTERM and SIGINT
stop the run after the current batch; the last completed epoch's state is the
resumable checkpoint. A NaN/Inf loss stops the run with an error and the last
good checkpoint is kept.
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

from graphspec.errors import Diagnostic, DiagnosticSink, GraphspecError, TrainError
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

def _direction(monitor: str, mode: str) -> str:
    if mode != "auto":
        return mode
    name = monitor[4:] if monitor.startswith("val_") else monitor
    return "min" if ("loss" in name or "error" in name or name.endswith("_e") or "crossentropy" in name) else "max"


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

    class BestModel(keras.callbacks.Callback):
        """Tracks the best epoch. Its weights are kept in memory (and in the checkpoint while they differ
        from the current ones); ``best.keras`` is written when training ends or stops, and at most every
        FLUSH_SECONDS in between, so a small model's epochs do not each pay for a full ``model.save``."""

        def __init__(self, monitor: str, mode: str):
            super().__init__()
            self.monitor = monitor
            self.direction = _direction(monitor, mode)
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
        run.early_stopping = keras.callbacks.EarlyStopping(**es, verbose=1 if run.verbose else 0)
        callbacks.append(run.early_stopping)
    rl = spec.get("reduce_lr_on_plateau")
    if rl:
        run.reduce_lr = keras.callbacks.ReduceLROnPlateau(**rl, verbose=1 if run.verbose else 0)
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


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
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
    epoch: int = 0
    nan_at: tuple | None = None
    signal_received: int | None = None
    early_stopping: Any = None
    reduce_lr: Any = None
    best_model: Any = None
    history_written: float = 0.0

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
        for name, values in state.items():
            callback = getattr(self, name, None)
            if callback is None:
                continue
            for attribute, value in values.items():
                setattr(callback, attribute, value)
        weights = sorted((k for k in arrays if k.startswith("extra/early_stopping_best/")),
                         key=lambda k: int(k.rsplit("/", 1)[1]))
        if self.early_stopping is not None and weights:
            self.early_stopping.best_weights = [arrays[k] for k in weights]
        best = sorted((k for k in arrays if k.startswith("extra/best_model/")), key=lambda k: int(k.rsplit("/", 1)[1]))
        if self.best_model is not None and self.best_model.best_epoch is not None:
            if best:
                self.best_model.best_weights = [arrays[k] for k in best]
            elif self.best_model.best_epoch == self.completed_epochs - 1:
                self.best_model.best_weights = self.model.get_weights()  # the checkpoint's own weights

    def save_checkpoint(self, model) -> None:
        if not self.is_chief or self.run_dir is None:
            return
        state, extra = self.callback_state()
        meta = {"epoch": self.completed_epochs, "history": self.history, "callbacks": state,
                "spec_hash": self.spec_hash, "model_hash": model_hash(self.checked), "settings_hash": settings_hash(self.settings),
                "seed": self.settings["seed"], "time": time.time()}
        save_state(self.run_dir / STATE_FILE, model, meta, extra)


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


def _check_resume(run_dir: FsPath, checked: CheckedSpec, settings: dict) -> tuple[dict, dict]:
    path = run_dir / STATE_FILE
    if not path.is_file():
        raise TrainError([Diagnostic(code="resume-error", file=str(run_dir), message=f"'{run_dir}' has no {STATE_FILE} to resume from",
                                     hint="is it a graphspec run directory?")])
    try:
        meta, arrays = read_state(path)
    except Exception as exc:  # a damaged file
        raise TrainError([Diagnostic(code="resume-error", file=str(run_dir), message=f"cannot read {path}: {exc}")]) from None
    now = model_hash(checked)
    if meta.get("model_hash") != now:
        raise TrainError([Diagnostic(code="resume-changed", file=str(run_dir), message=f"the spec changed since '{run_dir}' was started "
                                     f"(model hash {str(meta.get('model_hash'))[:19]}..., now {now[:19]}...)",
                                     hint="resume with the spec as it was (see spec.yaml in the run directory), "
                                     "or start a new run")])
    if meta.get("settings_hash") != settings_hash(settings):
        saved = rundir.read_json(run_dir / "settings.json") if (run_dir / "settings.json").is_file() else {}
        changed = sorted(k for k in set(saved) | set(settings) if k != "verbose" and saved.get(k) != settings.get(k))
        raise TrainError([Diagnostic(code="resume-changed", file=str(run_dir), message="the train settings changed since the run was "
                                     f"started ({', '.join(changed) or 'see settings.json'})",
                                     hint="resume without overrides, or start a new run")])
    return meta, arrays


def train(spec: str | os.PathLike | CheckedSpec | None = None, *, overrides: list | None = None, data: Any = None,
          validation_data: Any = None, runs_root: str | os.PathLike = "runs", run_name: str | None = None,
          resume: str | os.PathLike | None = None, verbose: int | None = None, handle_signals: bool = True,
          write_run_dir: bool = True, callbacks: list | None = None,
          echo: Callable[[str], None] | None = None) -> RunResult:
    """Train a spec's model; returns the fitted model, its history and the run directory.

    ``spec`` is a spec file (or a :class:`CheckedSpec`); ``overrides`` come from
    :func:`graphspec.train.settings.override_list`. ``data``/``validation_data`` replace the
    spec's sources (Python API: dicts of arrays, ``(x, y)`` or ``tf.data.Dataset``).
    ``resume`` continues the run in that directory, refusing if the spec or settings changed.
    ``callbacks`` (Python API) are extra Keras callbacks, run before graphspec's checkpointing.
    """
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

    meta: dict = {}
    arrays: dict = {}
    if resume_dir is not None:
        meta, arrays = _check_resume(resume_dir, checked, settings)

    run_dir: FsPath | None = None
    if write_run_dir and distribution.is_chief:
        run_dir = resume_dir or rundir.new_run_dir(runs_root, checked.spec.name, run_name)
    elif write_run_dir:
        run_dir = None  # non-chief workers write nothing
    run = _Run(checked=checked, settings=settings, spec_hash=spec_hash, run_dir=run_dir,
               is_chief=distribution.is_chief, verbose=settings["verbose"], has_validation=validation is not None,
               model=model)

    if run_dir is not None and resume_dir is None:
        info = {"status": "running", "spec": checked.spec.name, "spec_path": str(FsPath(str(spec)).resolve())
                if not isinstance(spec, CheckedSpec) and spec is not None else None,
                "spec_hash": spec_hash, "seed": settings["seed"],
                "overrides": [[list(p), v] for p, v in overrides], "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "command": sys.argv, "data": datalib.describe(examples),
                "validation": datalib.describe(validation) if validation is not None else None,
                "strategy": distribution.kind, "replicas": distribution.replicas}
        rundir.atomic_write_json(run_dir / "run.json", info)
        rundir.atomic_write_text(run_dir / "spec.yaml", checked.loaded.source.text)
        rundir.atomic_write_text(run_dir / "spec.json", json.dumps(json.loads(canonical_json(checked.graph)), indent=1,
                                                                   sort_keys=True) + "\n")
        rundir.atomic_write_text(run_dir / "spec.sha256", spec_hash + "\n")
        rundir.atomic_write_json(run_dir / "settings.json", settings)
        rundir.atomic_write_json(run_dir / "versions.json", rundir.versions())

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
        run.restore_callbacks(meta.get("callbacks", {}), arrays)
        _update_run_json(run_dir, status="running", resumed_at_epoch=first_epoch)
        echo(f"resuming {run_dir} at epoch {first_epoch + 1} of {settings['epochs']}")
    elif run_dir is not None:
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

    previous_handlers: dict = {}

    def on_signal(signum, frame):
        run.signal_received = signum
        model.stop_training = True
        echo(f"\n{signal.Signals(signum).name}: stopping after this batch; the last completed epoch is kept")
        signal.signal(signum, previous_handlers.get(signum, signal.SIG_DFL))  # a second signal acts at once

    if handle_signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                previous_handlers[signum] = signal.signal(signum, on_signal)
            except ValueError:  # not the main thread
                break
    try:
        if first_epoch < epochs:
            with datalib.data_errors("training stopped on bad data"):
                model.fit(train_ds, epochs=epochs, initial_epoch=first_epoch, steps_per_epoch=steps,
                          validation_data=val_ds,
                          validation_freq=(settings.get("validation") or {}).get("frequency", 1),
                          callbacks=callbacks, verbose=settings["verbose"], shuffle=False)
    except GraphspecError:
        _update_run_json(run_dir, status="failed")
        raise
    except BaseException as exc:
        _update_run_json(run_dir, status="failed", error=f"{type(exc).__name__}: {str(exc)[:500]}")
        raise
    finally:
        for signum, handler in previous_handlers.items():
            try:
                signal.signal(signum, handler)
            except (ValueError, TypeError):
                pass

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
        try:
            rundir.plot_curves(run.history, run_dir / "curves.png")
        except Exception as exc:  # the plot is a convenience: never fail a finished run over it
            echo(f"warning: could not draw curves.png: {exc}")
        _update_run_json(run_dir, status="completed", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                         epochs=run.completed_epochs)
    return RunResult(run_dir=run_dir, model=model, history=run.history, metrics=metrics, settings=settings,
                     spec_hash=spec_hash, epochs_run=run.epochs_run)


def _update_run_json(run_dir: FsPath | None, **changes) -> None:
    if run_dir is None or not (run_dir / "run.json").is_file():
        return
    info = rundir.read_json(run_dir / "run.json")
    info.update(changes)
    rundir.atomic_write_json(run_dir / "run.json", info)
