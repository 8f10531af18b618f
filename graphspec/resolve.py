"""Stage 3 — resolve: a :class:`Spec` to a :class:`Graph` of calls.

Names become references; the default input of a node (the node before it in the
file) is made explicit; the nodes are put in topological order by an iterative
sort that scales to tens of thousands of nodes. Like Keras' own functional graph,
a node is one *call* of a layer, separate from the layer itself, so calling a
shared layer twice never makes a cycle.
"""

from __future__ import annotations

import heapq
import json
import re
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any, Literal, Union

from graphspec.errors import Diagnostic, DiagnosticSink, Path, ResolveError, did_you_mean, suggestion_budget
from graphspec.files import confined_path, spec_data_paths
from graphspec.plugins import used_plugins
from graphspec.schema import LayerNode, ModelNode, OpNode, SequentialNode, SharedCall, Spec
from graphspec.source import SourceMap

_REF = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[([0-9]+)\])?$")


@dataclass(frozen=True)
class TensorRef:
    """One tensor: an input's or a node's output (``index`` picks one of several outputs)."""

    name: str
    index: int | None = None
    path: Path = ()
    """Where the reference is written in the spec."""

    def __str__(self) -> str:
        return self.name if self.index is None else f"{self.name}[{self.index}]"


InputStructure = Union[TensorRef, list[TensorRef], dict[str, Union[TensorRef, list[TensorRef]]]]
"""One reference, a list, or call-argument name -> a reference or a list of them (``initial_state: [h, c]``)."""


@dataclass
class GraphNode:
    """One call of a layer in the graph."""

    name: str
    kind: Literal["layer", "shared", "sequential", "model", "op"]
    spec: Any
    """The node's validated spec (LayerNode, SharedCall, SequentialNode, ModelNode or OpNode)."""
    inputs: InputStructure
    """What the call receives, in the structure the spec gave (one, a list, or by call argument)."""
    layer_name: str
    """The Keras layer's name: the node's own, or the shared layer's for a shared call."""
    layer_type: str | None
    """The Keras layer class name, when the node is a plain layer or a shared-layer call."""
    layer_args: dict[str, Any] = field(default_factory=dict)
    model_file: FsPath | None = None
    """For a saved-model node: the checked absolute path of its ``.keras`` file."""

    @property
    def path(self) -> Path:
        return ("nodes", self.name)

    def input_refs(self) -> list[TensorRef]:
        if isinstance(self.inputs, TensorRef):
            return [self.inputs]
        if isinstance(self.inputs, list):
            return list(self.inputs)
        return [ref for value in self.inputs.values() for ref in (value if isinstance(value, list) else [value])]


@dataclass
class Graph:
    """The resolved model: inputs, nodes in topological order, outputs by output name."""

    spec: Spec
    source: SourceMap
    nodes: dict[str, GraphNode]
    """Node name -> node, in a topological order (file order where the file allows it)."""
    outputs: dict[str, TensorRef]
    warnings: list[Diagnostic] = field(default_factory=list)
    weights_file: FsPath | None = None
    """The checked absolute path of the spec's ``weights:`` file (loaded by emit after building)."""
    plugins: tuple = ()
    """The enabled plugins whose layers the spec uses (:func:`graphspec.plugins.used_plugins`): they are
    part of the spec hash and of the artifact's metadata, and emit builds their layers."""

    @property
    def inputs(self):
        return self.spec.inputs


def _parse_ref(text: str, path: Path) -> TensorRef:
    match = _REF.match(text)
    assert match, text  # the schema's pattern already guaranteed the form
    index = match.group(2)
    return TensorRef(match.group(1), int(index) if index is not None else None, path)


def _structure(raw: Any, path: Path) -> InputStructure:
    if isinstance(raw, str):
        return _parse_ref(raw, path)
    if isinstance(raw, list):
        return [_parse_ref(r, path + (i,)) for i, r in enumerate(raw)]
    return {k: [_parse_ref(x, path + (k, i)) for i, x in enumerate(r)] if isinstance(r, list)
            else _parse_ref(r, path + (k,)) for k, r in raw.items()}


