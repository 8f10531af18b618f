"""The spec language v1 as Pydantic models.

Every field's docstring becomes its description in the generated JSON Schema
(``schemas/graphspec.schema.json``), which editors use for completion.
Structure is checked here; what depends on Keras' own vocabulary (layer types,
their arguments, object names) is checked against the catalogue in
:mod:`graphspec.schema.semantics`.
"""

# No ``from __future__ import annotations``: Pydantic then reads the fields' annotations as objects instead of
# evaluating ~350 strings at each start (~3 ms of a fresh check); forward references are quoted.
import threading
from typing import Annotated, Any, Callable, Union

from typing_extensions import TypeAliasType
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag, ValidationError,
                      ValidatorFunctionWrapHandler, field_validator)
from pydantic_core import PydanticCustomError

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
REF_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])?$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=128)]
"""A name: letters, digits and underscores, not starting with a digit."""
Ref = Annotated[str, StringConstraints(pattern=REF_PATTERN, max_length=140)]
PluginName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$",
                                              max_length=200)]
"""A plugin's Python import name (``my_team_layers``, ``graphspec.plugins.applications``)."""
"""A reference to an input or a node, optionally indexed (``lstm[1]``) for layers with several outputs."""

# Arguments are plain data: YAML scalars, lists and mappings (never objects or code).
ArgValue = TypeAliasType(
    "ArgValue", Union[None, bool, int, float, str, list["ArgValue"], dict[str, "ArgValue"]]  # type: ignore[misc]
)

InputRef = Union[Ref, list[Ref], dict[Name, Union[Ref, list[Ref]]]]
"""What the layer's ``call()`` receives: one reference, a list, or call-argument name -> a reference or a
list of them (``{inputs: x, initial_state: [h, c]}``)."""

INPUT_FORMS = ("'input' is a reference (x, lstm[1]), a list of references, or a mapping from call argument name "
               "to a reference or to a list of references (initial_state: [h, c]); not a list of lists or a number")
_FORM_ERRORS = {"string_type", "list_type", "dict_type"}

RESERVED_NODE_KEYS = ("type", "shared", "sequential", "model", "op", "input", "call", "block", "repeat", "when")
"""Keys with a meaning of their own in a node; every other key is a Keras constructor argument
(``block``, ``repeat`` and ``when`` are language 1.1: see :mod:`graphspec.schema.blocks`)."""


SECTIONS_1_1 = ("params", "blocks", "variants", "variant")
NODE_KEYS_1_1 = ("block", "repeat", "when")


def needs_expansion(data: Any) -> bool:
    """Whether the data uses any language 1.1 key (else the expand stage leaves it exactly as loaded).

    Here rather than in :mod:`graphspec.expand` or :mod:`graphspec.schema.blocks`, so that the pipeline imports
    the expand stage and the 1.1 sections' models only for the specs that need them."""
    if not isinstance(data, dict):
        return False
    if any(key in data for key in SECTIONS_1_1):
        return True
    nodes = data.get("nodes")
    if isinstance(nodes, dict):
        for node in nodes.values():
            if isinstance(node, dict) and any(key in node for key in NODE_KEYS_1_1):
                return True
    return False


_UNDESCRIBED: list[dict[str, Any]] = []
"""Namespaces of the modules whose models have not yet got their field docstrings (see :func:`describe_fields`)."""
_DESCRIBING = threading.Lock()


def document_fields(namespace: dict[str, Any]) -> None:
    """Register the Pydantic models defined in a module (its ``globals()``, at the end of the module) to get
    their field docstrings as descriptions, which :func:`describe_fields` gives them when a JSON Schema is
    made. Validation needs no descriptions, so a ``check`` never reads the modules' source for them."""
    _UNDESCRIBED.append(namespace)


