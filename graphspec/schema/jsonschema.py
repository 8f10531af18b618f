"""The JSON Schema of the spec language, for editors (yaml-language-server) and CI.

Pydantic generates the structure from :mod:`graphspec.schema.model` (field docstrings
become descriptions); the catalogue adds what Pydantic cannot know: the list of layer
types and, per layer type, its constructor arguments, so editors complete and flag them.
"""

from __future__ import annotations

from typing import Any

from graphspec.catalogue import catalogue
from graphspec.schema.model import RESERVED_NODE_KEYS, Spec

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


def build_json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema(mode="validation")
    defs = schema.setdefault("$defs", {})
    # Sections validated by models imported on demand: their schemas join the spec's.
    from graphspec.schema.train import TrainSpec

    train = TrainSpec.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
    defs.update(train.pop("$defs", {}))
    defs["TrainSpec"] = train
    description = schema["properties"]["train"].get("description", "")
    schema["properties"]["train"] = {"anyOf": [{"$ref": "#/$defs/TrainSpec"}, {"type": "null"}],
                                     "default": None, "description": description}
    layer_names = catalogue().layer_names
    for definition, reserved in (("LayerNode", RESERVED_NODE_KEYS), ("LayerConfig", ("type",))):
        if definition in defs:
            node = defs[definition]
            node["properties"]["type"]["enum"] = layer_names
            node["allOf"] = _per_layer_rules(tuple(k for k in reserved if k in node["properties"]) or ("type",))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
