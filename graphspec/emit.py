"""Stage 5 — emit: a checked spec to a plain, compiled ``keras.Model``.

This is the first stage that imports Keras (and so TensorFlow). Layers are
instantiated from the allow-listed catalogue by class name — never through
Keras' generic deserializers — and called in topological order. Any error Keras
raises while building a node is reported at that node's line.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from pathlib import Path as FsPath
from typing import Any

from graphspec.canonical import canonical_json, graph_hash, saved_model_digests, spec_hash
from graphspec.catalogue import NESTED_LAYER_ARGS, catalogue, nested_namespace
from graphspec.errors import Diagnostic, DiagnosticSink, EmitError
from graphspec.files import AtomicFile
from graphspec.pipeline import CheckedSpec
from graphspec.plugins import plugin_class, using as using_plugins
from graphspec.resolve import GraphNode, TensorRef

_NAMESPACE_MODULES = {
    "initializers": "initializers",
    "regularizers": "regularizers",
    "constraints": "constraints",
    "optimizers": "optimizers",
    "schedules": "optimizers.schedules",
    "losses": "losses",
    "metrics": "metrics",
}


def _keras():
    import keras

    return keras


def _module(namespace: str):
    module: Any = _keras()
    for part in _NAMESPACE_MODULES[namespace].split("."):
        module = getattr(module, part)
    return module


def make_object(namespace: str, value: Any) -> Any:
    """A Keras object from a validated name or ``{type: Class, ...args}`` of an allow-listed namespace.

    Names are handed to Keras as strings (Keras resolves them in that namespace alone), except
    those Keras' ``get()`` cannot resolve (the catalogue lists them: ``Constant``, ``l1_l2``, ...),
    which graphspec builds itself from the class (without arguments) or the function the name
    refers to. Mappings are instantiated from the class the catalogue names, with plain-data
    arguments; an optimizer's ``learning_rate`` schedule and a LossScaleOptimizer's
    ``inner_optimizer`` are built the same way.
    """
    if value is None:
        return value
    if isinstance(value, str):
        if not catalogue().built_by_graphspec(namespace, value):
            return value
        class_name = catalogue().object_class(namespace, value)
        if class_name is not None:
            return getattr(_module(namespace), class_name)()
        return getattr(_module(namespace), value)
    config = dict(value) if isinstance(value, dict) else {"type": value.type, **value.args}
    class_name = catalogue().object_class(namespace, config.pop("type"))
    if class_name is None:  # the schema stage refuses these; a guard for specs built in Python
        raise EmitError([Diagnostic(code="unknown-object", message=f"not an allowed {namespace} class: {value!r}")])
    cls = getattr(_module(namespace), class_name)
    args = {}
    for key, arg in config.items():
        if namespace == "optimizers" and key == "learning_rate" and isinstance(arg, dict):
            arg = make_object("schedules", arg)
        elif namespace == "optimizers" and key == "inner_optimizer":
            arg = make_object("optimizers", arg)
            if isinstance(arg, str):  # a name: the optimizer class Keras resolves it to, built here
                arg = _keras().optimizers.get(arg)
        args[key] = _plain(arg)
    return cls(**args)


def _plain(value: Any) -> Any:
    """Lists become tuples (what Keras expects for sizes, strides, shapes)."""
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


def make_layer(layer_type: str, args: dict[str, Any], name: str | None = None):
    """Instantiate a Keras layer of an allow-listed class from plain-data arguments."""
    cat = catalogue()
    canonical = cat.canonical(layer_type)
    entry = cat.layer(layer_type)
    if canonical is None or entry is None or "denied" in entry:
        # The schema stage refuses these; this guards specs built in Python without it.
        raise EmitError([Diagnostic(code="denied-layer-type", message=f"'{layer_type}' cannot be built from a spec")])
    cls = plugin_class(canonical) or getattr(_keras().layers, canonical)  # an enabled plugin's layer, or Keras'
    kwargs: dict[str, Any] = {}
    for key, value in args.items():
        namespace = nested_namespace(key)
        if key in NESTED_LAYER_ARGS and isinstance(value, dict):
            kwargs[key] = make_layer(value["type"], {k: v for k, v in value.items() if k != "type"})
        elif key in NESTED_LAYER_ARGS and isinstance(value, list):
            kwargs[key] = [make_layer(v["type"], {k: x for k, x in v.items() if k != "type"}) for v in value]
        elif namespace is not None and namespace != "activations":
            kwargs[key] = make_object(namespace, value)
        elif key in entry.get("list_only_args", ()):
            kwargs[key] = list(value) if value is not None else None
        else:
            kwargs[key] = _plain(value)
    if name is not None:
        kwargs["name"] = name
    return cls(**kwargs)


_KERAS_NOISE = re.compile(r"^(Exception encountered when calling|Arguments received by|[•*] )")


def _first_line(exc: BaseException) -> str:
    """Keras' message without its call-site boilerplate ('Arguments received by ...')."""
    text = str(exc).strip() or type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip() and not _KERAS_NOISE.match(line.strip())]
    message = lines[0] if lines else text.splitlines()[0]
    for line in lines[1:4]:
        if len(message) > 300:
            break
        message += " " + line
    return message[:600]


