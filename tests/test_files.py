"""Files a spec names are confined to its folder; saved models hold only Keras' own classes;
outputs are written atomically or refused with a clear error (graphspec/files.py, resolve)."""

import json
import zipfile
from pathlib import Path

import pytest

from graphspec.errors import GraphspecError, ResolveError, TrainError
from graphspec.files import AtomicFile, atomic_write_json
from graphspec.pipeline import check_file

ENCODER = Path(__file__).parents[1] / "specs" / "encoder.keras"

SPEC = """graphspec: 1
name: m
inputs: {x: {shape: [32]}}
nodes:
  e: {model: MODEL}
outputs: [e]
"""


def _archive(target: Path, mutate) -> None:
    with zipfile.ZipFile(ENCODER) as source, zipfile.ZipFile(target, "w") as out:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                mutate(config["config"]["layers"][1])
                data = json.dumps(config).encode()
            out.writestr(item, data)


def _check(tmp_path: Path, text: str):
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    return check_file(spec)


@pytest.mark.parametrize("mutate, reason", [
    (lambda layer: layer.update(class_name="TFSMLayer"), "TFSMLayer"),
    (lambda layer: layer.update(class_name="Lambda"), "Lambda"),
    (lambda layer: layer.update(module="os", class_name="system"), "module 'os'"),
    (lambda layer: layer.update(registered_name="evil>Layer"), "evil>Layer"),
    (lambda layer: layer.update(class_name="StringLookup", config={"vocabulary": "/etc/passwd"}), "vocabulary"),
])
def test_saved_models_naming_foreign_or_unsafe_classes_are_refused_by_check(tmp_path, mutate, reason):
    _archive(tmp_path / "enc.keras", mutate)
    with pytest.raises(ResolveError) as info:
        _check(tmp_path, SPEC.replace("MODEL", "enc.keras"))
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "unsafe-saved-model" and reason in diagnostic.message
    assert (diagnostic.line, diagnostic.col) == (5, 14)


def test_a_plain_keras_archive_is_accepted(tmp_path):
    (tmp_path / "enc.keras").write_bytes(ENCODER.read_bytes())
    assert _check(tmp_path, SPEC.replace("MODEL", "enc.keras")).graph.nodes["e"].model_file is not None


def test_a_file_that_is_not_an_archive_is_refused(tmp_path):
    (tmp_path / "enc.keras").write_text("not a zip")
    with pytest.raises(ResolveError) as info:
        _check(tmp_path, SPEC.replace("MODEL", "enc.keras"))
    assert info.value.diagnostics[0].code == "unsafe-saved-model"


TRAIN = """graphspec: 1
name: m
inputs: {x: {shape: [4]}}
nodes:
  d: {type: Dense, units: 1}
outputs: [d]
train:
  data: {npz: DATA}
  validation: {data: {tfrecord: [ok.tfrecord, VALID], features: {x: {shape: [4]}}}}
"""


@pytest.mark.parametrize("data, valid, lines", [
    ("../x.npz", "ok2.tfrecord", [8]),
    ("/etc/passwd", "~/.ssh/id_rsa", [8, 9]),
    ("ok.npz", "../../secret.tfrecord", [9]),
])
def test_check_refuses_training_data_outside_the_spec_folder(tmp_path, data, valid, lines):
    with pytest.raises(ResolveError) as info:
        _check(tmp_path, TRAIN.replace("DATA", data).replace("VALID", valid))
    assert [d.code for d in info.value.diagnostics] == ["path-outside-project"] * len(lines)
    assert [d.line for d in info.value.diagnostics] == lines


def test_data_inside_the_folder_need_not_exist_for_check(tmp_path):
    # Existence is `train`'s business; `check` runs in CI where data is often absent.
    assert _check(tmp_path, TRAIN.replace("DATA", "data/train.npz").replace("VALID", "v.tfrecord"))


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/b", "..", ".hidden", "x" * 200, "with space"])
def test_run_names_cannot_steer_the_run_directory(tmp_path, name):
    from graphspec.train.rundir import new_run_dir

    with pytest.raises(TrainError) as info:
        new_run_dir(tmp_path / "runs", "m", name)
    assert info.value.diagnostics[0].code == "bad-run-name"
    assert not (tmp_path / "runs").exists()


def test_unwritable_outputs_are_errors_not_tracebacks(tmp_path):
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(GraphspecError) as info:
        atomic_write_json(tmp_path / "folder.json", {"a": 1})
    assert info.value.diagnostics[0].code == "cannot-write"
    (tmp_path / "file").write_text("x")
    with pytest.raises(GraphspecError):
        with AtomicFile(tmp_path / "file" / "below.txt") as tmp:
            tmp.write_text("never")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.json"]  # no temporary left


@pytest.mark.parametrize("raw, why", [
    ("a" * 300 + ".keras", "too long"),
    ("sub/" + "b" * 256 + "/m.keras", "too long"),
    ("sub/" + "é" * 130 + ".keras", "too long"),  # 136 characters, 266 bytes
    ('"a\\0b.keras"', "NUL"),
])
def test_saved_model_paths_the_system_cannot_take_are_located_errors(tmp_path, raw, why):
    with pytest.raises(ResolveError) as info:
        _check(tmp_path, SPEC.replace("MODEL", raw))
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "bad-path" and why in diagnostic.message
    assert (diagnostic.line, diagnostic.col) == (5, 14)


@pytest.mark.parametrize("data", ['"x\\0.npz"', "c" * 300 + ".npz", '"ok\\0/../x.npz"'])
def test_training_data_paths_the_system_cannot_take_are_located_errors(tmp_path, data):
    with pytest.raises(ResolveError) as info:
        _check(tmp_path, TRAIN.replace("DATA", data).replace("VALID", "v.tfrecord"))
    assert [(d.code, d.line) for d in info.value.diagnostics] == [("bad-path", 8)]


def test_confined_path_reports_instead_of_raising(tmp_path):
    from graphspec.errors import DiagnosticSink
    from graphspec.files import confined_path

    sink = DiagnosticSink()
    for raw in ("a\0b", "x" * 5000, "y" * 256, ""):
        assert confined_path(raw, tmp_path, ("p",), sink, what="a file") is None
    assert [d.code for d in sink.diagnostics] == ["bad-path"] * 4
