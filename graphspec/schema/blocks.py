"""Spec language 1.1: the ``params:``, ``blocks:``, ``variants:`` sections and the ``block:`` node form.

These sections are validated (with these models) by the expand stage
(:mod:`graphspec.expand`), before the blocks are expanded into plain nodes; they are
fields of :class:`SpecDocument`, what a spec file may hold, so that the JSON Schema describes
them for editors (the flat :class:`graphspec.schema.model.Spec` that the schema stage validates
has none of them). A block's own nodes hold expressions (``${filters * 4}``) where the flat
spec holds numbers, so they are checked after expansion, as plain nodes, at the line
where the block defines them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag, model_validator

from graphspec.schema.model import (  # noqa: F401 (the 1.1 keys and needs_expansion: importable from here too)
    NODE_FORMS, NODE_KEYS_1_1, SECTIONS_1_1, ArgValue, Name, Spec, document_fields, needs_expansion, node_union)

LocalName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]+$", max_length=128)]
"""A node name inside a block: letters, digits and '_' (it may start with a digit, ``1_conv``: the
expanded name is prefixed by the instance's name, ``conv2_block1_1_conv``)."""

ParamType = Literal["int", "float", "bool", "string", "list", "choice"]

RESERVED_BLOCK_CALL_KEYS = ("block", "input", "repeat", "when")
"""Keys of a ``block:`` node that are not arguments of the block (block parameters may not use them)."""

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)


class ParamSpec(_Strict):
    """A typed parameter: ``{type: int, default: 64, doc: "filters of the 3x3 convolution"}``."""

    type: ParamType
    """``int``, ``float`` (an int is accepted), ``bool``, ``string``, ``list`` or ``choice`` (one of ``choices``)."""
    default: ArgValue = None
    """The value when a call (or the command line) does not give one; without it the parameter is required."""
    doc: str | None = Field(default=None, max_length=1_000)
    """What the parameter means: shown in the JSON Schema and in the hint of an error about its value."""
    choices: list[ArgValue] | None = Field(default=None, min_length=1, max_length=1_000)
    """For ``type: choice``: the values allowed."""
    min: int | float | None = None
    """Smallest value allowed (``int`` and ``float`` parameters)."""
    max: int | float | None = None
    """Largest value allowed (``int`` and ``float`` parameters)."""

    @model_validator(mode="after")
    def _choices_only_for_choice(self) -> "ParamSpec":
        if (self.type == "choice") != (self.choices is not None):
            raise ValueError("'choices' is required for type 'choice' and allowed only there")
        if (self.min is not None or self.max is not None) and self.type not in ("int", "float"):
            raise ValueError("'min' and 'max' apply to int and float parameters only")
        return self

    @property
    def required(self) -> bool:
        return "default" not in self.model_fields_set


def _param_form(value: Any) -> str:
    return "param-declaration" if isinstance(value, (dict, ParamSpec)) and "type" in (
        value if isinstance(value, dict) else type(value).model_fields) else "param-value"


ModelParam = Annotated[
    Union[Annotated[ParamSpec, Tag("param-declaration")], Annotated[ArgValue, Tag("param-value")]],
    Discriminator(_param_form),
]
"""A model parameter: a declaration ``{type: int, default: 64, doc: ...}``, or a plain value (its type is
the value's; this is also what ``--set params.NAME=VALUE`` leaves when applied to the data)."""


class BlockSpec(_Strict):
    """A named, parameterized sub-graph, instantiated by ``{block: NAME, ...arguments, input: x}`` nodes."""

    doc: str | None = Field(default=None, max_length=2_000)
    """What the block computes (for humans, and shown in errors about its calls)."""
    params: dict[Name, ParamSpec] = Field(default_factory=dict)
    """The block's parameters by name; each call gives them as keys of its node."""
    inputs: list[Name] = Field(default_factory=lambda: ["x"], min_length=1, max_length=64)
    """Names of the block's inputs, referenced by its nodes; a call gives them as ``input:`` (default ``[x]``)."""
    nodes: dict[LocalName, dict[str, Any]] = Field(min_length=1)
    """The block's nodes, in order: any node form (including ``block:`` calls, ``repeat:``, ``when:``); values
    may be expressions of the parameters. A node named ``k`` of instance ``conv2`` is named ``conv2_k``."""
    outputs: list[Annotated[str, StringConstraints(pattern=r"^(?:[A-Za-z0-9_]+(?:\[[0-9]+\])?|.*\$\{.*)$",
                                                   max_length=1_000)]] = Field(min_length=1, max_length=64)
    """The block's outputs (node names, or its inputs); a reference to the instance means its first output,
    ``instance[k]`` its k-th. An output may be an expression of the parameters giving a name
    (``${'add' if residual else 'project_bn'}``)."""

    @model_validator(mode="after")
    def _params_are_not_reserved(self) -> "BlockSpec":
        clash = [p for p in self.params if p in RESERVED_BLOCK_CALL_KEYS or p in ("i", "variant")]
        if clash:
            raise ValueError(f"parameter name '{clash[0]}' is reserved in a block call")
        return self