def _blamed_argument(message: str, args: dict[str, Any]) -> str | None:
    """The one constructor argument a Keras message names (``rate=1.5``, ``'rate'``), if exactly one."""
    named = [key for key in args if re.search(rf"(?<![A-Za-z0-9_])[`'\"]?{re.escape(key)}[`'\"]?\s*(=|:|\bmust\b|\bshould\b)", message)]
    return named[0] if len(named) == 1 else None


class _Builder:
    def __init__(self, checked: CheckedSpec, sink: DiagnosticSink):
        self.checked = checked
        self.sink = sink
        self.keras = _keras()
        self.tensors: dict[str, Any] = {}
        self.shared: dict[str, Any] = {}

    def tensor(self, ref: TensorRef):
        value = self.tensors.get(ref.name)
        if value is None or ref.index is None:
            return value
        if isinstance(value, (list, tuple)):
            return value[ref.index]
        return value if ref.index == 0 else None

    def inputs_of(self, node: GraphNode):
        if isinstance(node.inputs, TensorRef):
            return self.tensor(node.inputs)
        if isinstance(node.inputs, list):
            return [self.tensor(r) for r in node.inputs]
        return {k: [self.tensor(x) for x in r] if isinstance(r, list) else self.tensor(r)
                for k, r in node.inputs.items()}  # initial_state: [h, c] is a list of tensors

    def layer_for(self, node: GraphNode):
        spec = node.spec
        if node.kind == "layer":
            return make_layer(node.layer_type, node.layer_args, node.name)
        if node.kind == "shared":
            if node.layer_name not in self.shared:
                self.shared[node.layer_name] = make_layer(node.layer_type, node.layer_args, node.layer_name)
            return self.shared[node.layer_name]
        if node.kind == "sequential":
            block = self.keras.Sequential([make_layer(layer.type, layer.args, layer.name) for layer in spec.sequential],
                                          name=node.name)
            block.trainable = spec.trainable
            return block
        return self.load_model(node)

    def load_model(self, node: GraphNode):
        assert node.model_file is not None  # resolve checked the path
        try:
            loaded = self.keras.saving.load_model(str(node.model_file), compile=False, safe_mode=True)
        except Exception as exc:  # Keras raises many types for a bad file; all are the user's to fix
            self.sink.error("bad-saved-model", f"cannot load '{node.spec.model}': {_first_line(exc)}",
                            node.path + ("model",), "it must be a .keras file saved by Keras 3 with built-in layers")
            return None
        if getattr(loaded, "inputs", None) and loaded.name != node.name:
            # A functional wrapper gives the node's name without touching the loaded layers.
            inputs = loaded.inputs[0] if len(loaded.inputs) == 1 else loaded.inputs
            outputs = loaded.outputs[0] if len(loaded.outputs) == 1 else loaded.outputs
            loaded = self.keras.Model(inputs, outputs, name=node.name)
        loaded.trainable = node.spec.trainable
        return loaded

    def build_node(self, node: GraphNode) -> None:
        args = self.inputs_of(node)
        flat = args if isinstance(args, list) else list(args.values()) if isinstance(args, dict) else [args]
        flat = [t for value in flat for t in (value if isinstance(value, list) else [value])]
        if any(t is None for t in flat):
            return  # an upstream node failed and was reported
        if node.kind == "op":
            self.build_op(node, args)
            return
        try:
            layer = self.layer_for(node)
            if layer is None:
                return
            if isinstance(args, dict):
                first = _first_call_argument(node)
                if first in args:
                    # The main tensor positionally, as Keras code writes it: layer(x, initial_state=[h, c]).
                    # (Keras orders a model's layers by walking each call's arguments in this order.)
                    rest = {k: v for k, v in args.items() if k != first}
                    output = layer(args[first], **rest, **node.spec.call)
                else:
                    output = layer(**args, **node.spec.call)
            elif isinstance(args, list) and _spreads_list(node):
                output = layer(*args, **node.spec.call)
            else:
                output = layer(args, **node.spec.call)
        except Exception as exc:  # a Keras error is a user mistake in this node: report it at its line
            message = _first_line(exc)
            argument = _blamed_argument(message, node.layer_args) if node.kind == "layer" else None
            path = node.path + (argument,) if argument else node.path
            self.sink.add(Diagnostic(code="keras-error", message=f"node '{node.name}': {message}",
                                     path=path, hint=_keras_hint(exc)), key=True)
            return
        settle_frozen(layer)
        self.tensors[node.name] = list(output) if isinstance(output, tuple) else output


    def build_op(self, node: GraphNode, args) -> None:
        """Call the allow-listed ``keras.ops`` function on the operands: Keras records it in the graph as its
        own operation (saved and loaded by Keras, with ``safe_mode=True``, without graphspec)."""
        from graphspec.infer.rules.ops import bind_op

        name = node.spec.op
        if catalogue().op(name) is None:  # the schema refused it already; never look up anything else
            self.sink.error("unknown-op", f"op '{name}' is not allowed", node.path + ("op",))
            return
        function = getattr(self.keras.ops, name)
        try:
            positional, kwargs = bind_op(name, args, node.layer_args)
            output = function(*positional, **kwargs)
        except Exception as exc:  # a Keras error is a user mistake in this node: report it at its line
            message = _first_line(exc)
            argument = _blamed_argument(message, node.layer_args)
            self.sink.add(Diagnostic(code="keras-error", message=f"node '{node.name}': {message}",
                                     path=node.path + ((argument,) if argument else ()), hint=None), key=True)
            return
        history = getattr(output, "_keras_history", None)
        operands = positional if isinstance(positional, list) else []
        if history is not None and all(getattr(t, "_keras_history", None) is None
                                       or t._keras_history.operation is not history.operation for t in operands):
            # The operation is named after its node, as layers are: Keras' automatic name ('add') could be
            # the name of another node's layer, and a model's names must be unique.
            history.operation.name = node.name
        self.tensors[node.name] = output


