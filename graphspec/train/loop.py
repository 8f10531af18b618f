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

import json
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

from graphspec.train.checkpoint import (
    STATE_FILE,
    _check_resume,
    model_hash,
    read_state,  # noqa: F401  (public: tests and tools read checkpoints through loop)
    restore_state,
    save_state,
    settings_hash,
)



class TrainInterrupted(TrainError):
    """SIGINT/SIGTERM stopped the run; its last completed epoch is saved and resumable."""

    def __init__(self, diagnostics, signum: int, run_dir: FsPath):
        super().__init__(diagnostics)
        self.signum = signum
        self.run_dir = run_dir

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


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
    settings: dict[str, Any]
    spec_hash: str
    epochs_run: list[int] = field(default_factory=list)
    """Epoch numbers (0-based) trained by this call (a resumed run skips the finished ones)."""


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
    from graphspec.train.callbacks import make_callbacks

    callbacks = make_callbacks(run)
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