def describe_fields() -> None:
    """Give the fields of every registered module's models their docstrings as descriptions (the JSON Schema's).

    What Pydantic's ``use_attribute_docstrings`` does, at a fraction of its cost and only when wanted: Pydantic
    finds each class's source through the call stack and tokenizes it at import (about 0.6 ms a class); this
    parses each module once, the first time a JSON Schema is made (~10 ms that a fresh ``check`` would
    otherwise spend on descriptions it never shows). Like Pydantic: a string right after an annotated field
    (in the class that annotates it) is its description, unless ``Field(description=...)`` gave one; an
    inherited field keeps its parent's. A model whose validator was already built (by validating) is rebuilt,
    models it nests first, since its schema was made without the descriptions.
    """
    with _DESCRIBING:  # a second thread waits for the descriptions instead of making a schema without them
        if not _UNDESCRIBED:
            return
        models: list[type[BaseModel]] = []
        for namespace in _UNDESCRIBED:
            models.extend(_describe_module(namespace))
        for model in _nested_first([model for model in models if model.__pydantic_complete__]):
            model.model_rebuild(force=True)
        _UNDESCRIBED.clear()  # only now: a failure above leaves every module to be described again


def _describe_module(namespace: dict[str, Any]) -> list[type[BaseModel]]:
    import ast
    import inspect

    models = [value for value in namespace.values() if isinstance(value, type) and issubclass(value, BaseModel)
              and value.__module__ == namespace["__name__"]]
    file = namespace.get("__file__")
    try:
        with open(file, encoding="utf-8") as handle:  # type: ignore[arg-type]
            tree = ast.parse(handle.read())
    except (OSError, TypeError, ValueError, SyntaxError):
        return models  # no source (as Pydantic: no descriptions)
    docs: dict[str, dict[str, str]] = {}
    for statement in tree.body:
        if not isinstance(statement, ast.ClassDef):
            continue
        found = docs.setdefault(statement.name, {})
        previous: ast.stmt | None = None
        for item in statement.body:
            if isinstance(item, ast.Expr) and isinstance(item.value, ast.Constant) and \
                    isinstance(item.value.value, str) and isinstance(previous, ast.AnnAssign) and \
                    isinstance(previous.target, ast.Name):
                found[previous.target.id] = inspect.cleandoc(item.value.value)
            previous = item
    for model in models:  # bases before subclasses: a module defines a class after its bases
        if model.__qualname__ not in docs:
            continue
        own = model.__dict__.get("__annotations__", {})
        for name, field in model.__pydantic_fields__.items():
            if field.description is not None:
                continue
            if name in own:
                field.description = docs[model.__qualname__].get(name)
            else:  # inherited: Pydantic copies the field of the first base that has it
                for base in model.__bases__:
                    parent = getattr(base, "__pydantic_fields__", {}).get(name)
                    if parent is not None:
                        field.description = parent.description
                        break
    return models


def _nested_first(built: list[type[BaseModel]]) -> list[type[BaseModel]]:
    """The models to rebuild, in order: every model after the models its fields nest (at any depth).

    A rebuilt model reuses the built schema of a model it nests, so that one is rebuilt first. Models
    that nest each other (a recursive schema) have no such order: then every model is rebuilt as many
    times over as there are models, enough for a description to reach the end of the longest chain.
    """
    import graphlib
    from typing import get_args

    def nested(annotation: Any, found: set, seen: set) -> None:
        if id(annotation) in seen:
            return
        seen.add(id(annotation))
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.add(annotation)
            return
        for inner in (*get_args(annotation), getattr(annotation, "__value__", None)):
            if inner is not None:
                nested(inner, found, seen)

    graph: dict[type[BaseModel], set[type[BaseModel]]] = {}
    pending = list(built)
    while pending:  # the built models and every model they nest, at any depth
        model = pending.pop()
        if model in graph:
            continue
        found: set[type[BaseModel]] = set()
        for field in model.__pydantic_fields__.values():
            nested(field.annotation, found, set())
        graph[model] = found - {model}
        pending.extend(found)
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError:
        return built * len(built)
    return [model for model in order if model in built]