def settle_frozen(layer) -> None:
    """Freeze, now that it is built, everything inside a layer built with ``trainable: false``.

    Keras passes a layer's ``trainable`` flag to the sublayers and variables that exist when it
    is set; a layer frozen in its constructor creates some later (MultiHeadAttention's
    projections, in ``build()``), and those would stay trainable in the model. Setting the flag
    again once the layer is built freezes them, as ``check`` counts them.
    """
    layer_class = _keras().layers.Layer
    for sub in layer._flatten_layers(include_self=True, recursive=True):
        if not sub.trainable:
            # Through the property itself: an attribute assignment goes through TensorFlow's
            # tracking __setattr__, which does not always reach Keras' setter.
            layer_class.trainable.fset(sub, False)


def _first_call_argument(node: GraphNode) -> str | None:
    """The name of the first argument of the node's layer's ``call()`` (``inputs``, ``sequences``, ``query``)."""
    entry = catalogue().layer(node.layer_type) if node.layer_type else None
    return entry["call_args"][0] if entry and entry["call_args"] else None


def _spreads_list(node: GraphNode) -> bool:
    """Whether a list ``input:`` is the layer's positional call arguments (``query, value`` of
    MultiHeadAttention) rather than one list argument (``inputs`` of Concatenate, Attention)."""
    entry = catalogue().layer(node.layer_type) if node.layer_type else None
    return bool(entry) and bool(entry["call_args"]) and entry["call_args"][0] != "inputs"


