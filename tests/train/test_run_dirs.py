"""Run directories that can always be resumed or reused: a full disk, a kill before the first
checkpoint, two trains into one folder, a signal during the final save, leftover temporary files,
damaged settings/spec files for evaluate and predict, and best.keras' direction (Keras' own rule)."""

from __future__ import annotations

import errno
import json
import signal

import numpy as np
import pytest

import graphspec.files
from graphspec.errors import GraphspecError, TrainError
from graphspec.train import rundir
from graphspec.train.evaluate import evaluate
from graphspec.train.loop import TrainInterrupted, read_state, train
from graphspec.train.predict import predict
from trainhelpers import TINY_SPEC, weights_of

REGRESSION = TINY_SPEC.replace("units: 3, activation: softmax", "units: 1").replace(
    "sparse_categorical_crossentropy", "mse")


def _full_disk_at(monkeypatch, name: str, nth: int = 1) -> dict:
    """Make the nth atomic write of the run file ``name`` fail as a full disk does (ENOSPC while writing)."""
    seen = {"count": 0}
    real_open = open

    def fake_open(path, mode="r", *args, **kwargs):
        base = str(path).rsplit("/", 1)[-1]
        if "w" in mode and base.startswith(f".{name}."):
            seen["count"] += 1
            if seen["count"] == nth:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(graphspec.files, "open", fake_open, raising=False)
    return seen


def _no_temp_files(run) -> None:
    assert not [p.name for p in run.iterdir() if p.name.startswith(".") and p.name != ".lock"], \
        "temporary files left behind"


class _OtherTrain:
    """Another process training into ``run``: it holds the run's lock (an flock on ``<run>/.lock``)."""

    def __init__(self, run):
        import fcntl

        self.handle = open(run / ".lock", "a+")
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self):
        self.handle.close()


# -- item 4: best.keras' direction ------------------------------------------------------------

@pytest.mark.parametrize("metric", ["mae", "mse", "mape"])
def test_best_model_minimises_error_metrics_as_keras_does(project, metric):
    spec = project / "reg.yaml"
    spec.write_text(REGRESSION.replace("metrics: [accuracy]", f"metrics: [{metric}]")
                    + f"  callbacks: {{best_model: {{monitor: val_{metric}}}}}\n")
    result = train(spec, runs_root=project / "runs", run_name="r", overrides=[(("train", "epochs"), 4)])
    values = [row[f"val_{metric}"] for row in result.history]
    assert len(set(values)) > 1
    best = json.loads((result.run_dir / "metrics.json").read_text())["best"]
    assert best["epoch"] == int(np.argmin(values)) + 1 and best["value"] == min(values)


def test_monitor_direction_is_keras_own_also_per_output():
    import keras

    from graphspec.train.loop import monitor_direction

    x = keras.Input((4,))
    model = keras.Model(x, {"a": keras.layers.Dense(1, name="a")(x),
                            "b": keras.layers.Dense(2, activation="softmax", name="b")(x)})
    model.compile("adam", loss={"a": "mse", "b": "sparse_categorical_crossentropy"},
                  metrics={"a": ["mae", "mape"], "b": ["accuracy"]})
    data = np.zeros((4, 4), np.float32)
    model.fit(data, {"a": np.zeros((4, 1)), "b": np.zeros(4)}, epochs=1, verbose=0)
    assert [monitor_direction(model, m) for m in ("val_loss", "a_mae", "val_a_mape", "b_accuracy", "val_b_loss")] \
        == ["min", "min", "min", "max", "min"]
    assert monitor_direction(model, "a_mae", "max") == "max"
    with pytest.raises(TrainError) as info:
        monitor_direction(model, "val_nothing")
    assert info.value.diagnostics[0].code == "unknown-direction" and "mode" in info.value.diagnostics[0].hint


# -- item 5: full disk ------------------------------------------------------------------------

