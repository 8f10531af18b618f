"""graphspec train in-process: the run directory, reproducibility, data errors, NaN."""

from __future__ import annotations

import json
import time
import zipfile

import numpy as np
import pytest

from graphspec.errors import ResolveError, TrainError
from graphspec.train.loop import read_state, train
from trainhelpers import TINY_SPEC, tiny_arrays, weights_of


def test_run_directory_holds_every_artifact(project):
    result = train(project / "tiny.yaml", runs_root=project / "runs", run_name="first")
    run = result.run_dir
    assert run == project / "runs" / "tiny" / "first"
    for name in ("run.json", "spec.yaml", "spec.json", "spec.sha256", "settings.json", "versions.json", "model.keras",
                 "best.keras", "checkpoint.npz", "history.json", "history.csv", "metrics.json", "curves.png"):
        assert (run / name).is_file(), name
    _assert_tensorboard_scalars_are_the_history(run / "logs", json.loads((run / "history.json").read_text()))
    assert not list(run.glob(".*tmp")), "no temporary files are left behind"
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["epochs"] == 3
    from graphspec.canonical import graph_hash
    from graphspec.pipeline import check_file

    assert info["graph_hash"] == graph_hash(check_file(project / "tiny.yaml"))
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history[0])
    assert (run / "history.csv").read_text().splitlines()[0].startswith("epoch,")
    settings = json.loads((run / "settings.json").read_text())
    assert settings["seed"] == 1 and settings["batch_size"] == 16
    versions = json.loads((run / "versions.json").read_text())
    assert {"python", "tensorflow", "keras", "graphspec"} <= set(versions)
    metrics = json.loads((run / "metrics.json").read_text())
    assert "val_accuracy" in metrics["final"]
    assert (run / "curves.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    # the final model is a plain Keras model carrying the spec's hash
    with zipfile.ZipFile(run / "model.keras") as archive:
        meta = json.loads(archive.read("metadata.json"))
    assert meta["graphspec"]["spec_hash"] == (run / "spec.sha256").read_text().strip() == result.spec_hash
    import keras

    loaded = keras.saving.load_model(run / "model.keras")
    for a, b in zip(weights_of(loaded), weights_of(result.model)):
        np.testing.assert_array_equal(a, b)


def _assert_tensorboard_scalars_are_the_history(logs, history):
    """TensorBoard's scalars, read back with TensorFlow's own event reader: a file per split that starts with
    the format's version, then each epoch's metrics as ``tf.summary.scalar`` writes them (a float tensor with
    the scalars plugin's metadata), tagged ``epoch_<metric>``, at step epoch - 1."""
    import tensorflow as tf

    read: dict[tuple[str, str, int], float] = {}
    for split in ("train", "validation"):
        files = sorted((logs / split).glob("events.out.tfevents.*"))
        assert len(files) == 1, split
        events = list(tf.compat.v1.train.summary_iterator(str(files[0])))
        assert events[0].file_version == "brain.Event:2"
        for event in events[1:]:
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                assert tf.make_ndarray(value.tensor).dtype == np.float32 and tf.make_ndarray(value.tensor).shape == ()
                read[(split, value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
    expected = {}
    for row in history:
        for key, number in row.items():
            if key in ("epoch", "learning_rate"):  # the history reads the rate from the optimizer; the scalars
                continue                              # are Keras' logs (which hold it only with ReduceLROnPlateau)
            split = "validation" if key.startswith("val_") else "train"
            expected[(split, "epoch_" + key.removeprefix("val_"), row["epoch"] - 1)] = pytest.approx(number, rel=1e-6)
    assert read == expected


def test_two_runs_with_the_same_seed_give_bit_identical_weights(project):
    first = train(project / "tiny.yaml", write_run_dir=False, overrides=[(("train", "deterministic"), True)])
    second = train(project / "tiny.yaml", write_run_dir=False, overrides=[(("train", "deterministic"), True)])
    for a, b in zip(weights_of(first.model), weights_of(second.model)):
        np.testing.assert_array_equal(a, b)
    other = train(project / "tiny.yaml", write_run_dir=False, overrides=[(("train", "seed"), 2)])
    assert any(not np.array_equal(a, b) for a, b in zip(weights_of(first.model), weights_of(other.model)))


def test_python_api_takes_arrays_and_datasets(project):
    import tensorflow as tf

    arrays = tiny_arrays(64)
    result = train(project / "tiny.yaml", data=arrays, write_run_dir=False, overrides=[(("train", "epochs"), 1)])
    assert len(result.history) == 1
    dataset = tf.data.Dataset.from_tensor_slices((arrays["x"], arrays["y"]))
    result = train(project / "tiny.yaml", data=dataset, validation_data=dataset.batch(8), write_run_dir=False,
                   overrides=[(("train", "epochs"), 1), (("train", "validation"), None)])
    assert "val_loss" in result.history[0]
    with pytest.raises(TrainError) as info:
        train(project / "tiny.yaml", data={"x": arrays["x"][:, :3], "y": arrays["y"]}, write_run_dir=False)
    assert "input 'x'" in str(info.value) and "(4,)" in str(info.value) and "(3,)" in str(info.value)


def _error(project, text, **kwargs) -> TrainError | ResolveError:
    path = project / "variant.yaml"
    path.write_text(text)
    # An escaping data path is already refused by the resolve stage (as `graphspec check` does).
    with pytest.raises((TrainError, ResolveError)) as info:
        train(path, runs_root=project / "runs", **kwargs)
    assert not (project / "runs").exists(), "nothing is written when the data is wrong"
    return info.value


def test_shape_mismatch_names_input_expected_and_received(project):
    np.savez(project / "wide.npz", x=np.zeros((20, 5), np.float32), y=np.zeros(20, np.int64))
    error = _error(project, TINY_SPEC.replace("data.npz", "wide.npz"))
    (diagnostic,) = error.diagnostics
    assert diagnostic.code == "data-shape-mismatch"
    assert "input 'x'" in diagnostic.message and "(4,)" in diagnostic.message and "(5,)" in diagnostic.message
    assert diagnostic.line == TINY_SPEC.splitlines().index("  data: {npz: data.npz}") + 1


def test_target_shape_mismatch(project):
    np.savez(project / "onehot.npz", x=np.zeros((20, 4), np.float32), y=np.zeros((20, 7), np.float32))
    error = _error(project, TINY_SPEC.replace("data.npz", "onehot.npz"))
    assert "output 'y'" in str(error) and "(7,)" in str(error)


def test_missing_array_suggests_a_mapping(project):
    np.savez(project / "renamed.npz", features=np.zeros((20, 4), np.float32), y=np.zeros(20, np.int64))
    error = _error(project, TINY_SPEC.replace("data.npz", "renamed.npz"))
    (diagnostic,) = error.diagnostics
    assert diagnostic.code == "missing-data" and "input 'x'" in diagnostic.message and "features" in diagnostic.message
    ok = project / "mapped.yaml"
    ok.write_text(TINY_SPEC.replace("{npz: data.npz}", "{npz: renamed.npz, map: {x: features}}"))
    assert train(ok, write_run_dir=False, overrides=[(("train", "epochs"), 1)]).history


@pytest.mark.parametrize("path,code", [("missing.npz", "file-not-found"), ("../data.npz", "path-outside-project"),
                                       ("/etc/passwd", "path-outside-project"), ("bad.npz", "bad-data"),
                                       ("empty.npz", "empty-data")])
def test_bad_data_files(project, path, code):
    (project / "bad.npz").write_text("not a zip")
    np.savez(project / "empty.npz", x=np.zeros((0, 4), np.float32), y=np.zeros(0, np.int64))
    error = _error(project, TINY_SPEC.replace("data.npz", path))
    assert error.diagnostics[0].code == code, str(error)


def test_dtype_mismatch(project):
    np.savez(project / "text.npz", x=np.array([["a"] * 4] * 10), y=np.zeros(10, np.int64))
    error = _error(project, TINY_SPEC.replace("data.npz", "text.npz"))
    assert error.diagnostics[0].code == "data-dtype-mismatch"


def test_nan_loss_stops_with_an_error_and_keeps_the_last_good_checkpoint(project):
    arrays = tiny_arrays()
    target = arrays["y"].astype(np.float32).reshape(-1, 1)
    # Finite data (NaN in the data is refused before training) whose squared error overflows float32.
    np.savez(project / "nan.npz", x=arrays["x"] * np.float32(1e20), y=target)
    path = project / "nan.yaml"
    path.write_text(TINY_SPEC.replace("data.npz", "nan.npz").replace("units: 3, activation: softmax", "units: 1")
                    .replace("sparse_categorical_crossentropy", "mse").replace("metrics: [accuracy]", "metrics: [mae]"))
    with pytest.raises(TrainError) as info:
        train(path, runs_root=project / "runs", run_name="n")
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "nan-loss" and "epoch 1" in diagnostic.message
    run = project / "runs" / "tiny" / "n"
    meta, arrays = read_state(run / "checkpoint.npz")
    assert meta["epoch"] == 0
    assert all(np.isfinite(v).all() for k, v in arrays.items() if v.dtype.kind == "f")
    assert json.loads((run / "run.json").read_text())["status"] == "failed"
    assert not (run / "model.keras").exists()


@pytest.mark.parametrize("first_bad, batch", [(40, 3), (144, 10)], ids=["part-way", "in-the-last-batch"])
def test_a_nan_loss_part_way_through_an_epoch_is_not_validated(project, monkeypatch, first_bad, batch):
    """The epoch a NaN stops is dropped, as an interrupted one is: Keras must not go on to validate it
    (time spent on NaN weights, and Keras' own epoch-end callbacks fed NaN metrics)."""
    import keras

    arrays = tiny_arrays()
    x = arrays["x"].copy()
    # 150 training examples in 10 batches of 16 (the last of 6): finite up to the batch that overflows.
    x[first_bad:] *= np.float32(1e20)
    np.savez(project / "nan.npz", x=x, y=arrays["y"].astype(np.float32).reshape(-1, 1))
    path = project / "nan.yaml"
    path.write_text(TINY_SPEC.replace("data.npz", "nan.npz").replace("units: 3, activation: softmax", "units: 1")
                    .replace("sparse_categorical_crossentropy", "mse").replace("metrics: [accuracy]", "metrics: [mae]")
                    .replace("  seed: 1\n", "  seed: 1\n  shuffle: false\n")
                    .replace("{split: 0.25}", "{split: 0.25, shuffle_before_split: false}"))
    # The NaN batch's end seen late, as from Keras' callback thread on a busy machine (on TensorFlow Keras calls
    # batch ends synchronously; tests/train/test_jax_backend.py has the asynchronous case, on JAX).
    from graphspec.train.callbacks import Guard

    batch_end = Guard.on_train_batch_end

    def lagging(self, index, logs=None):
        if index == batch - 1:
            time.sleep(0.5)
        return batch_end(self, index, logs)

    monkeypatch.setattr(Guard, "on_train_batch_end", lagging)
    evaluated = []
    evaluate = keras.Model.evaluate

    def counted(self, *args, **kwargs):
        logs = evaluate(self, *args, **kwargs)
        evaluated.append(logs)  # a validation that ran to its end
        return logs

    monkeypatch.setattr(keras.Model, "evaluate", counted)
    with pytest.raises(TrainError) as info:
        train(path, runs_root=project / "runs", run_name="n")
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "nan-loss" and f"epoch 1, batch {batch};" in diagnostic.message, diagnostic.message
    assert evaluated == [], "the epoch the NaN stopped was validated"


def test_lr_schedule_precision_and_xla(project):
    schedule = "{type: ExponentialDecay, initial_learning_rate: 0.01, decay_steps: 1, decay_rate: 0.5}"
    result = train(project / "tiny.yaml", write_run_dir=False,
                   overrides=[(("train", "callbacks"), {"lr_schedule": {
                       "type": "ExponentialDecay", "initial_learning_rate": 0.01, "decay_steps": 1, "decay_rate": 0.5}}),
                              (("train", "jit_compile"), True)])
    assert [round(row["learning_rate"], 6) for row in result.history] == [0.01, 0.005, 0.0025], schedule
    mixed = train(project / "tiny.yaml", write_run_dir=False,
                  overrides=[(("train", "precision"), "mixed_bfloat16"), (("train", "epochs"), 1)])
    assert mixed.model.layers[1].dtype_policy.name == "mixed_bfloat16"
    assert np.isfinite(mixed.history[0]["loss"])
    plain = train(project / "tiny.yaml", write_run_dir=False, overrides=[(("train", "epochs"), 1)])
    assert plain.model.layers[1].dtype_policy.name == "float32"


def test_validation_split_too_large_is_located(project):
    path = project / "split.yaml"
    path.write_text(TINY_SPEC.replace("split: 0.25", "split: 0.999"))
    with pytest.raises(TrainError) as info:
        train(path, write_run_dir=False)
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "empty-data" and diagnostic.line == TINY_SPEC.splitlines().index(
        "  validation: {split: 0.25}") + 1


def test_tensorboard_scalars_run_no_tensorflow_op(project, monkeypatch):
    """The scalars are written without tf.summary: its eager ops and writer resource woke TensorFlow's thread
    pools at every epoch, ~25 ms of CPU an epoch on JAX, a tenth of a small model's epoch (docs/benchmarks.md)."""
    import tensorflow as tf

    def refused(*args, **kwargs):
        raise AssertionError("tf.summary used for the epoch scalars")

    for name in ("create_file_writer", "write", "scalar"):
        monkeypatch.setattr(tf.summary, name, refused)
    result = train(project / "tiny.yaml", runs_root=project / "runs", run_name="no-summary-ops")
    assert sorted(p.parent.name for p in (result.run_dir / "logs").rglob("events.out.tfevents.*")) == ["train", "validation"]


def test_tensorboard_files_are_closed_when_training_fails(project):
    """Keras calls on_train_end only when fit returns: a run that fails in epoch 3 (here a callback's
    error) still closes its event files, with epochs 1 and 2 in them, though the caller keeps the
    exception (and with it the callbacks) alive, as a notebook or a test does (found in review)."""
    import os

    import keras
    import tensorflow as tf

    class Fails(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("a user callback failed")

    with pytest.raises(RuntimeError) as kept:
        train(project / "tiny.yaml", runs_root=project / "runs", run_name="fails", callbacks=[Fails()],
              handle_signals=False)
    logs = project / "runs" / "tiny" / "fails" / "logs"
    still_open = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                  if "tfevents" in os.path.realpath(f"/proc/self/fd/{fd}")]
    assert still_open == []
    for split in ("train", "validation"):
        (events,) = (logs / split).glob("events.out.tfevents.*")
        steps = sorted({event.step for event in tf.compat.v1.train.summary_iterator(str(events)) if event.summary.value})
        assert steps == [0, 1], split
    assert kept.value is not None