def _keras_hint(exc: BaseException) -> str | None:
    text = str(exc)
    if "incompatible with the layer" in text:
        return "the input's shape does not fit this layer; check 'input:' and the shapes above it"
    if "unexpected keyword argument" in text or "got an unexpected" in text:
        return "an argument is not accepted by this layer"
    return None


def emit(checked: CheckedSpec, *, compile: bool = True):
    """Build (and by default compile) the ``keras.Model``; raises :class:`EmitError`."""
    with using_plugins(checked.graph.plugins):  # the plugins whose layers the spec uses, enabled at check
        return _emit(checked, compile=compile)


def _emit(checked: CheckedSpec, *, compile: bool) -> Any:
    keras = _keras()
    spec = checked.spec
    sink = DiagnosticSink(source=checked.loaded.source)
    builder = _Builder(checked, sink)
    model_inputs = []
    for name, inp in spec.inputs.items():
        tensor = keras.Input(shape=tuple(inp.shape), dtype=inp.dtype, name=name, sparse=inp.sparse)
        builder.tensors[name] = tensor
        model_inputs.append(tensor)
    for node in checked.graph.nodes.values():
        builder.build_node(node)
    sink.raise_if_errors(EmitError)

    outputs = {name: builder.tensor(ref) for name, ref in checked.graph.outputs.items()}
    if not isinstance(spec.outputs, dict):
        # Keras names a list output after the layer that produced it; where that is not the
        # output's name (a shared layer's call, one output of a multi-output layer), an
        # Identity layer carries the output name, so losses and metrics keyed by it apply.
        for name, tensor in outputs.items():
            history = getattr(tensor, "_keras_history", None)
            if history is not None and history.operation.name != name:
                # In the tensor's own dtype: an Identity of the default policy would cast a float64 or
                # float16 output to float32 when the model runs (while Keras' symbolic dtype keeps it).
                floating = keras.backend.is_float_dtype(tensor.dtype)
                outputs[name] = keras.layers.Identity(name=name, **({"dtype": tensor.dtype} if floating else {}))(
                    tensor)
    if isinstance(spec.outputs, dict):
        model_outputs: Any = outputs
    elif len(outputs) == 1:
        model_outputs = next(iter(outputs.values()))
    else:
        model_outputs = list(outputs.values())
    try:
        model = keras.Model(inputs=model_inputs[0] if len(model_inputs) == 1 else model_inputs,
                            outputs=model_outputs, name=spec.name)
    except Exception as exc:  # e.g. a graph Keras cannot connect
        sink.error("keras-error", f"Keras could not assemble the model: {_first_line(exc)}", ("outputs",))
        raise EmitError(sink.sorted()) from None

    if checked.graph.weights_file is not None:
        try:
            model.load_weights(str(checked.graph.weights_file))
        except Exception as exc:  # a weights file of another model: the user's to fix
            sink.error("bad-weights-file", f"cannot load the weights '{spec.weights}': {_first_line(exc)}",
                       ("weights",), "the file must hold the weights of this very model (same layer names)")
            raise EmitError(sink.sorted()) from None
    check_expectations(checked, model, sink)
    if compile and spec.compile is not None:
        compile_model(checked, model, sink)
    sink.raise_if_errors(EmitError)
    return model


def compile_model(checked: CheckedSpec, model, sink: DiagnosticSink) -> None:
    section = checked.spec.compile
    assert section is not None

    def each(value, namespace):
        if value is None:
            return None
        if isinstance(value, list):
            return [make_object(namespace, v) for v in value]
        if isinstance(value, dict) and "type" not in value:
            return {k: each(v, namespace) for k, v in value.items()}
        return make_object(namespace, value)

    try:
        model.compile(
            optimizer=make_object("optimizers", section.optimizer),
            loss=each(section.loss, "losses"),
            loss_weights=section.loss_weights,
            metrics=each(section.metrics, "metrics"),
            weighted_metrics=each(section.weighted_metrics, "metrics"),
            steps_per_execution=section.steps_per_execution,
        )
    except Exception as exc:  # Keras' complaint about the compile section, located there
        sink.error("keras-error", f"compile: {_first_line(exc)}", ("compile",))