def saved_model_file(raw: str, base: FsPath, where: Path, sink: DiagnosticSink) -> FsPath | None:
    """The ``.keras`` file a ``model:`` node names, if it is inside the spec's folder and exists."""
    target = confined_path(raw, base, where, sink, what="a saved model")
    if target is None:
        return None
    if target.suffix != ".keras":
        sink.error("bad-saved-model", f"'{raw}' is not a .keras file", where,
                   "only Keras 3 '.keras' archives are loaded (never SavedModel or HDF5)")
        return None
    try:
        found = target.is_file()
    except OSError as exc:  # e.g. a folder on the way that cannot be read
        sink.error("file-unreadable", f"cannot read the saved model '{raw}': {exc.strerror or exc}", where)
        return None
    if not found:
        sink.error("file-not-found", f"no saved model at '{raw}'", where)
        return None
    return target if _saved_model_is_plain_keras(target, raw, where, sink) else None


def _saved_model_is_plain_keras(path: FsPath, raw: str, where: Path, sink: DiagnosticSink) -> bool:
    """Whether a ``.keras`` archive names only Keras' own classes, none that runs code or reads files.

    A pull request can ship the saved model along with the spec; Keras' ``safe_mode`` is
    the second line of defence, not the only one. Read in pure Python (no Keras import).
    """
    def refuse(why: str) -> bool:
        sink.error("unsafe-saved-model", f"'{raw}' cannot be used: {why}", where,
                   "a saved model used as a layer may hold only built-in Keras layers and objects")
        return False

    import zipfile  # here: only specs with a model: node read an archive, and check starts fresh per file

    from graphspec.keras_config import MAX_CONFIG_BYTES, first_refusal

    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                return refuse("its config.json is too large")
            config = json.loads(archive.read(info))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        return refuse(f"it is not a Keras 3 archive ({exc})")
    refusal = first_refusal(config)
    if refusal is None:
        return True
    return refuse({
        "unsafe-class": f"it holds a '{refusal.class_name}' layer, which runs code or reads files",
        "foreign-class": f"it names the class '{refusal.class_name}' from module '{refusal.module}'",
        "registered-object": f"it names the registered object '{refusal.registered_name}'",
        "vocabulary-file": f"its {refusal.class_name} reads its vocabulary from a file",
    }[refusal.kind])


def resolve(spec: Spec, source: SourceMap, base_dir: FsPath | None = None, *, check_files: bool = True) -> Graph:
    """Resolve names (and the files the spec names, relative to ``base_dir``) into a sorted graph.

    ``check_files=False`` skips the files: for a spec read back from a built model, whose
    saved-model layers are already inside it. Raises :class:`ResolveError` with every broken
    reference found.
    """
    with suggestion_budget():  # 'did you mean' hints: bounded work for the whole stage
        return _resolve(spec, source, base_dir, check_files)


