"""``graphspec train``: fit a spec's model on its data, in a run directory, resumably.

:func:`train` reads as the outline of a run: check the spec (with overrides) -> resolve the
settings (seed) -> configure the backend (devices, determinism, precision, strategy) -> build the
model with :func:`graphspec.emit.emit` -> open and check the data -> open the run directory
(:class:`~graphspec.train.rundir.RunDirectory`) -> start or resume -> ``model.fit`` -> final files.

Resumable state (``checkpoint.npz``, :mod:`.checkpoint`) is written atomically at the end of every
epoch, with each callback's own state (:mod:`.callbacks`). Epoch *e*'s batches depend only on
(seed, *e*), so a resumed run replays exactly what an uninterrupted one does, and
``--resume RUN --epochs N`` extends a finished run as if it had been started with N epochs.

SIGTERM and SIGINT stop the run at the end of the current batch: the partial epoch is neither
validated nor saved, the last completed epoch's checkpoint is the resumable state, and the message
says which epoch that is and how to resume. A second signal stops at once; the run is still
resumable (every write is atomic). During the final save signals are deferred until it is written.
A NaN/Inf loss stops the run with an error and the last good checkpoint is kept. A failed write
(a full disk) is ``cannot-write`` with the way to resume. The run directory is locked while it is
written, and ``--resume`` refuses changed training data (SHA-256 of its files).

The closing line and ``metrics.json`` report one epoch's metrics: the epoch whose weights the
final model holds (the best epoch when early stopping restored it, else the last), and say which.
When stdout is not a terminal, progress is one plain line per epoch instead of a progress bar.
"""

from __future__ import annotations

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
from graphspec.train.checkpoint import (  # noqa: F401  (read_state: public, tests read checkpoints through loop)
    STATE_FILE,
    Progress,
    _check_resume,
    model_hash,
    read_state,
    restore_state,
    StateWriter,
    saved_epoch,
    state_arrays,
    settings_hash,
)
from graphspec.train.settings import TrainSettings, check_with_overrides, train_settings


class TrainInterrupted(TrainError):
    """SIGINT/SIGTERM stopped the run; its last completed epoch is saved and resumable."""

    def __init__(self, diagnostics, signum: int, run_dir: FsPath):
        super().__init__(diagnostics)
        self.signum = signum
        self.run_dir = run_dir

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _StopNow(Exception):
    """Raised at the start of the batch after a signal or a NaN loss (or at the start of the validation
    that would follow a NaN): leaves ``fit`` without validating the partial epoch."""


def __getattr__(name: str):
    if name == "monitor_direction":  # in .callbacks, which imports Keras: only when asked for
        from graphspec.train.callbacks import monitor_direction

        return monitor_direction
    raise AttributeError(name)


@dataclass
class RunResult:
    run_dir: FsPath | None
    model: Any
    history: list[dict[str, float]]
    metrics: dict[str, float]
    """The metrics of epoch ``final_epoch``, whose weights ``model`` holds (training and validation)."""
    settings: dict[str, Any]
    spec_hash: str
    epochs_run: list[int] = field(default_factory=list)
    """Epoch numbers (0-based) trained by this call (a resumed run skips the finished ones)."""
    final_epoch: int | None = None
    """The epoch (1-based) whose weights the final model holds: the best one when early stopping
    restored it, else the last one trained."""
    backend: str = "tensorflow"