def test_full_disk_during_training_is_a_named_error_and_resumes(project, monkeypatch):
    _full_disk_at(monkeypatch, "checkpoint.npz", nth=3)  # epoch 0's, epoch 1's, then epoch 2's fails
    with pytest.raises(GraphspecError) as info:
        train(project / "tiny.yaml", runs_root=project / "runs", run_name="full")
    (diagnostic,) = info.value.diagnostics
    run = project / "runs" / "tiny" / "full"
    assert diagnostic.code == "cannot-write" and "No space left" in diagnostic.message
    assert f"graphspec train --resume {run}" in diagnostic.hint and "epoch 1" in diagnostic.hint
    assert json.loads((run / "run.json").read_text())["status"] == "failed"
    assert read_state(run / "checkpoint.npz")[0]["epoch"] == 1
    _no_temp_files(run)
    monkeypatch.undo()
    result = train(resume=run)
    assert result.epochs_run == [1, 2] and [row["epoch"] for row in result.history] == [1, 2, 3]


def test_full_disk_before_the_first_checkpoint_leaves_a_reusable_folder(project, monkeypatch):
    _full_disk_at(monkeypatch, "settings.json")
    with pytest.raises(GraphspecError) as info:
        train(project / "tiny.yaml", runs_root=project / "runs", run_name="early")
    assert info.value.diagnostics[0].code == "cannot-write"
    assert "--name early" in info.value.diagnostics[0].hint and "--resume" not in info.value.diagnostics[0].hint
    run = project / "runs" / "tiny" / "early"
    assert not (run / "checkpoint.npz").exists() and not (run / "run.json").exists()
    monkeypatch.undo()
    with pytest.raises(TrainError) as refused:  # --resume tells the truth: nothing to resume, reuse the name
        train(resume=run)
    assert refused.value.diagnostics[0].code == "not-a-run" and "--name early" in refused.value.diagnostics[0].hint
    result = train(project / "tiny.yaml", runs_root=project / "runs", run_name="early")  # --name reuses it
    assert result.run_dir == run and len(result.history) == 3
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


def test_full_disk_in_the_final_save_after_early_stopping_resumes_without_training(project, monkeypatch):
    spec = project / "es.yaml"
    spec.write_text(TINY_SPEC.replace("epochs: 3", "epochs: 6").replace("  verbose: 0\n", "  verbose: 0\n  deterministic: true\n")
                    + "  callbacks: {early_stopping: {monitor: val_loss, patience: 1, min_delta: 5, "
                    "restore_best_weights: true}}\n")
    full = train(spec, runs_root=project / "runs", run_name="whole")
    assert len(full.history) == 2, "early stopping fired after epoch 2"
    _full_disk_at(monkeypatch, "metrics.json")
    with pytest.raises(GraphspecError) as info:
        train(spec, runs_root=project / "runs", run_name="cut")
    run = project / "runs" / "tiny" / "cut"
    assert info.value.diagnostics[0].code == "cannot-write" and "--resume" in info.value.diagnostics[0].hint
    assert json.loads((run / "run.json").read_text())["status"] == "failed"
    monkeypatch.undo()
    resumed = train(resume=run)
    assert resumed.epochs_run == [], "early stopping had ended the run: nothing more is trained"
    assert resumed.history == full.history
    for a, b in zip(weights_of(full.model), weights_of(resumed.model)):  # the best epoch's weights, restored
        np.testing.assert_array_equal(a, b)
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


# -- item 5: kill before the first checkpoint, reuse, locks, temp files -------------------------

def test_resume_of_a_run_without_checkpoint_starts_it_over(project):
    done = train(project / "tiny.yaml", runs_root=project / "runs", run_name="ref",
                 overrides=[(("train", "deterministic"), True)])
    cut = train(project / "tiny.yaml", runs_root=project / "runs", run_name="cut",
                overrides=[(("train", "deterministic"), True)])
    run = cut.run_dir
    for name in ("checkpoint.npz", "model.keras", "best.keras", "history.json", "history.csv", "metrics.json"):
        (run / name).unlink()
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(info, status="running")))  # killed before epoch 1 began
    messages = []
    result = train(resume=run, echo=messages.append)
    assert "holds no checkpoint" in messages[0] and result.epochs_run == [0, 1, 2]
    for a, b in zip(weights_of(done.model), weights_of(result.model)):
        np.testing.assert_array_equal(a, b)


def test_run_exists_hint_fits_the_folder(project):
    train(project / "tiny.yaml", runs_root=project / "runs", run_name="done", overrides=[(("train", "epochs"), 1)])
    with pytest.raises(TrainError) as info:
        train(project / "tiny.yaml", runs_root=project / "runs", run_name="done")
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "run-exists" and "completed" in diagnostic.hint and "--resume" not in diagnostic.hint


