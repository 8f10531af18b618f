"""The JSON Schema of the spec language, for editors (yaml-language-server) and CI.

Pydantic generates the structure from :mod:`graphspec.schema.model` (field docstrings
become descriptions); the catalogue adds what Pydantic cannot know: the list of layer
types and, per layer type, its constructor arguments, so editors complete and flag them.
"""

from __future__ import annotations

from typing import Any

from graphspec.catalogue import catalogue
from graphspec.schema.model import RESERVED_NODE_KEYS, describe_fields

SCHEMA_ID = "https://graphspec.dev/schemas/graphspec.schema.json"


def _arg_schema(meta: dict) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    if "default" in meta:
        schema["default"] = meta["default"]
    elif "default_repr" in meta:
        schema["description"] = f"Keras default: {meta['default_repr']}"
    else:
        schema["description"] = "required"
    return schema


def _per_layer_rules(reserved: tuple[str, ...]) -> list[dict[str, Any]]:
    cat = catalogue()
    rules = []
    for name in cat.layer_names:
        entry = cat.layer(name)
        properties: dict[str, Any] = {key: {} for key in reserved}
        properties.update({arg: _arg_schema(meta) for arg, meta in entry["args"].items()})
        required = [arg for arg, meta in entry["args"].items() if meta.get("required")]
        then: dict[str, Any] = {"properties": properties, "additionalProperties": False}
        if required:
            then["required"] = required
        rules.append({"if": {"properties": {"type": {"const": name}}, "required": ["type"]}, "then": then})
    return rules


def _per_op_rules() -> list[dict[str, Any]]:
    """For each allow-listed keras.ops function: the keys an ``op:`` node of it may hold (its arguments)."""
    cat = catalogue()
    rules = []
    for name in cat.op_names:
        entry = cat.op(name)
        properties: dict[str, Any] = {"op": {}, "input": {}}
        for arg, meta in entry["args"].items():
            if arg == entry.get("variadic") or arg == "kwargs":
                continue
            schema = _arg_schema(meta)
            if arg in entry["operands"] and len(entry["operands"]) == 1:
                continue  # the op's one tensor is a reference in 'input:'
            if arg in entry["operands"]:
                schema = {"type": ["number", "boolean"], "description": "a scalar constant for this operand "
                          "(tensor operands are references in 'input:')"}
            properties[arg] = schema
        rules.append({"if": {"properties": {"op": {"const": name}}, "required": ["op"]},
                      "then": {"properties": properties, "additionalProperties": False}})
    return rules


def build_json_schema() -> dict[str, Any]:
    # Sections validated by models imported on demand: their schemas join the spec's.
    from graphspec.schema.train import TrainSpec

    from graphspec.schema.blocks import SPEC_SECTIONS, SpecDocument, allow_expressions  # what a file may hold

    describe_fields()
    schema = SpecDocument.model_json_schema(mode="validation")
    defs = schema.setdefault("$defs", {})

    train = TrainSpec.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
    defs.update(train.pop("$defs", {}))
    defs["TrainSpec"] = train
    description = schema["properties"]["train"].get("description", "")
    schema["properties"]["train"] = {"anyOf": [{"$ref": "#/$defs/TrainSpec"}, {"type": "null"}],
                                     "default": None, "description": description}
    schema["properties"] = {key: schema["properties"][key] for key in SPEC_SECTIONS}  # the sections' one order
    layer_names = catalogue().layer_names
    for definition, reserved in (("LayerNode", RESERVED_NODE_KEYS), ("LayerConfig", ("type",)),
                                 ("SequentialLayer", ("type", "name"))):
        if definition in defs:
            node = defs[definition]
            node["properties"]["type"]["enum"] = layer_names
            node["allOf"] = _per_layer_rules(tuple(k for k in reserved if k in node["properties"]) or ("type",))
    if "OpNode" in defs:
        defs["OpNode"]["properties"]["op"]["enum"] = catalogue().op_names
        defs["OpNode"]["allOf"] = _per_op_rules()
    schema = allow_expressions(schema)  # language 1.1: ${...} where values go
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