@dataclass
class _Run:
    """What one call of :func:`train` keeps while it runs: the live objects (model, run directory,
    callbacks, signal and NaN state) and the :class:`Progress` that the checkpoint saves."""

    checked: CheckedSpec
    settings: TrainSettings
    spec_hash: str
    directory: rundir.RunDirectory | None
    is_chief: bool
    verbose: int
    has_validation: bool = False
    model: Any = None
    progress: Progress = field(default_factory=Progress)
    """What the checkpoint saves of the progress; the rest here is this call's live state."""
    epochs_run: list = field(default_factory=list)
    saved_epochs: int | None = None
    """The epoch of the last checkpoint written (None: none written by this call)."""
    writer: StateWriter = field(default_factory=StateWriter)
    """Writes the checkpoints in the background (``run.writer.wait()``: the last one is on disk)."""
    epoch: int = 0
    batch: int = -1
    """The last batch (0-based) of ``epoch`` that finished."""
    nan_at: tuple | None = None
    signal_received: int | None = None
    final_phase: bool = False
    signal_in_final: int | None = None
    early_stopping: Any = None
    reduce_lr: Any = None
    best_model: Any = None
    scalars: Any = None
    """graphspec's TensorBoard scalar writer, if it writes them: closed however training ends (Keras calls
    ``on_train_end`` only when ``fit`` returns)."""
    history_written: float = 0.0
    data_fingerprint: dict | None = None

    @property
    def run_dir(self) -> FsPath | None:
        return self.directory.path if self.directory is not None else None

    def resumable_callbacks(self) -> list:
        from graphspec.train.callbacks import RESUMABLE

        return [c for c in (getattr(self, name) for name in RESUMABLE) if c is not None]

    def callback_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """Each resumable callback's own state, keyed by its name (the checkpoint's layout)."""
        state: dict = {}
        extra: dict[str, np.ndarray] = {}
        for callback in self.resumable_callbacks():
            state[callback.key], arrays = callback.state()
            extra.update(arrays)
        return state, extra

    def restore_callbacks(self, state: dict, arrays: dict[str, np.ndarray]) -> None:
        """Give each callback its state from the checkpoint (Keras' own apply theirs when ``fit`` begins)."""
        for callback in self.resumable_callbacks():
            if callback.key in state:
                callback.restore(state[callback.key], arrays)

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

    def final_epoch(self) -> int | None:
        """The epoch (1-based) whose weights the model holds once training ended."""
        es = self.early_stopping
        if es is not None and es.restore_best_weights and es.best_weights is not None and es.best_epoch is not None:
            return int(es.best_epoch) + 1
        return self.progress.epochs or None

    def save_checkpoint(self, model) -> None:
        if not self.is_chief or self.run_dir is None:
            return
        state, extra = self.callback_state()
        meta = {**self.progress.meta(), "callbacks": state, "data_sha256": self.data_fingerprint,
                "spec_hash": self.spec_hash, "model_hash": model_hash(self.checked), "settings_hash": settings_hash(self.settings),
                "seed": self.settings.seed, "time": time.time()}
        arrays = state_arrays(model, meta, extra)  # host copies now: the next step changes the variables
        epochs = self.progress.epochs

        def written() -> None:
            self.saved_epochs = epochs

        self.writer.write(self.run_dir / STATE_FILE, arrays, written)


@dataclass
class _Request:
    """What was asked for: the spec, the overrides (a resumed run's recorded ones first), the run to resume."""

    spec: Any
    overrides: list
    resume_dir: FsPath | None = None
    recorded: dict = field(default_factory=dict)
    extend_to: int | None = None
    """``--resume RUN --epochs N``: the new total number of epochs."""


# -- the outline ----------------------------------------------------------------------------------

