"""Names of the layers inside a ``sequential:`` block (``name:`` on an item): Keras' applications name them
(ConvNeXt's stem: ``convnext_tiny_stem_conv``), so a spec must be able to. Errors: golden fixtures
sequential_duplicate_layer_name and sequential_layer_bad_name."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from graphspec.canonical import canonical_json, graph_hash
from graphspec.errors import GraphspecError
from graphspec.pipeline import check_text

NAMED = """
graphspec: 1
name: named_block
inputs: {image: {shape: [8, 8, 3]}}
nodes:
  stem: {sequential: [{type: Conv2D, filters: 4, kernel_size: 2, strides: 2, name: stem_conv},
                      {type: LayerNormalization, epsilon: 1.0e-6}]}
outputs: [stem]
"""


def test_a_name_is_allowed_only_inside_a_sequential_block() -> None:
    checked = check_text(NAMED)
    items = checked.spec.nodes["stem"].sequential
    assert [item.name for item in items] == ["stem_conv", None]
    assert "name" not in items[0].args  # not a constructor argument the rules or the catalogue see
    with pytest.raises(GraphspecError) as error:
        check_text(NAMED.replace("stem: {sequential: [", "conv: {type: Conv2D, filters: 4, kernel_size: 2, "
                                 "name: c, input: image}\n  stem: {sequential: ["))
    assert [d.code for d in error.value.diagnostics] == ["name-argument"]  # a node's name is its key


def test_an_unnamed_item_keeps_its_canonical_form() -> None:
    """Only a given name enters the canonical form: specs written without names keep their hash."""
    unnamed = check_text(NAMED.replace(", name: stem_conv", ""))
    data = json.loads(canonical_json(unnamed.graph))
    assert [sorted(item) for item in data["nodes"]["stem"]["sequential"]] == [
        ["filters", "kernel_size", "strides", "type"], ["epsilon", "type"]]
    named = check_text(NAMED)
    assert json.loads(canonical_json(named.graph))["nodes"]["stem"]["sequential"][0]["name"] == "stem_conv"
    assert graph_hash(named) != graph_hash(unnamed)


def test_the_editor_schema_completes_the_name() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from graphspec.loader import loads
    from graphspec.schema.jsonschema import build_json_schema

    schema = build_json_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert not list(validator.iter_errors(loads(NAMED).data))
    misspelt = loads(NAMED.replace("name: stem_conv", "nmae: stem_conv")).data
    assert list(validator.iter_errors(misspelt))


def test_named_layers_are_built_with_their_names() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    pytest.importorskip("keras")
    from graphspec.emit import emit

    model = emit(check_text(NAMED))
    block = model.get_layer("stem")
    assert block.layers[0].name == "stem_conv"
    assert type(block.layers[1]).__name__ == "LayerNormalization"
    assert block.layers[1].name.startswith("layer_normalization")  # unnamed: Keras names it
