"""CSV, image-folder and TFRecord sources; evaluate and predict; the CLI (exit codes, located errors)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from graphspec.cli import app
from graphspec.errors import TrainError
from graphspec.train.evaluate import evaluate
from graphspec.train.loop import train
from graphspec.train.predict import predict
from trainhelpers import TINY_SPEC, tiny_arrays

ONE_EPOCH = [(("train", "epochs"), 1), (("train", "validation"), None)]


def _csv(project, n=60):
    arrays = tiny_arrays(n)
    lines = ["a,b,c,d,label"] + [",".join(f"{v:.5f}" for v in row) + f",{y}" for row, y in zip(arrays["x"], arrays["y"])]
    (project / "data.csv").write_text("\n".join(lines) + "\n")


def test_csv_columns_are_gathered_into_one_input(project):
    _csv(project)
    spec = project / "csv.yaml"
    spec.write_text(TINY_SPEC.replace("{npz: data.npz}", "{csv: data.csv, columns: {x: [a, b, c, d], y: label}}"))
    result = train(spec, write_run_dir=False, overrides=ONE_EPOCH)
    assert result.history[0]["loss"] > 0
    spec.write_text(TINY_SPEC.replace("{npz: data.npz}", "{csv: data.csv, columns: {x: [a, b, c, e], y: label}}"))
    with pytest.raises(TrainError) as info:
        train(spec, write_run_dir=False)
    assert "no column 'e'" in str(info.value) and info.value.diagnostics[0].line is not None
    spec.write_text(TINY_SPEC.replace("{npz: data.npz}", "{csv: data.csv, columns: {x: [a, b, c], y: label}}"))
    with pytest.raises(TrainError) as info:
        train(spec, write_run_dir=False)
    assert "input 'x'" in str(info.value) and "(3,)" in str(info.value)


def test_csv_bad_cell_names_the_line(project):
    _csv(project)
    text = (project / "data.csv").read_text().splitlines()
    text[3] = "1,2,oops,4,0"
    (project / "data.csv").write_text("\n".join(text) + "\n")
    spec = project / "csv.yaml"
    spec.write_text(TINY_SPEC.replace("{npz: data.npz}", "{csv: data.csv, columns: {x: [a, b, c, d], y: label}}"))
    with pytest.raises(TrainError) as info:
        train(spec, write_run_dir=False)
    assert "line 4, column 'c': 'oops' is not a number" in str(info.value)


IMAGE_SPEC = """\
graphspec: 1
name: pics
inputs:
  image: {shape: [6, 6, 3]}
nodes:
  flat: {type: Flatten}
  cls: {type: Dense, units: 2, activation: softmax}
outputs: [cls]
compile: {optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}
train:
  data: {images: pics}
  batch_size: 4
  epochs: 1
  seed: 3
  verbose: 0
"""


def test_image_folder_per_class(tmp_path):
    import tensorflow as tf

    for k, name in enumerate(["cat", "dog"]):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(5):
            pixels = np.full((9, 7, 3), 40 + 150 * k + i, np.uint8)
            (tmp_path / "pics" / name / f"{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    (tmp_path / "pics.yaml").write_text(IMAGE_SPEC)
    result = train(tmp_path / "pics.yaml", write_run_dir=False)
    assert len(result.history) == 1
    (tmp_path / "empty").mkdir()
    (tmp_path / "e.yaml").write_text(IMAGE_SPEC.replace("images: pics", "images: empty"))
    with pytest.raises(TrainError) as info:
        train(tmp_path / "e.yaml", write_run_dir=False)
    assert info.value.diagnostics[0].code == "empty-data"


def test_tfrecord_with_a_feature_description(project):
    import tensorflow as tf

    arrays = tiny_arrays(40)
    with tf.io.TFRecordWriter(str(project / "data.tfrecord")) as writer:
        for x, y in zip(arrays["x"], arrays["y"]):
            example = tf.train.Example(features=tf.train.Features(feature={
                "features": tf.train.Feature(float_list=tf.train.FloatList(value=x)),
                "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[y]))}))
            writer.write(example.SerializeToString())
    source = ("{tfrecord: data.tfrecord, map: {x: features}, features: {features: {shape: [4]}, "
              "y: {shape: [], dtype: int64}}}")
    spec = project / "tfr.yaml"
    spec.write_text(TINY_SPEC.replace("{npz: data.npz}", source))
    result = train(spec, write_run_dir=False, overrides=[(("train", "epochs"), 2)])
    assert "val_loss" in result.history[1]
    spec.write_text(TINY_SPEC.replace("{npz: data.npz}", source.replace("shape: [4]", "shape: [5]")))
    with pytest.raises(TrainError) as info:
        train(spec, write_run_dir=False)
    assert "input 'x'" in str(info.value) and "(5,)" in str(info.value)


def test_evaluate_and_predict(project):
    result = train(project / "tiny.yaml", runs_root=project / "runs", run_name="e", overrides=ONE_EPOCH[:1])
    report = evaluate(result.run_dir)
    assert report["data"] == "validation split" and report["examples"] == 50
    assert set(report["per_output"]["y"]) == {"loss", "accuracy"}
    assert json.loads((result.run_dir / "evaluation.json").read_text())["metrics"] == report["metrics"]
    np.savez(project / "new.npz", x=tiny_arrays(23, seed=5)["x"])
    summary = predict(result.run_dir / "model.keras", project / "new.npz", project / "out.npz", batch_size=5)
    assert summary["examples"] == 23
    with np.load(project / "out.npz") as out:
        assert out["y"].shape == (23, 3)
        np.testing.assert_allclose(out["y"], result.model.predict(tiny_arrays(23, seed=5)["x"], verbose=0), rtol=1e-5)
    predict(result.run_dir, project / "new.npz", project / "out.csv")
    lines = (project / "out.csv").read_text().splitlines()
    assert lines[0] == "y_0,y_1,y_2,y_class,y_probability" and len(lines) == 24  # sparse categorical: + class


runner = CliRunner()


def test_cli_train_evaluate_predict(project):
    spec = str(project / "tiny.yaml")
    runs = str(project / "runs")
    result = runner.invoke(app, ["train", spec, "--runs", runs, "--name", "cli", "--epochs", "2",
                                 "--set", "train.batch_size=32", "-v", "0"])
    assert result.exit_code == 0, result.output
    assert "run directory:" in result.output
    run = project / "runs" / "tiny" / "cli"
    settings = json.loads((run / "settings.json").read_text())
    assert settings["epochs"] == 2 and settings["batch_size"] == 32
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output
    result = runner.invoke(app, ["predict", str(run), "--data", str(project / "data.npz"), "-o",
                                 str(project / "p.npz")])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("args,needle", [
    (["--set", "train.batch_size=-4"], "--set train.batch_size=-4"),
    (["--set", "train.nope=1"], "has no field 'nope'"),
    (["--epochs", "0"], "greater than or equal to 1"),
])
def test_cli_bad_overrides_exit_2(project, args, needle):
    result = runner.invoke(app, ["train", str(project / "tiny.yaml"), "--runs", str(project / "runs"), *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert not (project / "runs").exists()


def test_cli_data_error_is_located_and_exits_2(project):
    spec = project / "bad.yaml"
    spec.write_text(TINY_SPEC.replace("data.npz", "missing.npz"))
    result = runner.invoke(app, ["train", str(spec), "--runs", str(project / "runs")])
    assert result.exit_code == 2
    assert f"{spec}:15:" in result.output and "error[file-not-found]" in result.output
    assert "Traceback" not in result.output
    assert not (project / "runs").exists()