def train(spec: str | os.PathLike | CheckedSpec | None = None, *, overrides: list | None = None, data: Any = None,
          validation_data: Any = None, runs_root: str | os.PathLike = "runs", run_name: str | None = None,
          resume: str | os.PathLike | None = None, verbose: int | None = None, handle_signals: bool = True,
          write_run_dir: bool = True, callbacks: list | None = None,
          echo: Callable[[str], None] | None = None, checked: CheckedSpec | None = None) -> RunResult:
    """Train a spec's model; returns the fitted model, its history and the run directory.

    ``spec`` is a spec file (or a :class:`CheckedSpec`); ``overrides`` come from
    :func:`graphspec.overrides.override_list`. ``data``/``validation_data`` replace the
    spec's sources (Python API: dicts of arrays, ``(x, y)`` or ``tf.data.Dataset``).
    ``resume`` continues the run in that directory, refusing if the spec, settings or data changed;
    with an ``epochs`` override it extends the run (also a completed one) to that many epochs.
    ``callbacks`` (Python API) are extra Keras callbacks, run before graphspec's checkpointing.

    The run directory is locked (``.lock``) while training writes it: a second ``train`` into
    it is refused with ``error[run-locked]``.
    """
    held: list = []
    previous_handlers: dict = {}
    echo = echo or (lambda text: print(text, file=sys.stderr))
    try:
        request = _request(spec, overrides, resume)
        if checked is None:  # (the CLI passes the spec it checked, with these overrides, before TensorFlow)
            checked = request.spec if isinstance(request.spec, CheckedSpec) else \
                check_with_overrides(request.spec, request.overrides)
        settings = train_settings(checked, seed=request.recorded.get("seed"), verbose=verbose)
        distribution = _configure(settings, checked)  # TensorFlow (and the Keras backend) from here on
        model = _emit_in(distribution, checked, settings)
        io_ = datalib.model_io(checked, model)
        examples, validation = _open(checked, io_, settings, data, validation_data)
        fingerprint = rundir.data_fingerprint(checked, train_data=data is None, validation_data=validation_data
                                              is None) if write_run_dir or request.resume_dir is not None else None
        directory, meta, arrays = _directory(request, checked, settings, fingerprint, runs_root, run_name,
                                             write_run_dir and distribution.is_chief, held)
        run = _Run(checked=checked, settings=settings, spec_hash=_spec_hash(checked), directory=directory,
                   is_chief=distribution.is_chief, verbose=settings.verbose, has_validation=validation is not None,
                   model=model, data_fingerprint=fingerprint)
        if handle_signals:
            _handle_signals(run, echo, previous_handlers)
        try:
            if directory is not None and request.resume_dir is None:
                _write_header(run, request, examples, validation, distribution)
            keras_callbacks = _start(run, request, meta, arrays, distribution, callbacks, echo)
            train_ds, val_ds, steps = _datasets(run, examples, validation, io_, distribution)
            _fit(run, train_ds, val_ds, steps, keras_callbacks, bool(meta))
            run.writer.wait()  # the last epoch's checkpoint is on disk (or its write error is raised here)
            run.final_phase = True
            _stop_if_abnormal(run)
            return _finish(run, val_ds, echo)
        except (TrainInterrupted, _StopNow):
            raise  # run.json already says interrupted (or completed, for a signal during the final save)
        except KeyboardInterrupt:  # a second SIGINT: stopped at once, still resumable
            run.writer.settle()
            raise _stopped_at_once(run) from None
        except GraphspecError as error:
            run.writer.settle()  # a checkpoint write failing too leaves the previous one, which is reported
            raise _failed(run, error, echo) from None
        except BaseException as exc:
            run.writer.settle()
            if directory is not None:
                directory.failed(f"{type(exc).__name__}: {str(exc)[:500]}")
            raise
        finally:
            run.writer.settle()  # no write outlives the call (the lock is released next)
            if run.scalars is not None:
                run.scalars.close()
    finally:
        for signum, handler in previous_handlers.items():
            try:
                signal.signal(signum, handler)
            except (ValueError, TypeError):
                pass
        for lock in held:
            lock.release()


# -- the steps ------------------------------------------------------------------------------------

def _spec_hash(checked: CheckedSpec) -> str:
    from graphspec.canonical import spec_hash

    return spec_hash(checked.graph)


def _epochs_override(overrides: list) -> int | None:
    value = None
    for path, new in overrides:
        if tuple(path) == ("train", "epochs"):
            value = new
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _epochs(count: int) -> str:
    return f"{count} epoch" + ("" if count == 1 else "s")


