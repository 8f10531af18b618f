"""Stage 4 — infer: static shapes, dtypes and parameter counts, in pure Python.

The walker visits the graph in topological order and applies each node's shape
rule (:mod:`graphspec.infer.rules`). Rules speak only of tensors; the walker adds
the node context, so an error points at the node's line (or at the argument a
rule blames). Nodes whose layer has no rule get ``unknown`` shapes, and Keras
infers them at build time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from graphspec.catalogue import catalogue
from graphspec.errors import Diagnostic, DiagnosticSink, InferError, Path
from graphspec.infer.rules import RULES
from graphspec.plugins import plugin_rule
from graphspec.infer.tensor import (ArgumentError, Inputs, LayerCall, RuleResult, Shape, ShapeError, TensorInfo,
                                    blame, is_float)
from graphspec.resolve import Graph, GraphNode, TensorRef

__all__ = ["InferredGraph", "NodeInfo", "TensorInfo", "ShapeError", "LayerCall", "infer", "infer_layer", "RULES"]

MAX_PARAMS = 2_000_000_000
"""A spec whose model would hold more parameters than this is refused before Keras allocates them."""

Outputs = Union[TensorInfo, list[TensorInfo]]


@dataclass
class NodeInfo:
    """What inference found for one node (``None`` fields: unknown until Keras builds it)."""

    outputs: Outputs | None
    params: int | None
    non_trainable_params: int | None = 0
    counted: bool = True
    """False for the second and later calls of a shared layer (its weights are counted once)."""


@dataclass
class InferredGraph:
    """Stage 4's output: the resolved graph with each node's, input's and output's inferred shapes and dtypes.

    (A docstring also spares ``dataclass`` from making one out of ``inspect.signature`` at every start.)"""

    graph: Graph
    nodes: dict[str, NodeInfo]
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo | None]
    warnings: list[Diagnostic] = field(default_factory=list)

    def model_layers(self) -> list[NodeInfo]:
        """One entry per layer of the Keras model: the nodes that reach an output (Keras drops the
        others), a shared layer once (at its first call) if any of its calls reaches one."""
        used = reaching_outputs(self.graph)
        shared_used = {node.layer_name for name, node in self.graph.nodes.items()
                       if node.kind == "shared" and name in used}
        layers = []
        for name, info in self.nodes.items():
            node = self.graph.nodes[name]
            if node.kind == "shared":
                if info.counted and node.layer_name in shared_used:
                    layers.append(info)
            elif name in used:
                layers.append(info)
        return layers

    @property
    def total_params(self) -> int | None:
        layers = self.model_layers()
        if any(n.params is None for n in layers):
            return None
        return sum(n.params + (n.non_trainable_params or 0) for n in layers)  # type: ignore[operator]

    @property
    def trainable_params(self) -> int | None:
        layers = self.model_layers()
        if any(n.params is None for n in layers):
            return None
        return sum(n.params for n in layers)  # type: ignore[misc]


def reaching_outputs(graph: Graph) -> set[str]:
    """Names of the nodes whose result reaches a model output (what ``keras.Model`` keeps)."""
    used: set[str] = set()
    stack = [ref.name for ref in graph.outputs.values()]
    while stack:
        name = stack.pop()
        if name in used or name not in graph.nodes:
            continue
        used.add(name)
        stack.extend(ref.name for ref in graph.nodes[name].input_refs())
    return used


def layer_args(layer_type: str, args: dict[str, Any]) -> dict[str, Any]:
    """The spec's arguments over Keras' defaults (from the catalogue)."""
    entry = catalogue().layer(layer_type) or {"args": {}}
    merged = {name: meta["default"] for name, meta in entry["args"].items() if "default" in meta}
    merged.update(args)
    return merged


def infer_layer(layer_type: str, args: dict[str, Any], inputs: Inputs,
                call_args: dict[str, Any] | None = None) -> RuleResult | None:
    """Apply one layer's rule; None when the layer has no rule. Raises :class:`ShapeError`."""
    canonical = catalogue().canonical(layer_type) or layer_type
    rule = RULES.get(canonical) or plugin_rule(canonical)  # an enabled plugin's rule for its own layer
    if rule is None:
        return None
    merged = layer_args(canonical, args)
    for name in SHAPE_ARGUMENTS:
        value = merged.get(name)
        if isinstance(value, list) and len(value) > MAX_RANK:
            # Sizes are multiplied together: a long list would make check slow, not the model useful.
            raise ArgumentError(f"{canonical}: '{name}' has {len(value)} entries; graphspec supports tensors of at "
                                f"most {MAX_RANK} axes", argument=name)
    _check_numeric(canonical, inputs)
    result = rule(LayerCall(canonical, merged, inputs, dict(call_args or {})))
    if result is not None and merged.get("trainable") is False:
        # A frozen layer keeps its weights, none of them trained.
        result = RuleResult(result.outputs, 0, result.params + result.non_trainable_params)
    return result


