"""The JAX backend (KERAS_BACKEND=jax, the ``jax`` extra): training, resuming and extending, evaluation
and prediction work with the default strategy; the backend is recorded; settings that need TensorFlow
are refused with a located error; a run is not resumed on another backend. Keras fixes its backend at
import, so each case runs in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from graphspec.train.loop import train
from trainhelpers import TINY_SPEC

SCRIPT = r"""
import json, sys
import numpy as np
import keras
from graphspec.errors import TrainError
from graphspec.train import evaluate, predict, train

out = {"keras_backend": keras.backend.backend()}
short = train("tiny.yaml", runs_root="runs", run_name="jax", overrides=[(("train", "epochs"), 2)])
out["run_json_backend"] = json.load(open(short.run_dir / "run.json"))["backend"]
out["versions"] = json.load(open(short.run_dir / "versions.json"))
out["final_epoch"] = short.final_epoch
extended = train(resume=short.run_dir, overrides=[(("train", "epochs"), 3)])
whole = train("tiny.yaml", write_run_dir=False)
out["extended_equals_whole"] = all(np.array_equal(a, b) for a, b in zip(extended.model.get_weights(),
                                                                          whole.model.get_weights()))
out["history"] = [row["epoch"] for row in extended.history]
out["evaluate"] = evaluate(short.run_dir)["metrics"]
out["predict"] = predict(short.run_dir, "data.npz", "out.npz")["arrays"]
with np.load("out.npz") as arrays:
    out["matches_model"] = bool(np.allclose(arrays["y"], extended.model.predict(np.load("data.npz")["x"], verbose=0),
                                            rtol=1e-5, atol=1e-6))
for name, overrides in (("deterministic", [(("train", "deterministic"), True)]),
                        ("mirrored", [(("train", "strategy"), "mirrored")])):
    try:
        train("tiny.yaml", write_run_dir=False, overrides=overrides)
        out[name] = None
    except TrainError as error:
        d = error.diagnostics[0]
        out[name] = [d.code, d.message, list(d.path)]
try:
    train(resume=sys.argv[1])
    out["tf_run"] = None
except TrainError as error:
    out["tf_run"] = [error.diagnostics[0].code, error.diagnostics[0].message]
from graphspec.pipeline import check_file
from graphspec.train import data as datalib
from graphspec.train.loop import _configure, _emit_in, _open
from graphspec.train.settings import train_settings

checked = check_file("tiny.yaml")
settings = train_settings(checked)
model = _emit_in(_configure(settings, checked), checked, settings)
io_ = datalib.model_io(checked, model)
examples, _ = _open(checked, io_, settings, None, None)
dataset, steps = datalib.training_dataset(examples, io_, batch_size=16, seed=1, shuffle=True, first_epoch=0, epochs=2,
                                          shuffle_buffer=100, steps=None)
direct = [tuple(t.numpy() for t in batch) for batch in dataset]
chunked = datalib.for_keras(dataset, 16)
out["chunked_is_a_generator"] = not hasattr(chunked, "element_spec")
chunked = list(chunked)
out["chunked_sizes"] = [len(batch[0]) for batch in chunked]
out["chunked_same"] = len(direct) == len(chunked) and all(
    a.dtype == b.dtype and np.array_equal(a, b) for d, c in zip(direct, chunked) for a, b in zip(d, c))
# A NaN in the epoch's last batch, with Keras' callback thread behind (async on JAX): the epoch is not validated.
import time
from graphspec.train.callbacks import Guard

batch_end = Guard.on_train_batch_end
def lagging(self, index, logs=None):
    if index == 9:
        time.sleep(0.5)
    return batch_end(self, index, logs)
Guard.on_train_batch_end = lagging
x = np.load("data.npz")["x"].copy()
x[144:] *= np.float32(1e20)
np.savez("nan.npz", x=x, y=np.load("data.npz")["y"].astype(np.float32).reshape(-1, 1))
open("nan.yaml", "w").write(open("tiny.yaml").read().replace("data.npz", "nan.npz")
                            .replace("units: 3, activation: softmax", "units: 1")
                            .replace("sparse_categorical_crossentropy", "mse").replace("metrics: [accuracy]", "metrics: [mae]")
                            .replace("  seed: 1\n", "  seed: 1\n  shuffle: false\n")
                            .replace("{split: 0.25}", "{split: 0.25, shuffle_before_split: false}"))