def _request(spec, overrides, resume) -> _Request:
    """The spec and overrides to train with; for ``--resume`` the run's own, and the extension asked for."""
    overrides = list(overrides or [])
    if resume is None:
        if spec is None:
            raise TrainError([Diagnostic(code="no-spec", message="give a spec file or --resume RUN")])
        return _Request(spec=spec, overrides=overrides)
    resume_dir = FsPath(resume)
    recorded = rundir.read_run(resume_dir)
    extend_to = _epochs_override(overrides)
    if recorded.get("status") == "completed":
        done = recorded.get("epochs")
        if extend_to is None:
            raise TrainError([Diagnostic(
                code="resume-error", file=str(resume_dir), message=f"the run in '{resume_dir}' already completed"
                + (f" ({_epochs(done)})" if isinstance(done, int) else ""),
                hint=f"extend it: graphspec train --resume {resume_dir} --epochs N (N more than "
                f"{done if isinstance(done, int) else 'the epochs it trained'}), or start a new run")])
        if isinstance(done, int) and extend_to <= done:
            raise TrainError([Diagnostic(
                code="resume-error", file=str(resume_dir),
                message=f"--epochs {extend_to} does not extend the run in '{resume_dir}': it completed {_epochs(done)}",
                hint=f"--epochs is the new total: give more than {done}")])
    if spec is None:
        spec = recorded.get("spec_path") or resume_dir / "spec.yaml"
    recorded_overrides = [(tuple(p), v) for p, v in recorded.get("overrides", [])]
    return _Request(spec=spec, overrides=recorded_overrides + overrides, resume_dir=resume_dir, recorded=recorded,
                    extend_to=extend_to)


def _backend() -> str:
    import keras

    return keras.backend.backend()


def _configure(settings: TrainSettings, checked: CheckedSpec):
    """The distribution strategy, determinism, seed and precision; refuses TensorFlow-only settings on
    another Keras backend. Returns the :class:`~graphspec.train.distribute.Distribution`."""
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        sink = DiagnosticSink(source=checked.loaded.source)
        for key, value, what in (("strategy", settings.strategy != "default", f"strategy: {settings.strategy} "
                                  "(a tf.distribute strategy)"),
                                 ("deterministic", settings.deterministic,
                                  "deterministic: true (TensorFlow's op determinism)")):
            if value:
                sink.error("needs-tensorflow", f"{what} needs the TensorFlow backend; Keras runs on '{backend}' "
                           f"(KERAS_BACKEND={os.environ.get('KERAS_BACKEND', backend)})", ("train", key),
                           "unset KERAS_BACKEND (or set it to tensorflow), or remove the setting")
        sink.raise_if_errors(TrainError)
    from graphspec.train.distribute import configure_cpu_devices, make_distribution

    if settings.strategy == "mirrored":
        configure_cpu_devices(settings.cpu_devices)
    distribution = make_distribution(settings.strategy, settings.cpu_devices)
    if settings.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(settings.seed)
    keras.mixed_precision.set_dtype_policy(settings.precision)
    return distribution


def _emit_in(distribution, checked: CheckedSpec, settings: TrainSettings):
    from graphspec.emit import emit

    sink = DiagnosticSink(source=checked.loaded.source)
    if checked.spec.compile is None or checked.spec.compile.loss is None:
        sink.error("no-loss", "training needs a loss: the spec has no 'compile: {loss: ...}'",
                   ("compile",) if checked.spec.compile is not None else (),
                   "add e.g. compile: {optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}")
        sink.raise_if_errors(TrainError)
    with distribution.scope():
        model = emit(checked)
    if settings.jit_compile != "auto":
        model.jit_compile = bool(settings.jit_compile) and not settings.deterministic
    return model


def _open(checked, io_, settings: TrainSettings, data, validation_data, need_targets=True):
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
    val_settings = settings.validation
    if validation_data is not None:
        validation = datalib.open_python(validation_data, io_, description="the validation data")
    elif val_settings is not None and val_settings.data is not None:
        validation = datalib.open_source(val_settings.data, checked, io_, ("train", "validation", "data"))
    elif val_settings is not None and val_settings.split is not None:
        try:
            examples, validation = datalib.split(examples, val_settings.split, settings.seed,
                                                 val_settings.shuffle_before_split)
        except TrainError as error:
            located = DiagnosticSink(source=checked.loaded.source)
            for d in error.diagnostics:
                located.error(d.code, d.message, ("train", "validation", "split"), d.hint)
            raise TrainError(located.sorted()) from None
    return examples, validation