class RepeatSpec(_Strict):
    """``repeat: {count: 3, name: "block${i + 1}"}``: the node applied ``count`` times in a chain."""

    count: int | str
    """How many times (an int or an expression, 0 to 10,000); each iteration takes the previous one's output."""
    name: str | None = Field(default=None, max_length=200)
    """Name of each iteration, an expression template of ``i`` (0-based); default ``"<node>_${i}"``."""


class BlockCall(_Strict):
    """A node instantiating a block: ``{block: bottleneck, filters: 64, strides: 2, input: x}``; every key but
    ``block``, ``input``, ``repeat`` and ``when`` is an argument of the block."""

    model_config = ConfigDict(extra="allow", strict=True, defer_build=True)

    block: str
    """Name of the block under ``blocks:`` (or an expression choosing one)."""
    input: Any = None
    """The block's inputs: a reference (one input), a list (in the block's order), or ``{input_name: ref}``.
    Omitted: the node just before."""
    repeat: Union[int, str, RepeatSpec, None] = None
    """Apply the block n times in a chain (``3``, ``${depth}`` or ``{count: ..., name: ...}``)."""
    when: Union[bool, str, None] = None
    """A condition (``${strides != 1}``): without it being true the node does not exist, and references to
    it mean its input."""


VariantSpec = dict[Name, ArgValue]
"""A named variant: values of model parameters (``{depth: 0.33, width: 0.25}``)."""

DocumentNode = node_union({**NODE_FORMS, "block": ("block-call", BlockCall)})
"""A node of a spec file: a flat spec's node forms, or a block call."""