def test_the_lock_probe_of_another_command_does_not_refuse_a_writer(tmp_path):
    """refuse_if_held() takes a shared lock for an instant; a writer's acquire() in that instant waits it out
    (found in review: it was refused as 'run-locked', naming whatever pid the file held)."""
    import fcntl
    import os
    import threading

    (tmp_path / rundir.LOCK_FILE).write_text("12345\n")
    probe = os.open(tmp_path / rundir.LOCK_FILE, os.O_RDONLY)
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)  # what a probe holds
    threading.Timer(0.03, os.close, (probe,)).start()
    lock = rundir.RunLock(tmp_path).acquire()
    try:
        assert (tmp_path / rundir.LOCK_FILE).read_text().strip() == str(os.getpid())
        with pytest.raises(TrainError) as info:
            rundir.RunLock(tmp_path).refuse_if_held()  # and a writer's lock is seen by the probe
        assert info.value.diagnostics[0].code == "run-locked" and f"pid {os.getpid()}" in info.value.diagnostics[0].message
    finally:
        lock.release()
    rundir.RunLock(tmp_path).refuse_if_held()  # released: nothing held


def test_a_second_train_into_a_locked_run_directory_is_refused(project):
    run = project / "runs" / "tiny" / "busy"
    run.mkdir(parents=True)
    other = _OtherTrain(run)
    try:
        with pytest.raises(TrainError) as info:
            train(project / "tiny.yaml", runs_root=project / "runs", run_name="busy")
        assert info.value.diagnostics[0].code == "run-locked"
        assert not (run / "run.json").exists(), "nothing written into the other run's folder"
    finally:
        other.release()
    result = train(project / "tiny.yaml", runs_root=project / "runs", run_name="busy",
                   overrides=[(("train", "epochs"), 1)])
    info = json.loads((run / "run.json").read_text())
    info["status"] = "interrupted"
    (run / "run.json").write_text(json.dumps(info))
    other = _OtherTrain(result.run_dir)
    try:
        with pytest.raises(TrainError) as resumed:
            train(resume=run)
        assert resumed.value.diagnostics[0].code == "run-locked"
    finally:
        other.release()


def test_resume_removes_temporary_files_of_interrupted_writes(project):
    result = train(project / "tiny.yaml", runs_root=project / "runs", run_name="t", overrides=[(("train", "epochs"), 1)])
    run = result.run_dir
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(info, status="interrupted")))
    for name in (".checkpoint.npz.k3j9x2_a.tmp", ".model.keras.abcdefgh.keras", ".history.json.zz.tmp"):
        (run / name).write_bytes(b"half a file")
    (run / "notes.tmp").write_text("mine")  # not graphspec's: kept
    train(resume=run)
    _no_temp_files(run)
    assert (run / "notes.tmp").exists()


# -- item 5: a signal during the final save ----------------------------------------------------

def test_a_signal_during_the_final_save_finishes_it_and_exits_143(project, monkeypatch):
    import os

    import graphspec.emit

    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    real_save = graphspec.emit.save_artifact

    def save_then_signalled(checked, model, path):
        if path.name == "model.keras":
            os.kill(os.getpid(), signal.SIGTERM)
        return real_save(checked, model, path)

    monkeypatch.setattr(graphspec.emit, "save_artifact", save_then_signalled)
    try:
        with pytest.raises(TrainInterrupted) as info:
            train(project / "tiny.yaml", runs_root=project / "runs", run_name="s")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert info.value.exit_code == 143 and "final save" in info.value.diagnostics[0].message
    run = project / "runs" / "tiny" / "s"
    assert (run / "model.keras").is_file() and (run / "metrics.json").is_file()
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    _no_temp_files(run)


# -- item 5: changed data -----------------------------------------------------------------------