def _directory(request: _Request, checked, settings, fingerprint, runs_root, run_name, writes: bool,
               held: list) -> tuple[rundir.RunDirectory | None, dict, dict]:
    """The run directory (created, or the resumed one, locked) and the checkpoint to resume from."""
    directory = None
    if request.resume_dir is not None and writes:
        directory = rundir.RunDirectory.reopen(request.resume_dir)
        held.append(directory)
    meta: dict = {}
    arrays: dict = {}
    if request.resume_dir is not None:
        _check_backend(request)
        meta, arrays = _check_resume(request.resume_dir, checked, settings, request.recorded, fingerprint,
                                     extending=request.extend_to is not None)
    if writes and directory is None:
        directory = rundir.RunDirectory.create(runs_root, checked.spec.name, run_name)
        held.append(directory)
    return directory, meta, arrays


def _check_backend(request: _Request) -> None:
    recorded = request.recorded.get("backend", "tensorflow")
    now = _backend()
    if recorded != now:
        raise TrainError([Diagnostic(
            code="resume-changed", file=str(request.resume_dir),
            message=f"the run in '{request.resume_dir}' was trained with the {recorded} backend; Keras now runs on {now}",
            hint=f"resume it with KERAS_BACKEND={recorded}, or start a new run")])


def _handle_signals(run: _Run, echo, previous_handlers: dict) -> None:
    """SIGINT/SIGTERM: stop at the end of the current batch (see ``Guard``); a second one acts at once."""

    def on_signal(signum, frame):
        name = signal.Signals(signum).name
        signal.signal(signum, previous_handlers.get(signum, signal.SIG_DFL))  # a second signal acts at once
        if run.final_phase:
            run.signal_in_final = signum
            echo(f"\n{name}: finishing the final save first")
            return
        run.signal_received = signum
        echo(f"\n{name}: stopping at the end of this batch; the last completed epoch is kept "
             f"({name} again to stop at once)")

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous_handlers[signum] = signal.signal(signum, on_signal)
        except ValueError:  # not the main thread
            break


def _write_header(run: _Run, request: _Request, examples, validation, distribution) -> None:
    from graphspec.canonical import canonical_json, graph_hash

    checked, settings, spec = run.checked, run.settings, request.spec
    run.directory.write_header(
        spec_text=checked.loaded.source.text, canonical_json=canonical_json(checked.graph), spec_hash=run.spec_hash,
        settings=settings.as_json(), info={
            "spec": checked.spec.name, "spec_path": str(FsPath(str(spec)).resolve())
            if not isinstance(spec, CheckedSpec) and spec is not None else None,
            "spec_hash": run.spec_hash, "graph_hash": graph_hash(checked), "model_hash": model_hash(checked),
            "settings_hash": settings_hash(settings), "seed": settings.seed, "overrides": [[list(p), v] for p, v in request.overrides],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv, "data": datalib.describe(examples),
            "validation": datalib.describe(validation) if validation is not None else None,
            "data_sha256": run.data_fingerprint, "strategy": distribution.kind, "replicas": distribution.replicas,
            "backend": _backend()})