MAX_RANK = 16
"""Most axes a shape argument may give (inputs have at most 8): bounds the work of every rule and hint."""
SHAPE_ARGUMENTS = ("target_shape", "output_shape", "dims", "noise_shape", "shared_axes")


STRING_LAYOUT_LAYERS = {"Identity", "Flatten", "Reshape", "Permute"}
"""Layers with a rule that only move values around, and so also take string tensors."""

STRING_INPUT_LAYERS = {"TextVectorization"}
"""Layers whose rule takes string tensors (and checks its input's dtype itself)."""


INTEGER_INPUT_LAYERS = {
    "Dense", "EinsumDense", "Embedding", "LeakyReLU", "Rescaling", "Normalization",
    "BatchNormalization", "LayerNormalization", "GroupNormalization",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "SimpleRNN", "GRU", "LSTM", "RNN", "Bidirectional", "TimeDistributed",
    "MultiHeadAttention", "GroupQueryAttention", "AdditiveAttention",
    "AugMix", "AutoContrast", "CenterCrop", "CutMix", "MixUp", "RandAugment", "RandomColorDegeneration",
    "RandomColorJitter", "RandomCrop", "RandomElasticTransform", "RandomErasing", "RandomFlip",
    "RandomGaussianBlur", "RandomGrayscale", "RandomHue", "RandomInvert", "RandomPerspective",
    "RandomPosterization", "RandomRotation", "RandomSharpness", "RandomShear", "RandomTranslation", "RandomZoom",
    "Solarization",
}
"""Layers with a rule that turn integer (and boolean) inputs into their compute dtype when they run.
Keras *builds* every layer on integer tensors with a float output, but most of them keep the integers
when they run (Dropout, MaxPooling, Add, ReLU, ...: the model's dtypes are not what Keras said) or
fail (convolutions, Softmax). ``tests/infer/test_rules_vs_keras.py`` runs each of these on integers."""


def _check_numeric(layer_type: str, inputs: Inputs) -> None:
    """Keras builds any layer on a string or integer tensor, but only some can run on one as built."""
    if layer_type in STRING_LAYOUT_LAYERS or layer_type in STRING_INPUT_LAYERS:
        return
    tensors = [inputs] if isinstance(inputs, TensorInfo) else list(inputs.values()) if isinstance(inputs, dict) \
        else [t for t in inputs if isinstance(t, TensorInfo)]
    tensors = [t for value in tensors for t in (value if isinstance(value, list) else [value])]  # initial_state: [h, c]
    for tensor in tensors:
        if tensor.dtype == "string":
            raise ShapeError(f"{layer_type} computes on numbers, but its input {tensor} holds strings",
                             hint="turn the strings into numbers first (a StringLookup, TextVectorization or "
                                  "Hashing node), or give the input a numeric dtype", code="dtype-mismatch")
        if layer_type not in INTEGER_INPUT_LAYERS and not is_float(tensor.dtype) and tensor.dtype != "string":
            raise ShapeError(f"{layer_type} does not cast its {tensor.dtype} input {tensor} to floats: Keras "
                             f"says it returns floats, but when the model runs it keeps the {tensor.dtype} "
                             "values or fails", code="dtype-mismatch",
                             hint="cast first: a Rescaling node with scale: 1.0 turns integers into floats "
                                  "(or give the input a float dtype)")


def _shape_of(values: list[int | None]) -> Shape:
    return (None, *values)