validated = []
evaluate_ = keras.Model.evaluate
def counted(self, *args, **kwargs):
    logs = evaluate_(self, *args, **kwargs)
    validated.append(1)
    return logs
keras.Model.evaluate = counted
try:
    train("nan.yaml", write_run_dir=False)
    out["nan"] = None
except TrainError as error:
    out["nan"] = [error.diagnostics[0].code, error.diagnostics[0].message, len(validated)]
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow
def test_train_resume_extend_evaluate_and_predict_on_jax(project):
    tf_run = train(project / "tiny.yaml", runs_root=project / "runs", run_name="tf", overrides=[(("train", "epochs"), 1)])
    info = json.loads((tf_run.run_dir / "run.json").read_text())
    assert info["backend"] == "tensorflow"
    (tf_run.run_dir / "run.json").write_text(json.dumps(dict(info, status="interrupted")))
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tf_run.run_dir)], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.split("RESULT", 1)[1])
    assert out["keras_backend"] == out["run_json_backend"] == out["versions"]["keras_backend"] == "jax"
    assert "jax" in out["versions"] and "jaxlib" in out["versions"]
    assert out["final_epoch"] == 2
    assert out["extended_equals_whole"] and out["history"] == [1, 2, 3]
    assert set(out["evaluate"]) == {"loss", "accuracy"}
    assert out["predict"]["y"] == [200, 3] and out["matches_model"]
    assert out["deterministic"][0] == "needs-tensorflow" and out["deterministic"][2] == ["train", "deterministic"]
    assert "deterministic: true (TensorFlow's op determinism) needs the TensorFlow backend; Keras runs on 'jax'" \
        in out["deterministic"][1]
    assert out["mirrored"][0] == "needs-tensorflow" and out["mirrored"][2] == ["train", "strategy"]
    # the training batches reach Keras in chunks on JAX, each batch exactly the pipeline's (150 examples: 9 x 16 + 6)
    assert out["chunked_is_a_generator"] and out["chunked_same"]
    assert out["chunked_sizes"] == ([16] * 9 + [6]) * 2
    assert out["nan"][0] == "nan-loss" and "epoch 1, batch 10;" in out["nan"][1]
    assert out["nan"][2] == 0, "the epoch a NaN stopped was validated"
    assert out["tf_run"] == ["resume-changed", f"the run in '{tf_run.run_dir}' was trained with the tensorflow "
                             "backend; Keras now runs on jax"]


def test_on_tensorflow_keras_gets_the_pipeline_itself(project):
    from graphspec.train import data as datalib

    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((np.zeros((10, 4), np.float32), np.zeros(10))).batch(4)
    assert datalib.for_keras(dataset, 4) is dataset


def test_a_tensorflow_run_records_its_backend(project):
    result = train(project / "tiny.yaml", runs_root=project / "runs", run_name="b", overrides=[(("train", "epochs"), 1)])
    assert result.backend == "tensorflow"
    assert json.loads((result.run_dir / "run.json").read_text())["backend"] == "tensorflow"
    assert json.loads((result.run_dir / "versions.json").read_text())["keras_backend"] == "tensorflow"


def test_jax_extra_is_in_the_test_extra():
    import tomllib

    extras = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("jax[cpu]") for d in extras["jax"])
    assert any(d.startswith("jax[cpu]") for d in extras["test"])


# --- on JAX, in-memory arrays reach Keras as NumPy batches: exactly the tf.data pipeline's ---