def _start(run: _Run, request: _Request, meta: dict, arrays: dict, distribution, extra_callbacks, echo) -> list:
    """The callbacks, the optimizer's variables, and the resumed state (or epoch 0's checkpoint)."""
    from graphspec.train.callbacks import make_callbacks

    model, settings, run_dir = run.model, run.settings, run.run_dir
    callbacks = make_callbacks(run)
    callbacks[-1:-1] = list(extra_callbacks or [])
    if model.optimizer is not None and not model.optimizer.built:
        with distribution.scope():  # every worker creates the optimizer's variables at the same point
            model.optimizer.build(model.trainable_variables)
    extension = {}
    if request.extend_to is not None and run.directory is not None:
        extension = _record_extension(run, request)
    if meta:
        with distribution.scope():
            restore_state(model, meta, arrays, str(request.resume_dir / STATE_FILE))
        run.progress = Progress.from_meta(meta)
        if request.extend_to is not None:
            run.progress.stopped_early = False  # extended: trained on (early stopping's counters continue)
        run.saved_epochs = first_epoch = run.progress.epochs
        run.restore_callbacks(meta.get("callbacks", {}), arrays)
        if run.directory is not None:
            run.directory.running(resumed_at_epoch=first_epoch, **extension)
        if run.progress.stopped_early:
            echo(f"resuming {run_dir}: training had stopped early after epoch {first_epoch}; finishing the run")
        elif request.extend_to is not None:
            span = (f"epoch {first_epoch + 1}" if first_epoch + 1 == settings.epochs else
                    f"epochs {first_epoch + 1} to {settings.epochs}")
            echo(f"extending {run_dir}: {span}")
        else:
            echo(f"resuming {run_dir} at epoch {first_epoch + 1} of {settings.epochs}")
    elif run.directory is not None:
        if request.resume_dir is not None:
            run.directory.running(resumed_at_epoch=0, **extension)
            echo(f"resuming {run_dir}: it holds no checkpoint (it stopped before its first epoch began); "
                 f"starting at epoch 1 of {settings.epochs}")
        run.save_checkpoint(model)  # epoch 0: a run stopped in its first epoch restarts from the same weights
        run.writer.wait()  # on disk before training starts (a full disk is reported before any epoch)
    return callbacks


def _record_extension(run: _Run, request: _Request) -> dict:
    """``--resume --epochs N``: the run's settings and run.json say N from now on (a later resume replays it)."""
    rundir.atomic_write_json(run.run_dir / "settings.json", run.settings.as_json())
    return {"overrides": [[list(p), v] for p, v in request.overrides], "settings_hash": settings_hash(run.settings),
            "extended_to": request.extend_to}


def _datasets(run: _Run, examples, validation, io_, distribution):
    settings = run.settings
    global_batch = settings.batch_size * distribution.replicas
    val_ds = datalib.eval_dataset(validation, io_, batch_size=global_batch) if validation is not None else None
    if distribution.kind == "default" and _backend() != "tensorflow":
        # JAX: in-memory arrays as the pipeline's batches in NumPy, from Python; the tf.data pipeline (and
        # its copies of the arrays) is not built then
        in_memory = datalib.numpy_training_batches(
            examples, io_, batch_size=global_batch, seed=settings.seed, shuffle=settings.shuffle,
            first_epoch=run.progress.epochs, epochs=settings.epochs, steps=settings.steps_per_epoch)
        if in_memory is not None:
            batches, steps = in_memory
            return batches, val_ds, steps
    train_ds, steps = datalib.training_dataset(
        examples, io_, batch_size=global_batch, seed=settings.seed, shuffle=settings.shuffle,
        first_epoch=run.progress.epochs, epochs=settings.epochs, shuffle_buffer=settings.shuffle_buffer,
        steps=settings.steps_per_epoch, drop_remainder=distribution.kind == "multi-worker")
    if distribution.kind != "default":
        from graphspec.train.distribute import distribute_options, prepare_model

        prepare_model(run.model, distribution, next(iter(datalib.eval_dataset(examples, io_, batch_size=global_batch))))
        train_ds = distribute_options(train_ds)
        val_ds = distribute_options(val_ds) if val_ds is not None else None
    elif _backend() != "tensorflow":
        train_ds = datalib.for_keras(train_ds, global_batch)
    return train_ds, val_ds, steps


def _progress(verbose: int) -> tuple[int, list]:
    """Keras' ``verbose`` and the extra callbacks that show progress: the progress bar on a terminal;
    one plain line per epoch when stdout is a file or a pipe (or ``verbose: 2``)."""
    if verbose == 0:
        return 0, []
    if verbose == 1 and sys.stdout.isatty():
        return 1, []
    from graphspec.train.callbacks import EpochLine

    return 0, [EpochLine()]