def _resolve(spec: Spec, source: SourceMap, base_dir: FsPath | None, check_files: bool) -> Graph:
    sink = DiagnosticSink(source=source)
    base_dir = base_dir if base_dir is not None else FsPath.cwd()
    inputs = spec.inputs
    layers = spec.layers

    # Keras layer names must be unique across the model: inputs, shared layers and nodes.
    for name in spec.nodes:
        if name in inputs:
            sink.error("duplicate-name", f"'{name}' is both an input and a node", ("nodes", name),
                       "every input, shared layer and node needs its own name", key=True)
        if name in layers:
            sink.error("duplicate-name", f"'{name}' is both a shared layer and a node", ("nodes", name),
                       "name the node after what it computes, e.g. '{name}_out'".replace("{name}", name), key=True)
    for name in layers:
        if name in inputs:
            sink.error("duplicate-name", f"'{name}' is both an input and a shared layer", ("layers", name), key=True)

    known = list(inputs) + list(spec.nodes)
    nodes: dict[str, GraphNode] = {}
    previous: str | None = None
    for name, node in spec.nodes.items():
        path = ("nodes", name)
        if node.input is None:
            if previous is not None:
                structure: InputStructure = TensorRef(previous, None, path)
            elif len(inputs) == 1:
                structure = TensorRef(next(iter(inputs)), None, path)
            else:
                sink.error("missing-input", f"node '{name}' is the first node and does not say its input",
                           path, f"add 'input:' with one of: {', '.join(inputs)}")
                structure = []
        else:
            structure = _structure(node.input, path + ("input",))
            if isinstance(structure, (list, dict)) and not structure:
                sink.error("missing-input", f"node '{name}' has an empty 'input'", path + ("input",))
            for key, value in (structure.items() if isinstance(structure, dict) else ()):
                if isinstance(value, list) and not value:
                    sink.error("missing-input", f"node '{name}': call argument '{key}' is an empty list",
                               path + ("input", key), "give one or more references, or leave the argument out")
        if isinstance(node, LayerNode):
            kind, layer_name, layer_type, args = "layer", name, node.type, node.args
        elif isinstance(node, SharedCall):
            kind, layer_name = "shared", node.shared
            shared = layers.get(node.shared)
            if shared is None:
                sink.error("unknown-shared-layer", f"no shared layer named '{node.shared}'", path + ("shared",),
                           did_you_mean(node.shared, layers) or "declare it under 'layers:'")
                layer_type, args = None, {}
            else:
                layer_type, args = shared.type, shared.args
        elif isinstance(node, SequentialNode):
            kind, layer_name, layer_type, args = "sequential", name, None, {}
        elif isinstance(node, OpNode):  # a keras.ops call: layer_args are the op's inline arguments
            kind, layer_name, layer_type, args = "op", name, None, node.args
        else:
            assert isinstance(node, ModelNode)
            kind, layer_name, layer_type, args = "model", name, None, {}
        nodes[name] = GraphNode(name=name, kind=kind, spec=node, inputs=structure, layer_name=layer_name,
                                layer_type=layer_type, layer_args=args)
        if isinstance(node, ModelNode) and check_files:
            nodes[name].model_file = saved_model_file(node.model, base_dir, path + ("model",), sink)
        previous = name

    def check_ref(ref: TensorRef, where: str) -> bool:
        if ref.name in inputs:
            if ref.index is not None:
                sink.error("bad-reference", f"input '{ref.name}' has one tensor; '{ref}' indexes it", ref.path,
                           f"use '{ref.name}'")
                return False
            return True
        if ref.name in nodes:
            return True
        sink.error("unknown-reference", f"{where} refers to '{ref.name}', which is neither an input nor a node",
                   ref.path, did_you_mean(ref.name, known) or f"known names: {', '.join(known[:12])}")
        return False

    for node in nodes.values():
        for ref in node.input_refs():
            check_ref(ref, f"node '{node.name}'")

    outputs: dict[str, TensorRef] = {}
    if isinstance(spec.outputs, dict):
        for out_name, ref_text in spec.outputs.items():
            outputs[out_name] = _parse_ref(ref_text, ("outputs", out_name))
    else:
        for i, ref_text in enumerate(spec.outputs):
            ref = _parse_ref(ref_text, ("outputs", i))
            out_name = ref.name if ref.index is None else f"{ref.name}_{ref.index}"
            if out_name in outputs:
                first = str(outputs[out_name])
                message = (f"'{ref_text}' is listed twice in outputs" if first == ref_text else
                           f"'{ref_text}' and '{first}' would both be named '{out_name}'")
                sink.error("duplicate-output", message, ref.path,
                           "name the outputs yourself with the mapping form: {name: reference}")
            outputs[out_name] = ref
    for out_name, ref in outputs.items():
        if check_ref(ref, f"output '{out_name}'") and ref.name in inputs:
            sink.error("output-is-input", f"output '{out_name}' is the input '{ref.name}' itself", ref.path,
                       "an output must be computed by a node; add an Identity node if you need a pass-through")

    _check_output_keys(spec, outputs, sink)
    if check_files and isinstance(_train_data(spec), dict):
        # Data files are opened only by `train`, but an escaping path is flagged here, by `check`.
        for where, raw in spec_data_paths(_train_data(spec)):
            confined_path(raw, base_dir, where, sink, what="training data")
    weights_file = _weights_file(spec.weights, base_dir, sink) if check_files and spec.weights else None
    if sink.has_errors:
        raise ResolveError(sink.sorted())

    order = _topological_order(nodes, sink)
    if order is None:
        raise ResolveError(sink.sorted())
    sorted_nodes = {name: nodes[name] for name in order}

    _warn_unused(spec, sorted_nodes, outputs, sink)
    return Graph(spec=spec, source=source, nodes=sorted_nodes, outputs=outputs, warnings=sink.sorted(),
                 plugins=used_plugins(spec), weights_file=weights_file)


def _weights_file(raw: str, base: FsPath, sink: DiagnosticSink) -> FsPath | None:
    """The spec's ``weights:`` file, if it is a ``.weights.h5`` file inside the spec's folder and exists."""
    target = confined_path(raw, base, ("weights",), sink, what="a weights file")
    if target is None:
        return None
    if not target.name.endswith(".weights.h5"):
        sink.error("bad-weights-file", f"'{raw}' is not a .weights.h5 file", ("weights",),
                   "Keras 3 weights files end in .weights.h5 (graphspec import --weights writes one)")
        return None
    if not target.is_file():
        sink.error("file-not-found", f"no weights file at '{raw}'", ("weights",))
        return None
    return target