class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)


class _ClassWithArguments(BaseModel):
    """``type:`` names a Keras class; every other key is one of its constructor arguments."""

    model_config = ConfigDict(extra="allow", strict=True, defer_build=True)
    __pydantic_extra__: dict[str, ArgValue]

    type: str

    @property
    def args(self) -> dict[str, Any]:
        """The constructor arguments (every key but ``type``)."""
        return dict(self.model_extra or {})


class ObjectConfig(_ClassWithArguments):
    """A Keras object by class name with its constructor arguments, e.g. ``{type: Adam, learning_rate: 0.001}``."""

    type: str
    """The class name in its Keras namespace (e.g. ``HeNormal``, ``Adam``, ``ExponentialDecay``)."""


ObjectRef = Union[str, ObjectConfig]
"""A Keras object: its registered name (``he_normal``, ``adam``, ``mse``) or ``{type: ClassName, ...args}``."""


class InputSpec(StrictModel):
    """A named model input (a ``keras.Input``)."""

    shape: list[Annotated[int, Field(ge=1, le=2**31 - 1)] | None] = Field(max_length=8)
    """Shape of one sample, without the batch dimension; ``null`` for a variable length (``[null]``)."""
    dtype: str = "float32"
    """Element type: ``float32`` (default), ``int32``, ``int64``, ``bool``, ``string``, ..."""
    sparse: bool = False
    """Whether the input is a sparse tensor."""


class LayerConfig(_ClassWithArguments):
    """A Keras layer: ``type`` is the class name, every other key a constructor argument."""

    type: str
    """The Keras layer class name, e.g. ``Dense``, ``Conv2D``, ``MultiHeadAttention``."""


class _Call(BaseModel):
    """Fields shared by every node form: where its input comes from and extra call arguments."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    input: InputRef | None = None
    """Input(s) of the call: a reference, a list of references, or a mapping from call argument
    name to a reference or a list of references (``{query: q, value: v}``,
    ``{inputs: x, initial_state: [h, c]}``). Omitted: the node just before in the file."""
    call: dict[Name, ArgValue] = Field(default_factory=dict)
    """Non-tensor arguments of the call, e.g. ``{use_causal_mask: true}`` for MultiHeadAttention."""

    @field_validator("input", mode="wrap")
    @classmethod
    def _input_form(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """One error that says which forms ``input:`` takes, instead of one per union member
        ("expected a valid string" at three places for ``initial_state: [[h, c]]``)."""
        try:
            return handler(value)
        except ValidationError as exc:
            if any(error["type"] not in _FORM_ERRORS for error in exc.errors()):
                raise  # e.g. a bad name inside a list: Pydantic's own error points at it
            raise PydanticCustomError("input-form", INPUT_FORMS) from None


class LayerNode(LayerConfig, _Call):
    """A node applying a new Keras layer: ``{type: Dense, units: 64, input: x}``."""

    model_config = ConfigDict(extra="allow", strict=True, defer_build=True)


class SharedCall(_Call, StrictModel):
    """A node calling a shared layer declared under ``layers:`` (same weights at every call)."""

    shared: Name
    """Name of the shared layer under ``layers:``."""


class SequentialLayer(LayerConfig):
    """A layer of a ``sequential:`` block: ``type``, its constructor arguments and, optionally, its ``name``."""

    name: Name | None = None
    """The layer's name inside the block (unique there; block names are not prefixed to it). Without it,
    Keras names the layer itself (``conv2d``, ``dense_1``, ...)."""


class SequentialNode(_Call, StrictModel):
    """A node applying a nested ``keras.Sequential`` block, used as one layer."""

    sequential: list[SequentialLayer] = Field(min_length=1)
    """The block's layers, in order."""
    trainable: bool = True
    """Whether the block's weights are trained."""