def test_resume_refuses_changed_training_data(project):
    result = train(project / "tiny.yaml", runs_root=project / "runs", run_name="d", overrides=[(("train", "epochs"), 1)])
    run = result.run_dir
    info = json.loads((run / "run.json").read_text())
    assert info["data_sha256"][0]["path"] == "data.npz" and info["data_sha256"][0]["sha256"].startswith("sha256:")
    (run / "run.json").write_text(json.dumps(dict(info, status="interrupted")))
    from trainhelpers import tiny_arrays

    np.savez(project / "data.npz", **tiny_arrays(seed=5))
    with pytest.raises(TrainError) as refused:
        train(resume=run)
    (diagnostic,) = refused.value.diagnostics
    assert diagnostic.code == "resume-data-changed" and "data.npz" in diagnostic.message
    assert "new run" in diagnostic.hint


def test_the_builtin_data_fingerprint_is_its_packaged_file():
    import hashlib
    from pathlib import Path

    from graphspec.pipeline import check_file
    from graphspec.train.data import DATA_DIR

    checked = check_file(Path(__file__).parents[2] / "specs" / "digits_cnn.yaml")
    (entry,) = rundir.data_fingerprint(checked)
    assert entry["path"] == "builtin:digits"
    assert entry["sha256"] == "sha256:" + hashlib.sha256((DATA_DIR / "digits.npz").read_bytes()).hexdigest()


# -- item 5: damaged run files for evaluate / predict ------------------------------------------

@pytest.fixture
def finished_run(project):
    return train(project / "tiny.yaml", runs_root=project / "runs", run_name="e",
                 overrides=[(("train", "epochs"), 1)]).run_dir


@pytest.mark.parametrize("damage", ["truncated settings", "deleted settings", "settings without seed",
                                    "binary spec"])
def test_evaluate_and_predict_name_damaged_run_files(project, finished_run, damage):
    run = finished_run
    if damage == "truncated settings":
        (run / "settings.json").write_text((run / "settings.json").read_text()[:40])
    elif damage == "deleted settings":
        (run / "settings.json").unlink()
    elif damage == "settings without seed":
        (run / "settings.json").write_text("[]")
    else:
        (run / "spec.yaml").write_bytes(b"\xff\xfe\x00bad")
    for call in (lambda: evaluate(run), lambda: predict(run, output=project / "p.npz")):
        with pytest.raises(TrainError) as info:
            call()
        (diagnostic,) = info.value.diagnostics
        assert diagnostic.code == "damaged-run", str(info.value)
        name = "spec.yaml" if damage == "binary spec" else "settings.json"
        assert diagnostic.file == str(run / name) and name in diagnostic.message
    assert not (project / "p.npz").exists()
    if damage != "binary spec":  # data named on the command line does not need the run's split
        assert evaluate(run, project / "data.npz")["examples"] == 200


def test_cli_full_disk_is_exit_code_2_with_the_way_forward(project, monkeypatch):
    from typer.testing import CliRunner

    from graphspec.cli import app

    _full_disk_at(monkeypatch, "checkpoint.npz", nth=2)
    result = CliRunner().invoke(app, ["train", str(project / "tiny.yaml"), "--runs", str(project / "runs"),
                                      "--name", "cli"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "error[cannot-write]" in result.output and "No space left on device" in result.output
    assert "graphspec train --resume" in result.output


def test_temp_files_of_killed_writers_are_removed_by_the_next_write(project, finished_run):
    """Outside run directories (build -o, evaluate -o, predict -o): a temporary file names its host and
    process (``.NAME.<host>-<pid>.XXXX``); the next write of the same target deletes those of dead processes."""
    import hashlib
    import os
    import socket
    import subprocess
    import sys

    from graphspec.files import atomic_write_json

    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = project / f".out.json.{host}-{gone.pid}.k2j4h5g6.tmp"
    live = project / f".out.json.{host}-{os.getpid()}.a1b2c3d4.tmp"  # a write in flight
    remote = project / f".out.json.ffffff-{gone.pid}.a1b2c3d4.tmp"  # another host's (a shared file system)
    for path in (stale, live, remote):
        path.write_text("half")
    atomic_write_json(project / "out.json", {"a": 1})
    assert not stale.exists() and live.exists() and remote.exists()
    scratch = project / f".predict-p.npz.{host}-{gone.pid}.x1y2z3w4"  # a killed predict's batches
    scratch.mkdir()
    (scratch / "y.raw").write_bytes(b"\0" * 64)
    predict(finished_run, project / "data.npz", output=project / "p.npz")
    assert not scratch.exists() and (project / "p.npz").is_file()