def _fit(run: _Run, train_ds, val_ds, steps, callbacks, resumed: bool) -> None:
    settings, model = run.settings, run.model
    if run.signal_received is not None:
        return
    first_epoch, epochs = run.progress.epochs, settings.epochs
    if first_epoch < epochs and not run.progress.stopped_early:
        verbose, shown = _progress(settings.verbose)
        with datalib.data_errors("training stopped on bad data"):
            try:
                model.fit(train_ds, epochs=epochs, initial_epoch=first_epoch, steps_per_epoch=steps,
                          validation_data=val_ds, validation_freq=settings.validation.frequency if settings.validation else 1,
                          callbacks=callbacks[:-1] + shown + callbacks[-1:], verbose=verbose, shuffle=False)
            except _StopNow:
                pass  # a signal: the partial epoch is dropped (see _stop_if_abnormal)
    elif resumed:
        run.end_without_fit()


def _stop_if_abnormal(run: _Run) -> None:
    """A NaN loss (an error) or a signal (TrainInterrupted): run.json says so; the last checkpoint is kept."""
    run_dir = run.run_dir
    if run_dir is not None:
        rundir.write_history(run_dir, run.progress.history)
    if run.nan_at is not None:
        epoch, batch, value = run.nan_at
        if run.directory is not None:
            run.directory.failed(f"loss {value} at epoch {epoch + 1}, batch {batch + 1}")
        where = f" in {run_dir / STATE_FILE}" if run_dir is not None else ""
        raise TrainError([Diagnostic(
            code="nan-loss", message=f"the loss became {value} at epoch {epoch + 1}, batch {batch + 1}; training "
            f"stopped", hint=f"the last good state (end of epoch {run.progress.epochs}) is kept{where}; lower the "
            "learning rate, check the data for NaN/Inf, or clip gradients (compile.optimizer.clipnorm)")])
    if run.signal_received is not None:
        if run.best_model is not None:
            run.best_model.flush()  # best.keras as of the last completed epoch
        if run.directory is not None:
            run.directory.interrupted(run.epoch + 1)
        name = signal.Signals(run.signal_received).name
        total = run.settings.epochs
        if run.progress.epochs > run.epoch:  # the signal came after an epoch's end, before the next began
            during = f"after epoch {run.progress.epochs} of {total}"
        else:
            during = f"in epoch {run.epoch + 1} of {total} (after batch {run.batch + 1}; that partial epoch is dropped)"
        saved = (f"epochs 1-{run.progress.epochs} are saved" if run.progress.epochs > 1 else
                 "epoch 1 is saved" if run.progress.epochs == 1 else "no epoch was completed; the initial state is saved")
        raise TrainInterrupted([Diagnostic(
            code="interrupted", message=f"{name} {during}: stopped; {saved}"
            + (f" in {run_dir / STATE_FILE}" if run_dir is not None else " (nothing written: no run directory)"),
            hint=f"continue with: graphspec train --resume {run_dir}" if run_dir is not None else None)],
            run.signal_received, run_dir)


def _final_metrics(run: _Run, val_ds) -> tuple[dict, int | None]:
    """The metrics of the epoch whose weights the model holds, and that epoch (1-based)."""
    epoch = run.final_epoch()
    rows = {int(row["epoch"]): row for row in run.progress.history}
    row = dict(rows.get(epoch, run.progress.history[-1] if run.progress.history else {}))
    row.pop("epoch", None)
    if val_ds is not None and run.progress.history and not any(k.startswith("val_") for k in row):
        # Not validated in that epoch (validation.frequency > 1): the held weights are evaluated now.
        with datalib.data_errors("the final validation stopped on bad data"):
            final = run.model.evaluate(val_ds, verbose=0, return_dict=True)
        row.update({f"val_{k}": float(v) for k, v in final.items()})
    return row, epoch


