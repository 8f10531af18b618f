"""Bad data: each case is a located (or named) ``bad-data`` / ``empty-data`` error, never a traceback or a silent run."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from graphspec.cli import app
from graphspec.errors import TrainError
from graphspec.train.loop import train
from test_sources_and_cli import IMAGE_SPEC
from trainhelpers import TINY_SPEC, tiny_arrays

ONE_EPOCH = [(("train", "epochs"), 1)]
DATA_LINE = TINY_SPEC.splitlines().index("  data: {npz: data.npz}") + 1
VALIDATION_LINE = TINY_SPEC.splitlines().index("  validation: {split: 0.25}") + 1


def _error(spec_path, **kwargs) -> TrainError:
    with pytest.raises(TrainError) as info:
        train(spec_path, write_run_dir=False, overrides=ONE_EPOCH, **kwargs)
    return info.value


def _only(error: TrainError, code: str = "bad-data"):
    (diagnostic,) = error.diagnostics
    assert diagnostic.code == code, str(error)
    return diagnostic


# -- NPZ ----------------------------------------------------------------------------------------

def test_npz_with_a_damaged_member_names_the_member(project):
    data = bytearray((project / "data.npz").read_bytes())
    data[200] ^= 0xFF  # inside the first member's bytes: its CRC no longer matches
    (project / "data.npz").write_bytes(bytes(data))
    diagnostic = _only(_error(project / "tiny.yaml"))
    assert "'x.npy'" in diagnostic.message and "damaged" in diagnostic.message
    assert diagnostic.line == DATA_LINE and "numpy.savez" in diagnostic.hint


@pytest.mark.parametrize("content", [b"this is not an npz file at all" * 4, b""])
def test_garbage_npz_is_not_an_npz_and_never_suggests_unpickling(project, content):
    (project / "data.npz").write_bytes(content)
    diagnostic = _only(_error(project / "tiny.yaml"))
    text = diagnostic.message + (diagnostic.hint or "")
    assert "not an NPZ file" in diagnostic.message and diagnostic.line == DATA_LINE
    assert "pickle" not in text.lower()


def test_npz_of_python_objects_never_suggests_unpickling(project):
    objects = np.empty(200, dtype=object)
    objects[:] = [[1.0, 2.0, 3.0, 4.0]] * 200
    np.savez(project / "data.npz", x=objects, y=tiny_arrays()["y"])
    diagnostic = _only(_error(project / "tiny.yaml"))
    assert "'x'" in diagnostic.message and "objects" in diagnostic.message
    assert "pickle" not in (diagnostic.message + diagnostic.hint).lower()


# -- values: NaN / Inf, class indices ---------------------------------------------------------------

def test_nan_features_are_an_error_naming_the_example(project):
    arrays = tiny_arrays()
    arrays["x"][5, 2] = np.nan
    arrays["x"][9, 0] = np.inf
    np.savez(project / "data.npz", **arrays)
    diagnostic = _only(_error(project / "tiny.yaml"))
    assert "input 'x'" in diagnostic.message and "2 example(s), the first in example 5 (nan)" in diagnostic.message
    assert diagnostic.line == DATA_LINE and "nan_to_num" in diagnostic.hint


def test_inf_in_validation_data_points_at_the_validation_source(project):
    arrays = tiny_arrays(40, seed=3)
    arrays["x"][7, 1] = -np.inf
    np.savez(project / "val.npz", **arrays)
    spec = project / "val.yaml"
    spec.write_text(TINY_SPEC.replace("validation: {split: 0.25}", "validation: {data: {npz: val.npz}}"))
    diagnostic = _only(_error(spec))
    assert "npz 'val.npz'" in diagnostic.message and "example 7 (-inf)" in diagnostic.message
    assert diagnostic.line == VALIDATION_LINE


def test_nan_in_python_data_is_an_error(project):
    arrays = tiny_arrays()
    arrays["x"][3, 3] = np.nan
    diagnostic = _only(_error(project / "tiny.yaml", data=arrays))
    assert "the training data" in diagnostic.message and "example 3" in diagnostic.message


def test_fractional_labels_with_a_sparse_loss_name_the_output_and_row(project):
    arrays = tiny_arrays()
    arrays["y"] = arrays["y"].astype(np.float32)
    arrays["y"][9] = 1.5
    np.savez(project / "data.npz", **arrays)
    diagnostic = _only(_error(project / "tiny.yaml"))
    assert "output 'y'" in diagnostic.message and "first in example 9 (1.5)" in diagnostic.message
    assert diagnostic.line == DATA_LINE


def test_fractional_labels_with_a_sparse_metric_are_an_error(project):
    arrays = tiny_arrays()
    arrays["y"] = (arrays["y"] + 0.25).astype(np.float32)
    np.savez(project / "data.npz", **arrays)
    spec = project / "metric.yaml"
    spec.write_text(TINY_SPEC.replace("units: 3, activation: softmax", "units: 1")
                    .replace("loss: sparse_categorical_crossentropy", "loss: mse")
                    .replace("metrics: [accuracy]", "metrics: [sparse_categorical_accuracy]"))
    diagnostic = _only(_error(spec))
    assert "output 'y'" in diagnostic.message and "sparse metric" in diagnostic.message


def test_class_index_out_of_range_is_located(project):
    arrays = tiny_arrays()
    arrays["y"][11] = 3  # the output has 3 classes: 0..2
    np.savez(project / "data.npz", **arrays)
    diagnostic = _only(_error(project / "tiny.yaml"))
    assert "from 0 to 2" in diagnostic.message and "first in example 11" in diagnostic.message
    assert diagnostic.line == DATA_LINE


# -- CSV ----------------------------------------------------------------------------------------

def _csv(project, edit=None):
    arrays = tiny_arrays(40)
    lines = ["a,b,c,d,label"] + [",".join(f"{v:.4f}" for v in row) + f",{y}" for row, y in zip(arrays["x"], arrays["y"])]
    if edit:
        edit(lines)
    (project / "data.csv").write_text("\n".join(lines) + "\n")
    spec = project / "csv.yaml"
    spec.write_text(TINY_SPEC.replace("{npz: data.npz}", "{csv: data.csv, columns: {x: [a, b, c, d], y: label}}"))
    return spec


@pytest.mark.parametrize("row,cells", [("1,2,3,4,0,9", 6), ("1,2,3,0", 4)])
def test_csv_row_with_more_or_fewer_cells_names_the_line(project, row, cells):
    def edit(lines):
        lines[6] = row
    diagnostic = _only(_error(_csv(project, edit)))
    assert f"line 7 has {cells} cells, the header has 5" in diagnostic.message and diagnostic.line == DATA_LINE


def test_csv_nan_cell_and_blank_lines(project):
    def edit(lines):
        lines.insert(3, "")  # blank lines are skipped, and line numbers stay those of the file
        lines[10] = "1,2,nan,4,0"
    diagnostic = _only(_error(_csv(project, edit)))
    assert "line 11, column 'c': 'nan' is not a finite number" in diagnostic.message


# -- TFRecord -----------------------------------------------------------------------------------

TFR_SOURCE = ("{tfrecord: data.tfrecord, map: {x: features}, features: {features: {shape: [4]}, "
              "y: {shape: [], dtype: int64}}}")


def _tfrecord(project, x=None, cut: int = 0):
    import tensorflow as tf

    arrays = tiny_arrays(40)
    x = arrays["x"] if x is None else x
    path = project / "data.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for features, y in zip(x, arrays["y"]):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "features": tf.train.Feature(float_list=tf.train.FloatList(value=features)),
                "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[y]))})).SerializeToString())
    if cut:
        path.write_bytes(path.read_bytes()[:-cut])
    spec = project / "tfr.yaml"
    spec.write_text(TINY_SPEC.replace("{npz: data.npz}", TFR_SOURCE))
    return spec


@pytest.mark.parametrize("cut", [60, 5])  # inside the last record's header (TF reads a clean end), inside its data
def test_truncated_tfrecord_is_an_error(project, cut):
    diagnostic = _only(_error(_tfrecord(project, cut=cut)))
    assert "tfrecord 'data.tfrecord'" in diagnostic.message and "record 39" in diagnostic.message
    assert "truncated" in diagnostic.message and diagnostic.line == DATA_LINE


def test_nan_in_a_tfrecord_names_the_record(project):
    x = tiny_arrays(40)["x"]
    x[13, 0] = np.nan
    diagnostic = _only(_error(_tfrecord(project, x=x)))
    assert "input 'x'" in diagnostic.message and "record 13 (nan)" in diagnostic.message


def test_undecodable_image_in_a_tfrecord_names_the_record(project):
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(project / "pics.tfrecord")) as writer:
        for i in range(12):
            png = tf.io.encode_png(np.full((6, 6, 3), 20 * i, np.uint8)).numpy() if i != 7 else b"not a png"
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
                "cls": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2]))})).SerializeToString())
    spec = project / "pics.yaml"
    spec.write_text(IMAGE_SPEC.replace("{images: pics}", "{tfrecord: pics.tfrecord, features: {image: {shape: [], "
                                       "dtype: string, decode: image}, cls: {shape: [], dtype: int64}}}"))
    with pytest.raises(TrainError) as info:
        train(spec, write_run_dir=False)
    diagnostic = _only(info.value)
    assert "file 'pics.tfrecord', record 7 cannot be decoded" in diagnostic.message
    assert diagnostic.line == IMAGE_SPEC.splitlines().index("  data: {images: pics}") + 1


# -- image folders ------------------------------------------------------------------------------

def _pictures(root, classes=("cat", "dog")):
    import tensorflow as tf

    for k, name in enumerate(classes):
        (root / "pics" / name).mkdir(parents=True)
        for i in range(4):
            (root / "pics" / name / f"{i}.png").write_bytes(
                tf.io.encode_png(np.full((7, 5, 3), 40 + 100 * k + i, np.uint8)).numpy())


def test_empty_class_folder_is_named(tmp_path):
    _pictures(tmp_path)
    (tmp_path / "pics" / "bird").mkdir()
    (tmp_path / "pics.yaml").write_text(IMAGE_SPEC.replace("units: 2", "units: 3"))
    with pytest.raises(TrainError) as info:
        train(tmp_path / "pics.yaml", write_run_dir=False)
    diagnostic = _only(info.value, "empty-data")
    assert "class folder 'bird' holds no images" in diagnostic.message and diagnostic.line is not None


def test_bad_image_during_training_names_the_file_and_exits_2(tmp_path):
    _pictures(tmp_path)
    (tmp_path / "pics" / "dog" / "2.png").write_bytes(b"not an image")
    (tmp_path / "pics.yaml").write_text(IMAGE_SPEC)
    result = CliRunner().invoke(app, ["train", str(tmp_path / "pics.yaml"), "--runs", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    line = IMAGE_SPEC.splitlines().index("  data: {images: pics}") + 1
    assert f"pics.yaml:{line}:" in result.output and "error[bad-data]" in result.output
    assert "image file 'pics/dog/2.png' cannot be read as an image" in result.output
    assert "stack traces unavailable" not in result.output and "Traceback" not in result.output


def test_bad_last_image_in_validation_is_named(tmp_path):
    _pictures(tmp_path)
    (tmp_path / "pics" / "dog" / "3.png").write_bytes(b"GIF89a truncated")  # the very last file read
    (tmp_path / "pics.yaml").write_text(IMAGE_SPEC.replace(
        "  batch_size: 4", "  validation: {split: 0.25, shuffle_before_split: false}\n  batch_size: 4"))
    with pytest.raises(TrainError) as info:
        train(tmp_path / "pics.yaml", write_run_dir=False)
    assert "'pics/dog/3.png'" in _only(info.value).message


def test_inf_in_a_python_dataset_stops_training_naming_the_element(project):
    import tensorflow as tf

    arrays = tiny_arrays(40, seed=3)
    arrays["x"][21, 2] = np.inf
    validation = tf.data.Dataset.from_tensor_slices(({"x": arrays["x"]}, arrays["y"]))
    with pytest.raises(TrainError) as info:
        train(project / "tiny.yaml", write_run_dir=False, overrides=ONE_EPOCH, validation_data=validation)
    diagnostic = _only(info.value)
    assert "the validation data" in diagnostic.message and "input 'x' in element 21" in diagnostic.message


def test_bad_validation_image_first_met_by_the_final_evaluation_is_named(tmp_path):
    # Validation every 5 epochs over a 1-epoch run: fit never validates, the final evaluation
    # of the model against the validation data is the first to read the broken file.
    _pictures(tmp_path)
    (tmp_path / "pics" / "dog" / "3.png").write_bytes(b"GIF89a truncated")
    (tmp_path / "pics.yaml").write_text(IMAGE_SPEC.replace(
        "  batch_size: 4", "  validation: {split: 0.25, shuffle_before_split: false, frequency: 5}\n  batch_size: 4"))
    with pytest.raises(TrainError) as info:
        train(tmp_path / "pics.yaml", write_run_dir=False, overrides=ONE_EPOCH)
    diagnostic = _only(info.value)
    assert "final validation" in diagnostic.message and "'pics/dog/3.png'" in diagnostic.message