class ModelNode(_Call, StrictModel):
    """A node applying a saved ``.keras`` model as a layer (e.g. a pretrained encoder)."""

    model: str = Field(min_length=1, max_length=1024)
    """Path to a ``.keras`` file, relative to the spec's folder; it may not leave that folder."""
    trainable: bool = True
    """Whether the loaded model's weights are trained (``false`` freezes them)."""


OpInputRef = Union[Ref, list[Ref], dict[Name, Ref]]
"""The tensor operands of an ``op:`` node: one reference, a list (the op's operands in order), or
operand name -> reference (``{condition: mask, x2: y}``)."""


class OpNode(BaseModel):
    """A node calling an allow-listed ``keras.ops`` function: ``{op: subtract, input: [a, b]}``,
    ``{op: add, input: x, x2: 3.0}``, ``{op: sum, axis: -1, keepdims: true}``.

    Tensor operands are references in ``input:``; every other key is one of the op's own arguments
    (its name in ``keras.ops``), a scalar constant for an operand or a plain value (``axis``, ``dtype``)."""

    model_config = ConfigDict(extra="allow", strict=True, defer_build=True)
    __pydantic_extra__: dict[str, ArgValue]

    op: str
    """The ``keras.ops`` function, e.g. ``add``, ``abs``, ``sum``, ``reshape``, ``einsum``."""
    input: OpInputRef | None = None
    """The tensor operands: a reference, a list of references (the op's operands in order), or operand
    name -> reference. Omitted: the node just before in the file."""

    @property
    def args(self) -> dict[str, Any]:
        """The op's arguments given inline (every key but ``op`` and ``input``)."""
        return dict(self.model_extra or {})

    @property
    def call(self) -> dict[str, Any]:
        return {}


def keyed_form(forms: dict[str, str]) -> Callable[[Any], str | None]:
    """A Pydantic discriminator: the union member (tag) named by the one key of ``forms`` a mapping holds.

    Tags differ from the keys: a tag appears in Pydantic's error locations, where a tag
    equal to a key of the data would be mistaken for that key.
    """
    def form(value: Any) -> str | None:
        if isinstance(value, dict):
            present = [key for key in forms if key in value]
            return forms[present[0]] if len(present) == 1 else None
        if isinstance(value, BaseModel):
            for key, tag in forms.items():
                if key in type(value).model_fields:
                    return tag
        return None

    return form


NODE_FORMS: dict[str, tuple[str, type[BaseModel]]] = {
    "type": ("layer-node", LayerNode), "shared": ("shared-call", SharedCall),
    "sequential": ("sequential-node", SequentialNode), "model": ("model-node", ModelNode), "op": ("op-node", OpNode)}
"""The node forms of a flat spec: the reserved key that says which one a node is -> (tag, model)."""

node_form = keyed_form({key: tag for key, (tag, _) in NODE_FORMS.items()})
"""Which node form a mapping is, by the one reserved key it holds."""


def node_union(forms: dict[str, tuple[str, type[BaseModel]]]) -> Any:
    """The type of a node holding one of ``forms``, told apart by the one reserved key it holds."""
    return Annotated[
        Union[tuple(Annotated[model, Tag(tag)] for tag, model in forms.values())],
        Discriminator(
            keyed_form({key: tag for key, (tag, _) in forms.items()}),
            custom_error_type="node-form",
            custom_error_message="a node needs exactly one of 'type', 'shared', 'sequential', 'model' or 'op'",
        ),
    ]


Node = node_union(NODE_FORMS)
"""One layer application. Which form it is, is said by the one reserved key it holds."""

Loss = ObjectRef
Metric = ObjectRef