def _finish(run: _Run, val_ds, echo) -> RunResult:
    """The final files (model.keras, best.keras, history, metrics.json, curves.png), then 'completed'."""
    checked, run_dir = run.checked, run.run_dir
    metrics, final_epoch = _final_metrics(run, val_ds)
    last = dict(run.progress.history[-1]) if run.progress.history else {}
    last.pop("epoch", None)
    if run_dir is not None:
        from graphspec.emit import save_artifact

        save_artifact(checked, run.model, run_dir / "model.keras")
        rundir.fix_mode(run_dir / "model.keras")
        if run.best_model is not None and not (run_dir / "best.keras").exists():
            save_artifact(checked, run.model, run_dir / "best.keras")
            rundir.fix_mode(run_dir / "best.keras")
        rundir.write_history(run_dir, run.progress.history)
        best = run.best_model
        rundir.atomic_write_json(run_dir / "metrics.json", {
            "epochs": run.progress.epochs, "final_epoch": final_epoch, "final": metrics, "last_epoch": last,
            "best": {"monitor": best.monitor, "value": best.best,
                     "epoch": None if best.best_epoch is None else best.best_epoch + 1} if best is not None else None})
        curves_note: dict = {}
        try:
            if rundir.plot_curves(run.progress.history, run_dir / "curves.png", title=checked.spec.name,
                                  best_epoch=None if best is None or best.best_epoch is None else best.best_epoch + 1,
                                  monitor=None if best is None else best.monitor) is None:
                from graphspec.train.curves import MISSING_NOTE

                echo(f"note: {MISSING_NOTE}")
                curves_note = {"curves": MISSING_NOTE}
        except Exception as exc:  # the plot is a convenience: never fail a finished run over it
            echo(f"warning: could not draw curves.png: {exc}")
        run.directory.completed(run.progress.epochs, final_epoch=final_epoch, **curves_note)
    if run.signal_in_final is not None:
        raise TrainInterrupted([Diagnostic(
            code="interrupted", message=f"{signal.Signals(run.signal_in_final).name} during the final save: the save "
            f"was finished first; the run completed ({run.progress.epochs} epochs)",
            hint=f"its results are in {run_dir}" if run_dir is not None else None)], run.signal_in_final, run_dir)
    return RunResult(run_dir=run_dir, model=run.model, history=run.progress.history, metrics=metrics, settings=run.settings.as_json(),
                     spec_hash=run.spec_hash, epochs_run=run.epochs_run, final_epoch=final_epoch, backend=_backend())


# -- failures -------------------------------------------------------------------------------------

def _stopped_at_once(run: _Run) -> TrainInterrupted:
    """A second SIGINT (KeyboardInterrupt) stopped the run at once: every write is atomic, so the
    last checkpoint on disk is whole, and the run is resumable; run.json says interrupted."""
    run_dir = run.run_dir
    saved = saved_epoch(run_dir / STATE_FILE) if run_dir is not None else None
    if run.directory is not None:
        run.directory.interrupted(run.epoch + 1)
    what = (f"the checkpoint of epoch {saved} is kept" if saved else
            "the initial checkpoint is kept" if saved == 0 else "nothing was saved")
    return TrainInterrupted([Diagnostic(
        code="interrupted", message=f"SIGINT again: stopped at once; {what}",
        hint=f"continue with: graphspec train --resume {run_dir}" if run_dir is not None and saved is not None
        else None)], signal.SIGINT, run_dir)


def _failed(run: _Run, error: GraphspecError, echo) -> GraphspecError:
    """run.json says failed; a failed write (a full disk) says what is kept and how to go on."""
    error = _write_failed(error, run, run.run_dir)
    directory = run.directory
    if directory is not None:
        recorded = directory.failed(str(error.diagnostics[0].message)[:500] if error.diagnostics else None)
        if not recorded and any(d.code == "cannot-write" for d in error.diagnostics):
            echo(f"warning: could not record the failure in {directory.path / 'run.json'} (it may still say 'running')")
    return error


def _write_failed(error: GraphspecError, run: _Run, run_dir: FsPath | None) -> GraphspecError:
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