def _train_data(spec: Spec) -> dict | None:
    """The train section as plain data (it is validated by its own model)."""
    train = spec.train
    if train is None:
        return None
    return train.model_dump(mode="json") if hasattr(train, "model_dump") else train


def _check_output_keys(spec: Spec, outputs: dict[str, TensorRef], sink: DiagnosticSink) -> None:
    """Per-output settings (losses, weights, metrics, expected shapes) must name real outputs."""
    names = list(outputs)
    sections: list[tuple[Path, Any]] = []
    if spec.compile is not None:
        for key in ("loss", "loss_weights", "metrics", "weighted_metrics"):
            value = getattr(spec.compile, key)
            if isinstance(value, dict) and not hasattr(value, "type"):
                sections.append((("compile", key), value))
            if key == "loss_weights" and isinstance(value, list) and len(value) != len(names):
                sink.error("bad-loss-weights", f"{len(value)} loss weights for {len(names)} outputs",
                           ("compile", key))
    if spec.expect is not None and spec.expect.output_shapes:
        sections.append((("expect", "output_shapes"), spec.expect.output_shapes))
    for path, mapping in sections:
        for key in mapping:
            if key not in outputs:
                sink.error("unknown-output", f"'{key}' is not an output of the model", path + (key,),
                           did_you_mean(key, names) or f"the outputs are: {', '.join(names)}", key=True)


def _topological_order(nodes: dict[str, GraphNode], sink: DiagnosticSink) -> list[str] | None:
    """Kahn's algorithm, preferring file order; reports a cycle by its members."""
    position = {name: i for i, name in enumerate(nodes)}
    indegree = {name: 0 for name in nodes}
    consumers: dict[str, list[str]] = {name: [] for name in nodes}
    for node in nodes.values():
        for producer in {ref.name for ref in node.input_refs() if ref.name in nodes}:
            indegree[node.name] += 1
            consumers[producer].append(node.name)
    ready = [position[name] for name, degree in indegree.items() if degree == 0]
    heapq.heapify(ready)
    names = list(nodes)
    order: list[str] = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for consumer in consumers[name]:
            indegree[consumer] -= 1
            if indegree[consumer] == 0:
                heapq.heappush(ready, position[consumer])
    if len(order) == len(nodes):
        return order

    # Some nodes are on or behind a cycle: walk producers among them until one repeats.
    remaining = {name for name, degree in indegree.items() if degree > 0}
    start = min(remaining, key=position.__getitem__)
    seen: dict[str, int] = {}
    walk: list[str] = []
    current = start
    while current not in seen:
        seen[current] = len(walk)
        walk.append(current)
        current = next(ref.name for ref in nodes[current].input_refs() if ref.name in remaining)
    cycle = walk[seen[current]:]
    cycle.reverse()  # producers first: a -> b means b takes a's output
    first = min(cycle, key=position.__getitem__)
    i = cycle.index(first)
    cycle = cycle[i:] + cycle[:i]
    text = " -> ".join(cycle + [cycle[0]])
    sink.error("cycle", f"the graph has a cycle: {text}", ("nodes", first, "input")
               if nodes[first].spec.input is not None else ("nodes", first),
               "a node cannot depend on its own output; break the cycle by changing one 'input:'")
    return None


def _warn_unused(spec: Spec, nodes: dict[str, GraphNode], outputs: dict[str, TensorRef],
                 sink: DiagnosticSink) -> None:
    used: set[str] = set()
    stack = [ref.name for ref in outputs.values()]
    while stack:
        name = stack.pop()
        if name in used:
            continue
        used.add(name)
        if name in nodes:
            stack.extend(ref.name for ref in nodes[name].input_refs())
    for name in nodes:
        if name not in used:
            sink.warning("unused-node", f"node '{name}' does not lead to any output", ("nodes", name),
                         "Keras will leave it out of the model; remove it or use its output", key=True)
    for name in spec.inputs:
        if name not in used:
            sink.warning("unused-input", f"input '{name}' is not used by any output", ("inputs", name), key=True)
    shared_used = {node.layer_name for node in nodes.values() if node.kind == "shared"}
    for name in spec.layers:
        if name not in shared_used:
            sink.warning("unused-shared-layer", f"shared layer '{name}' is never called", ("layers", name), key=True)
