"""One policy for what a saved Keras config may name (model: nodes and graphspec import share it)."""

from __future__ import annotations

from graphspec.keras_config import LEGACY_MODULES, first_refusal


def _layer(class_name, module="keras.layers", **extra):
    return {"module": module, "class_name": class_name, "config": {"name": "x", **extra.pop("config", {})}, **extra}


def _model(*layers):
    return {"module": "keras", "class_name": "Functional", "config": {"layers": list(layers)}}


def test_plain_keras_layers_and_ops_are_accepted():
    op = {"module": "keras.src.ops.numpy", "class_name": "Add", "registered_name": "Add_op", "config": {}}
    assert first_refusal(_model(_layer("Dense"), op)) is None


def test_code_running_classes_are_refused_even_without_a_module_key():
    refusal = first_refusal(_model({"class_name": "Lambda", "config": {"name": "f", "function": "..."}}))
    assert refusal is not None and (refusal.kind, refusal.class_name, refusal.layer_name) == ("unsafe-class", "Lambda", "f")


def test_foreign_modules_registered_objects_and_vocabulary_files_are_refused():
    assert first_refusal(_model(_layer("Dense", module="evil.layers"))).kind == "foreign-class"
    assert first_refusal(_model(_layer("Dense", registered_name="my>Dense"))).kind == "registered-object"
    refusal = first_refusal(_model(_layer("StringLookup", config={"vocabulary": "/etc/passwd"})))
    assert refusal.kind == "vocabulary-file"
    assert first_refusal(_model(_layer("StringLookup", config={"vocabulary": ["a", "b"]}))) is None


def test_plugins_and_keras_2_modules_only_where_the_caller_allows_them():
    plugin = _layer("Scale", module="team_layers", registered_name="team>Scale")
    assert first_refusal(_model(plugin)).kind == "foreign-class"
    assert first_refusal(_model(plugin), allowed_classes={"Scale"}) is None
    legacy = _layer("Dense", module="tf_keras.layers")
    assert first_refusal(_model(legacy)).kind == "foreign-class"
    assert first_refusal(_model(legacy), module_roots=LEGACY_MODULES) is None


def test_import_refuses_a_vocabulary_file():
    import json

    import pytest

    from graphspec.importer.source import ImportSourceError, check_classes

    config = _model(_layer("TextVectorization", config={"vocabulary": "vocab.txt"}))
    with pytest.raises(ImportSourceError) as info:
        check_classes(json.loads(json.dumps(config)), "m.keras", set())
    assert [d.code for d in info.value.diagnostics] == ["unsafe-model"]
    assert "reads its vocabulary from a file" in info.value.diagnostics[0].message