class SpecDocument(Spec):
    """A graphspec model specification (format version 1)."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True, title="Spec")

    nodes: dict[Name, DocumentNode] = Field(min_length=1)
    """The graph: node name -> one layer application, in file order."""
    variant: Name | None = None
    """Language 1.1: the variant (of ``variants:``) built unless the command line or the API chooses another."""
    params: dict[Name, ModelParam] | None = None
    """Language 1.1: model parameters by name, used in expressions anywhere in the spec (``${width}``)."""
    variants: dict[Name, VariantSpec] | None = None
    """Language 1.1: named variants of the architecture, each a set of parameter values (``{depth: 0.33}``)."""
    blocks: dict[Name, BlockSpec] | None = None
    """Language 1.1: named, parameterized sub-graphs, instantiated by ``{block: NAME, ...}`` nodes."""


SPEC_SECTIONS = (*(key for key in SpecDocument.model_fields if key != "train"), "train")
"""The top-level keys a spec file may hold, in the order hints and the JSON Schema list them (``train`` last,
as before the language 1.1 sections moved to :class:`SpecDocument`)."""


document_fields(globals())  # the models above: descriptions for the JSON Schema


EXPRESSION_SCHEMA = {
    "type": "string",
    "pattern": "\\$\\{",
    "description": "Language 1.1: an expression of the spec's parameters, e.g. ${filters * 4} (evaluated in a spec "
                   "with params/blocks/variants; a whole ${...} keeps its type).",
}


def allow_expressions(schema: dict) -> dict:
    """The editor schema with a ``${...}`` expression allowed wherever a number, a bool or a name is.

    Also lets a model parameter match either of its forms (a declaration also looks like a plain mapping)."""
    defs = schema.setdefault("$defs", {})
    defs["Expression"] = EXPRESSION_SCHEMA
    ref = {"$ref": "#/$defs/Expression"}

    def visit(node: object, top: bool = False) -> object:
        if isinstance(node, list):
            return [visit(item) for item in node]
        if not isinstance(node, dict):
            return node
        result = {}
        for key, value in node.items():
            if key in ("properties", "patternProperties", "$defs"):
                result[key] = {k: (v if top and k in ("graphspec", "plugins") else visit(v)) for k, v in value.items()}
            elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "prefixItems", "then"):
                result[key] = visit(value)
            else:
                result[key] = value
        if result.get("type") in ("integer", "number", "boolean") or \
                (result.get("type") == "string" and "pattern" in result and result is not EXPRESSION_SCHEMA):
            outer = {key: result.pop(key) for key in ("title", "description", "default") if key in result}
            return {"anyOf": [result, ref], **outer}
        return result

    out = visit(schema, top=True)
    params = out.get("properties", {}).get("params", {})
    for option in params.get("anyOf", []):
        if not isinstance(option, dict):
            continue
        for extra in [option.get("additionalProperties"), *option.get("patternProperties", {}).values()]:
            if isinstance(extra, dict) and "oneOf" in extra:
                extra["anyOf"] = extra.pop("oneOf")
                extra.pop("discriminator", None)
    out["$defs"]["Expression"] = EXPRESSION_SCHEMA
    # 'repeat:' and 'when:' apply to every node form, not only to block calls.
    call = out["$defs"].get("BlockCall", {}).get("properties", {})
    for form in ("LayerNode", "SharedCall", "SequentialNode", "ModelNode", "OpNode"):
        definition = out["$defs"].get(form)
        if definition is not None and "repeat" in call and "when" in call:
            definition.setdefault("properties", {}).setdefault("repeat", call["repeat"])
            definition["properties"].setdefault("when", call["when"])
            for rule in definition.get("allOf", []):  # per-layer rules list the keys a layer node may hold
                then = rule.get("then", {}) if isinstance(rule, dict) else {}
                if then.get("additionalProperties") is False and "properties" in then:
                    then["properties"].setdefault("repeat", {})
                    then["properties"].setdefault("when", {})
    return out


_JSON_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "string": "string", "list": "array"}


def _param_schema(decl: ParamSpec) -> dict:
    if decl.type == "choice":
        value: dict = {"enum": list(decl.choices or [])}
    else:
        value = {"type": _JSON_TYPES[decl.type]}
        if decl.min is not None:
            value["minimum"] = decl.min
        if decl.max is not None:
            value["maximum"] = decl.max
    schema: dict = {"anyOf": [value, {"$ref": "#/$defs/Expression"}],
                    "description": (decl.doc or decl.type) + ("" if not decl.required else " (required)")}
    if not decl.required:
        schema["default"] = decl.default
    return schema


def with_spec_blocks(schema: dict, blocks: dict[str, BlockSpec], params: dict[str, Any] | None = None) -> dict:
    """The editor schema for one spec: its block calls complete and check the block's own parameters
    (with their docs), ``block:`` completes the spec's block names, and ``--set``-able model parameters
    are described (``graphspec schema --spec FILE``)."""
    call = schema["$defs"]["BlockCall"]
    if blocks:
        call["properties"]["block"] = {"anyOf": [{"enum": list(blocks)}, {"$ref": "#/$defs/Expression"}],
                                       "description": call["properties"]["block"].get("description", "")}
    rules = []
    for name, block in blocks.items():
        properties: dict = {key: {} for key in RESERVED_BLOCK_CALL_KEYS}
        properties.update({param: _param_schema(decl) for param, decl in block.params.items()})
        then: dict = {"properties": properties, "additionalProperties": False}
        required = [param for param, decl in block.params.items() if decl.required]
        if required:
            then["required"] = required
        if block.doc:
            then["description"] = block.doc
        rules.append({"if": {"properties": {"block": {"const": name}}, "required": ["block"]}, "then": then})
    if rules:
        call["allOf"] = rules
    if params:
        described = {name: _param_schema(decl) for name, decl in params.items() if isinstance(decl, ParamSpec)}
        if described:
            schema["$defs"]["SpecParams"] = {"type": "object", "properties": described,
                                             "description": "This spec's model parameters."}
    return schema
