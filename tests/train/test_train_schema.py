"""The train section in the schema and command-line overrides (no TensorFlow)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from graphspec.errors import SchemaError, TrainError
from graphspec.pipeline import check_text
from graphspec.train.settings import check_with_overrides, override_list, parse_set, resolved_settings

from trainhelpers import TINY_SPEC


def diagnostics(text: str):
    with pytest.raises(SchemaError) as info:
        check_text(text, file="spec.yaml")
    return info.value.diagnostics


def test_tiny_train_section_validates():
    checked = check_text(TINY_SPEC)
    train = checked.spec.train
    assert train.batch_size == 16 and train.epochs == 3 and train.validation.split == 0.25
    assert train.data.npz == "data.npz"
    assert train.callbacks.best_model is not False


def test_train_errors_are_located_and_all_reported():
    text = TINY_SPEC.replace("batch_size: 16", "batch_size: 0\n  epocs: 3").replace(
        "validation: {split: 0.25}", "validation: {split: 1.5}")
    found = diagnostics(text)
    by_path = {".".join(map(str, d.path)): d for d in found}
    assert set(by_path) >= {"train.batch_size", "train.epocs", "train.validation.split"}
    assert by_path["train.epocs"].code == "unknown-key"
    line = text.splitlines().index("  batch_size: 0") + 1
    assert by_path["train.batch_size"].line == line
    assert all(d.file == "spec.yaml" for d in found)


def test_data_source_needs_one_kind():
    found = diagnostics(TINY_SPEC.replace("data: {npz: data.npz}", "data: {npz: a.npz, csv: b.csv}"))
    assert any("exactly one of 'npz'" in d.message for d in found)


def test_validation_needs_split_or_data():
    found = diagnostics(TINY_SPEC.replace("validation: {split: 0.25}", "validation: {shuffle_before_split: true}"))
    assert any("exactly one of 'split' or 'data'" in d.message for d in found)


def test_unknown_lr_schedule_is_an_error():
    found = diagnostics(TINY_SPEC + "  callbacks: {lr_schedule: {type: ExpDecay, decay_steps: 1}}\n")
    assert any("ExpDecay" in d.message for d in found)
    found = diagnostics(TINY_SPEC + "  callbacks: {lr_schedule: {type: ExponentialDecay, decay_steps: 1}}\n")
    assert any("needs 'initial_learning_rate'" in d.message for d in found)


def test_precision_and_strategy_are_enumerated():
    found = diagnostics(TINY_SPEC + "  precision: float16\n  strategy: tpu\n")
    assert {".".join(map(str, d.path)) for d in found} >= {"train.precision", "train.strategy"}


def test_set_parses_yaml_values():
    assert parse_set("train.batch_size=64") == (("train", "batch_size"), 64)
    assert parse_set("epochs=2") == (("train", "epochs"), 2)
    assert parse_set("train.validation={split: 0.1}") == (("train", "validation"), {"split": 0.1})
    assert parse_set("train.shuffle=false") == (("train", "shuffle"), False)


@pytest.mark.parametrize("text,needle", [
    ("batch_size", "KEY=VALUE"),
    ("train.bach_size=3", "did you mean 'batch_size'"),
    ("train.seed=!!python/object:os.system x", "tag"),
])
def test_bad_set_is_a_train_error(text, needle):
    with pytest.raises(TrainError) as info:
        parse_set(text)
    rendered = str(info.value)
    assert needle in rendered
    assert info.value.diagnostics[0].file.startswith("--set")


def test_overrides_are_validated_by_the_schema(project):
    spec = project / "tiny.yaml"
    checked = check_with_overrides(spec, override_list(["train.batch_size=64"], epochs=5))
    assert checked.spec.train.batch_size == 64 and checked.spec.train.epochs == 5
    with pytest.raises(SchemaError) as info:
        check_with_overrides(spec, override_list(["train.batch_size=-1"]))
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.file == "--set train.batch_size=-1" and diagnostic.line is None


def test_override_creates_a_missing_train_section(project):
    text = TINY_SPEC.split("train:")[0]
    spec = project / "bare.yaml"
    spec.write_text(text)
    checked = check_with_overrides(spec, override_list(["train.data={npz: data.npz}"], epochs=1))
    assert checked.spec.train.epochs == 1


def test_seed_is_drawn_and_recorded_when_missing():
    checked = check_text(TINY_SPEC.replace("  seed: 1\n", ""))
    settings = resolved_settings(checked)
    assert isinstance(settings["seed"], int)
    assert resolved_settings(checked, seed=5)["seed"] == 5


def test_train_schema_and_overrides_do_not_import_tensorflow():
    code = ("import sys\nfrom graphspec.pipeline import check_text\nfrom graphspec.train.settings import override_list\n"
            f"check_text({TINY_SPEC!r})\noverride_list(['train.epochs=2'])\nimport graphspec.cli\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