def infer(graph: Graph) -> InferredGraph:
    """Infer every node's output shapes; raises :class:`InferError` with every mismatch found."""
    sink = DiagnosticSink(source=graph.source)
    inputs = {name: TensorInfo(_shape_of(spec.shape), spec.dtype) for name, spec in graph.inputs.items()}
    infos: dict[str, NodeInfo] = {}
    shared_params: dict[str, tuple[int | None, str]] = {}

    def tensor(ref: TensorRef) -> TensorInfo | list[TensorInfo] | None:
        if ref.name in inputs:
            return inputs[ref.name]
        produced = infos[ref.name].outputs
        if produced is None:
            return None
        if ref.index is None:
            return produced
        if not isinstance(produced, list):
            if ref.index == 0:
                return produced
            raise _at(ShapeError(f"'{ref.name}' has one output; '{ref}' asks for output {ref.index}",
                                 hint=f"use '{ref.name}'", code="bad-output-index"), ref)
        if ref.index >= len(produced):
            raise _at(ShapeError(f"'{ref.name}' has {len(produced)} outputs; '{ref}' asks for output {ref.index}",
                                 hint=f"outputs are numbered 0..{len(produced) - 1}", code="bad-output-index"), ref)
        return produced[ref.index]

    for name, node in graph.nodes.items():
        try:
            structure = _gather(node, tensor)
        except ShapeError as error:
            _report(sink, node, error, ref_error=True)
            infos[name] = NodeInfo(None, None)
            continue
        if structure is None:
            unsafe = _needs_known_input(node)
            if unsafe:
                sink.error("unknown-input-shape",
                           f"node '{name}': {unsafe} needs its input's shape known to check, but the shape of "
                           "its input is known only when Keras builds the model", _input_path(node),
                           f"{unsafe} crashes the process (SIGFPE) for some input sizes; put a layer with a known "
                           "output shape before it (e.g. a Reshape), or use GlobalMaxPooling or MaxPooling",
                           key=node.spec.input is None)
            infos[name] = NodeInfo(None, None)
            continue
        try:
            info = _infer_node(node, structure)
        except ShapeError as error:
            if (isinstance(node.inputs, TensorRef) and isinstance(structure, list)
                    and error.code == "wrong-input-count"):
                ref = node.inputs
                error.hint = f"'{ref.name}' has {len(structure)} outputs: pick one, e.g. '{ref.name}[0]'"
            _report(sink, node, error)
            infos[name] = NodeInfo(None, None)
            continue
        except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, AttributeError):
            # A rule that cannot read an unusual argument (Keras accepts more forms than the
            # rules know) leaves the shape to Keras, which reports a real mistake at this
            # node's line at build time: `check` never fails with a traceback.
            infos[name] = NodeInfo(None, None)
            continue
        if node.kind == "shared":
            first = shared_params.get(node.layer_name)
            if first is None:
                shared_params[node.layer_name] = (info.params, name)
            else:
                info.counted = False
                if first[0] is not None and info.params is not None and first[0] != info.params:
                    sink.error("shared-layer-mismatch",
                               f"shared layer '{node.layer_name}' gets input {_describe(structure)} here, but its "
                               f"weights were built for the input of its first call, node '{first[1]}'",
                               _input_path(node),
                               "a shared layer has one set of weights: every call needs inputs of the same "
                               "feature sizes")
        infos[name] = info

    total = sum(i.params + (i.non_trainable_params or 0) for i in infos.values()
                if i.counted and i.params is not None)
    if total > MAX_PARAMS:
        sink.error("too-many-params", f"the model would have {total:,} parameters (more than {MAX_PARAMS:,})",
                   ("nodes",), "check the sizes (units, filters, input_dim) for a typo")

    outputs: dict[str, TensorInfo | None] = {}
    for out_name, ref in graph.outputs.items():
        try:
            value = tensor(ref)
        except ShapeError as error:
            sink.error(error.code, error.message, ref.path, error.hint)
            continue
        if isinstance(value, list):
            sink.error("multi-output", f"output '{out_name}' refers to all {len(value)} outputs of '{ref.name}'",
                       ref.path, f"pick one, e.g. '{ref.name}[0]'")
            continue
        outputs[out_name] = value
    sink.raise_if_errors(InferError)
    return InferredGraph(graph=graph, nodes=infos, inputs=inputs, outputs=outputs, warnings=sink.sorted())


def _at(error: ShapeError, ref: TensorRef) -> ShapeError:
    """The error, located at the reference that caused it."""
    error.path = ref.path
    return error


def _gather(node: GraphNode, tensor) -> Inputs | None:
    """The node's input tensors in the structure of its spec; None if any is unknown.

    One reference to a node with several outputs gives the list of them (what Keras'
    call receives); inside a list or mapping of references each must name one tensor.
    """
    if isinstance(node.inputs, TensorRef):
        return tensor(node.inputs)
    refs = node.input_refs()
    values = [tensor(ref) for ref in refs]
    for ref, value in zip(refs, values):
        if isinstance(value, list):
            raise _at(ShapeError(f"'{ref.name}' has {len(value)} outputs; inside a list or mapping of inputs each "
                                 "reference must name one of them", hint=f"pick one, e.g. '{ref.name}[0]'",
                                 code="multi-output"), ref)
    if any(v is None for v in values):
        return None
    if isinstance(node.inputs, list):
        return values  # type: ignore[return-value]
    found = dict(zip(map(id, refs), values))
    # A call argument given a list of references (initial_state: [h, c]) receives the list of tensors.
    return {key: [found[id(r)] for r in value] if isinstance(value, list) else found[id(value)]
            for key, value in node.inputs.items()}  # type: ignore[return-value]