def _two_in_two_out():
    from graphspec.train.contract import ModelIO, Tensor

    io_ = ModelIO(inputs={"a": Tensor((3,), "float32"), "b": Tensor((2,), "int32")},
                  outputs={"p": Tensor((1,), "float32"), "q": Tensor((4,), "float32")}, targets=["p", "q"],
                  sparse={"q"})
    rng = np.random.default_rng(3)
    n = 53
    data = {"a": rng.normal(size=(n, 3)),                        # float64: cast to the input's float32
            "b": rng.integers(-5, 5, size=(n, 2)),               # int64: cast to int32
            "p": rng.integers(0, 9, size=(n, 1)),                # int64 targets of a float output: cast
            "q": rng.integers(0, 4, size=(n,))}                  # class indices of a sparse loss: kept
    return io_, data


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("steps", [None, 3, 11])
@pytest.mark.parametrize("first_epoch", [0, 2])
@pytest.mark.parametrize("held_out", [False, True])
def test_numpy_batches_are_the_pipelines_batches(shuffle, steps, first_epoch, held_out):
    import tensorflow as tf

    from graphspec.train import data as datalib

    io_, data = _two_in_two_out()
    examples = datalib.open_python(data, io_)
    if held_out:  # a validation split: the training examples are a shuffled subset (indices)
        examples, _ = datalib.split(examples, 0.2, seed=4, shuffle=True)
    kwargs = dict(batch_size=8, seed=7, shuffle=shuffle, first_epoch=first_epoch, epochs=4, steps=steps)
    dataset, expected_steps = datalib.training_dataset(examples, io_, shuffle_buffer=100, **kwargs)
    expected = list(dataset.as_numpy_iterator())
    batches, got_steps = datalib.numpy_training_batches(examples, io_, **kwargs)
    assert got_steps == expected_steps
    got = list(batches)
    assert len(got) == len(expected) > 0
    for mine, theirs in zip(got, expected):
        assert tf.nest.map_structure(lambda _: 0, mine) == tf.nest.map_structure(lambda _: 0, theirs)
        for a, b in zip(tf.nest.flatten(mine), tf.nest.flatten(theirs)):
            assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    x, y = got[0]
    assert set(x) == {"a", "b"} and x["a"].dtype == np.float32 and x["b"].dtype == np.int32
    assert y[0].dtype == np.float32 and y[1].dtype == np.int64


def test_numpy_batches_for_many_more_steps_than_the_data_need_no_memory_for_them():
    """steps_per_epoch far beyond one pass cycles the epoch's order by index: the repeated order was once
    materialised (np.resize to steps x batch_size: 4e12 entries here), found in review."""
    import itertools

    from graphspec.train import data as datalib
    from graphspec.train.contract import ModelIO, Tensor

    io_ = ModelIO(inputs={"x": Tensor((4,), "float32")}, outputs={"y": Tensor((3,), "float32")}, targets=["y"],
                  sparse={"y"})
    arrays = {"x": np.arange(40, dtype=np.float32).reshape(10, 4), "y": np.arange(10) % 3}
    examples = datalib.open_python(arrays, io_)
    batches, steps = datalib.numpy_training_batches(examples, io_, batch_size=4, seed=1, shuffle=False,
                                                    first_epoch=0, epochs=1, steps=10**12)
    assert steps == 10**12
    first = [x[:, 0] // 4 for x, _ in itertools.islice(batches, 3)]
    assert [list(b) for b in first] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1]]


def test_numpy_batches_of_one_input_and_one_output_are_plain_arrays():
    from graphspec.train import data as datalib
    from graphspec.train.contract import ModelIO, Tensor

    io_ = ModelIO(inputs={"x": Tensor((4,), "float32")}, outputs={"y": Tensor((3,), "float32")}, targets=["y"],
                  sparse={"y"})
    arrays = {"x": np.arange(40, dtype=np.float32).reshape(10, 4), "y": np.arange(10) % 3}
    examples = datalib.open_python(arrays, io_)
    generator, steps = datalib.numpy_training_batches(examples, io_, batch_size=4, seed=1, shuffle=False,
                                                      first_epoch=0, epochs=1, steps=None)
    batches = list(generator)
    assert steps == 3
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    assert np.array_equal(batches[2][0], arrays["x"][8:]) and np.array_equal(batches[2][1], arrays["y"][8:])


def test_numpy_batches_leave_streams_and_text_to_the_pipeline():
    import tensorflow as tf

    from graphspec.train import data as datalib
    from graphspec.train.contract import ModelIO, Tensor

    io_ = ModelIO(inputs={"x": Tensor((4,), "float32")}, outputs={"y": Tensor((), "float32")}, targets=["y"])
    kwargs = dict(batch_size=4, seed=1, shuffle=True, first_epoch=0, epochs=1, steps=None)
    stream = datalib.open_python(tf.data.Dataset.from_tensor_slices(
        {"x": np.zeros((8, 4), np.float32), "y": np.zeros(8, np.float32)}), io_)
    assert datalib.numpy_training_batches(stream, io_, **kwargs) is None
    text_io = ModelIO(inputs={"x": Tensor((), "string")}, outputs={"y": Tensor((), "float32")}, targets=["y"])
    text = datalib.open_python({"x": np.array(["a", "b", "c", "d"]), "y": np.zeros(4, np.float32)}, text_io)
    assert datalib.numpy_training_batches(text, text_io, **kwargs) is None