def check_expectations(checked: CheckedSpec, model, sink: DiagnosticSink) -> None:
    """The ``expect:`` section against the built model."""
    expect = checked.spec.expect
    if expect is None:
        return
    if expect.params is not None and model.count_params() != expect.params:
        sink.error("expect-failed", f"expected {expect.params:,} parameters, the model has {model.count_params():,}",
                   ("expect", "params"), f"if the change is intended, set params: {model.count_params()}")
    if expect.trainable_params is not None:
        trainable = sum(int(_size(w.shape)) for w in model.trainable_weights)
        if trainable != expect.trainable_params:
            sink.error("expect-failed",
                       f"expected {expect.trainable_params:,} trainable parameters, the model has {trainable:,}",
                       ("expect", "trainable_params"), f"if the change is intended, set trainable_params: {trainable}")
    if expect.output_shapes:
        shapes = output_shapes(checked, model)
        for name, expected in expect.output_shapes.items():
            actual = shapes.get(name)
            if actual is not None and list(actual) != list(expected):
                sink.error("expect-failed", f"expected output '{name}' of shape {expected}, the model gives "
                           f"{list(actual)}", ("expect", "output_shapes", name))


def _size(shape) -> int:
    total = 1
    for d in shape:
        total *= int(d)
    return total


def output_shapes(checked: CheckedSpec, model) -> dict[str, tuple]:
    """Each output's shape without the batch dimension, by output name."""
    outputs = model.outputs
    names = list(checked.graph.outputs)
    if isinstance(checked.spec.outputs, dict) and isinstance(model.output, dict):
        return {name: tuple(model.output[name].shape[1:]) for name in names}
    return {name: tuple(t.shape[1:]) for name, t in zip(names, outputs)}


def save_artifact(checked: CheckedSpec, model, path: str | os.PathLike) -> FsPath:
    """Save the model as ``.keras`` with the canonical spec and its hash in ``metadata.json``.

    The file is written to a temporary name in the same folder, fsynced and renamed,
    so a crash never leaves a truncated artifact. Nothing of graphspec is needed to load it.
    """
    target = FsPath(path)
    if target.suffix != ".keras":
        raise EmitError([Diagnostic(code="bad-output-path", message=f"'{target}' must end in .keras",
                                    hint="Keras 3 saves models as .keras archives")])
    graph = checked.graph
    if getattr(model, "optimizer", None) is not None and not model.optimizer.built:
        # Save the optimizer's (fresh) state too, so loading the file reports nothing missing.
        model.optimizer.build(model.trainable_variables)
    with AtomicFile(target, suffix=".keras", error_type=EmitError) as final_tmp, \
            tempfile.TemporaryDirectory(prefix="graphspec-build-") as scratch:
        raw_tmp = FsPath(scratch) / "model.keras"  # Keras' own archive, before the metadata is added
        model.save(raw_tmp)
        with zipfile.ZipFile(raw_tmp) as source, zipfile.ZipFile(final_tmp, "w", zipfile.ZIP_DEFLATED) as out:
            for item in source.infolist():
                data = source.read(item.filename)
                if item.filename == "metadata.json":
                    metadata = json.loads(data)
                    metadata["graphspec"] = {
                        "spec_hash": spec_hash(graph),
                        "graph_hash": graph_hash(graph),  # the expanded graph, however its nodes were written
                        "saved_models": saved_model_digests(graph),
                        **({"weights": weights_digest(graph.weights_file)} if graph.weights_file else {}),
                        "canonical_spec": json.loads(canonical_json(graph)),
                        "keras_catalogue": catalogue().keras_version,
                    }
                    if graph.plugins:  # load the model where these are imported (their classes registered)
                        metadata["graphspec"]["plugins"] = [plugin.record() for plugin in graph.plugins]
                    data = json.dumps(metadata, indent=1).encode()
                out.writestr(item, data)
    return target


def weights_digest(path: FsPath) -> str:
    """``sha256:<hex>`` of a spec's weights file (recorded in the artifact beside the spec hash)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def read_artifact_metadata(path: str | os.PathLike) -> dict:
    """The ``graphspec`` section of a saved model's metadata (empty if it has none)."""
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("metadata.json")).get("graphspec", {})