def _unsafe_layer(layer_type: Any, args: dict) -> str | None:
    """The layer class (this one or one nested in its arguments) that check must see run on a known
    shape: Adaptive max pooling crashes the process (SIGFPE) for some input sizes."""
    from graphspec.infer.rules.convolution import ADAPTIVE_MAX

    canonical = catalogue().canonical(layer_type) if isinstance(layer_type, str) else None
    if canonical in ADAPTIVE_MAX:
        return canonical
    for value in args.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and isinstance(item.get("type"), str):
                found = _unsafe_layer(item["type"], item)
                if found:
                    return found
    return None


def _needs_known_input(node: GraphNode) -> str | None:
    """The layer class in this node that check must see run on a known shape, if any."""
    if node.kind in ("layer", "shared"):
        return _unsafe_layer(node.layer_type, node.layer_args)
    if node.kind == "sequential":
        for layer in node.spec.sequential:
            found = _unsafe_layer(layer.type, layer.args)
            if found:
                return found
    return None


def _infer_node(node: GraphNode, structure: Inputs) -> NodeInfo:
    if node.kind == "op":  # a keras.ops call: no weights
        from graphspec.infer.rules.ops import infer_op

        return NodeInfo(infer_op(node.spec.op, node.layer_args, structure).outputs, 0, 0)
    if node.kind in ("layer", "shared"):
        result = infer_layer(node.layer_type, node.layer_args, structure, node.spec.call)
        if result is None:
            return NodeInfo(None, None)
        return NodeInfo(result.outputs, result.params, result.non_trainable_params)
    if node.kind == "sequential":
        params = 0
        non_trainable = 0
        current: Any = structure
        for i, layer in enumerate(node.spec.sequential):
            try:
                result = infer_layer(layer.type, layer.args, current)
            except ShapeError as error:
                if not error.argument:
                    error.argument = "type"
                raise blame(error, ("sequential", i))
            if result is None:
                unsafe = next(filter(None, (_unsafe_layer(later.type, later.args)
                                            for later in node.spec.sequential[i + 1:])), None)
                if unsafe:
                    raise ShapeError(f"{unsafe} in this block needs its input's shape known to check, but "
                                     f"{layer.type} before it has no shape rule", code="unknown-input-shape",
                                     hint=f"{unsafe} crashes the process (SIGFPE) for some input sizes; "
                                          "use GlobalMaxPooling or MaxPooling")
                return NodeInfo(None, None)
            current = result.outputs
            params += result.params
            non_trainable += result.non_trainable_params
        if not node.spec.trainable:
            non_trainable, params = non_trainable + params, 0
        return NodeInfo(current, params, non_trainable)
    if node.kind == "model":  # a saved model: graphspec's rules over its config.json (or unknown)
        from graphspec.infer.saved_model import infer_saved_model

        result = infer_saved_model(node.model_file, structure, node.spec.trainable)
        if result is not None:
            return NodeInfo(result.outputs, result.params, result.non_trainable_params)
    return NodeInfo(None, None)


def _describe(structure: Inputs) -> str:
    if isinstance(structure, TensorInfo):
        return str(structure)
    if isinstance(structure, list):
        return "[" + ", ".join(str(t) for t in structure) + "]"
    return "{" + ", ".join(f"{k}: {v}" for k, v in structure.items()) + "}"


def _input_path(node: GraphNode) -> Path:
    return node.path + ("input",) if node.spec.input is not None else node.path


def _report(sink: DiagnosticSink, node: GraphNode, error: ShapeError, *, ref_error: bool = False) -> None:
    if error.path is not None:
        path = tuple(error.path)
    elif error.argument:
        argument = error.argument if isinstance(error.argument, tuple) else (error.argument,)
        argument = tuple(p for p in argument if p is not None)
        path = node.path + argument
        if node.kind == "shared":
            path = ("layers", node.layer_name) + argument
    else:
        path = _input_path(node)
    message = error.message if ref_error else f"node '{node.name}': {error.message}"
    at_key = error.path is None and not error.argument and node.spec.input is None
    sink.error(error.code, message, path, error.hint, key=at_key)