class CompileSpec(StrictModel):
    """Arguments of ``model.compile()``."""

    optimizer: ObjectRef = "adam"
    """Optimizer name (``adam``) or ``{type: Adam, learning_rate: 1e-3}``; ``learning_rate`` may be a
    schedule ``{type: ExponentialDecay, initial_learning_rate: 0.01, decay_steps: 1000, decay_rate: 0.9}``."""
    loss: Loss | dict[Name, Loss] | None = None
    """One loss for every output, or a mapping output name -> loss."""
    loss_weights: dict[Name, float] | list[float] | None = None
    """Weight of each output's loss, by output name (or in output order)."""
    metrics: list[Metric] | dict[Name, Metric | list[Metric]] | None = None
    """Metrics for every output, or a mapping output name -> metric(s)."""
    weighted_metrics: list[Metric] | dict[Name, Metric | list[Metric]] | None = None
    """Metrics weighted by sample weights, in the same forms as ``metrics``."""
    steps_per_execution: int = Field(default=1, ge=1, le=100_000)
    """Batches run per call of the compiled training function."""


class ExpectSpec(StrictModel):
    """Assertions about the built model, checked by ``check`` where inference knows the value and again
    by ``build``, so reviewers see them change."""

    params: int | None = Field(default=None, ge=0)
    """Total parameter count."""
    trainable_params: int | None = Field(default=None, ge=0)
    """Trainable parameter count."""
    output_shapes: dict[Name, list[int | None]] | None = None
    """Shape of each output without the batch dimension, by output name."""


class Spec(StrictModel):
    """A graphspec model specification (format version 1): the flat spec the schema stage validates.

    A file may also use language 1.1 (``params:``, ``blocks:``, ``variants:``, ``block:`` nodes): the expand
    stage validates those sections and expands them away first, so this model does not carry them (its
    validator is built by every fresh ``check``). :class:`graphspec.schema.blocks.SpecDocument` is what a
    file may hold, and the JSON Schema's source."""

    graphspec: Annotated[int, Field(strict=True, ge=1, le=1)]
    """Format version of the spec language; must be 1."""
    name: Name
    """Model name (the Keras model's name)."""
    description: str | None = None
    """Free text for humans."""
    inputs: dict[Name, InputSpec] = Field(min_length=1)
    """Model inputs by name; the names are the keys ``fit`` expects in its input dict."""
    layers: dict[Name, LayerConfig] = Field(default_factory=dict)
    """Shared layers by name: one instance (one set of weights), called by any number of nodes."""
    nodes: dict[Name, Node] = Field(min_length=1)
    """The graph: node name -> one layer application, in file order."""
    outputs: Annotated[list[Ref], Field(min_length=1)] | Annotated[dict[Name, Ref], Field(min_length=1)]
    """Model outputs: a list of node references (output names = node names), or output name -> reference."""
    compile: CompileSpec | None = None
    """How to compile the model (optimizer, losses, metrics)."""
    expect: ExpectSpec | None = None
    """Assertions about the model (parameter counts, output shapes): checked by ``check`` where inference
    knows the value, and again against the built model by ``build``."""
    plugins: list[PluginName] | None = Field(default=None, max_length=32)
    """Plugins whose layer types the spec uses (import names, e.g. ``my_team_layers``): a requirement, never
    imported from the spec. The person running graphspec enables them (``--plugin my_team_layers``);
    without them ``check`` names the plugin to enable. See docs/plugins.md."""
    weights: str | None = Field(default=None, min_length=1, max_length=1024)
    """Keras weights (a ``.weights.h5`` file in the spec's folder, relative to it) that ``build`` and ``train``
    load after building the model, e.g. written by ``graphspec import --weights`` (see docs/import.md)."""
    train: Any = None
    """Training settings for ``graphspec train`` (see docs/training.md): a ``TrainSpec``.

    Validated by :func:`graphspec.schema.validate` with :class:`graphspec.schema.train.TrainSpec`,
    imported only for specs that have this section (it is most of the schema's import time)."""

    def output_map(self) -> dict[str, str]:
        """Output name -> reference, in order."""
        if isinstance(self.outputs, dict):
            return dict(self.outputs)
        return {ref.split("[")[0] if ref.count("[") else ref: ref for ref in self.outputs}


document_fields(globals())
