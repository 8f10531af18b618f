"""Checks of a structurally valid spec against Keras' own vocabulary (the catalogue).

Layer types, their constructor arguments, the names of nested objects
(activations, initializers, optimizers, losses, ...), dtypes. All problems are
reported with their data path, so they point at the exact key or value.
"""

from __future__ import annotations

import re
from typing import Any

from graphspec.catalogue import NESTED_LAYER_ARGS, Catalogue, catalogue, nested_namespace
from graphspec.errors import DiagnosticSink, Path, did_you_mean
from graphspec.plugins import missing_plugin_hint
from graphspec.schema.model import RESERVED_NODE_KEYS, ObjectConfig

MAX_INT_ARG = 2**31 - 1
"""Largest integer accepted in a layer argument: bigger values would only exhaust memory."""

POLICY_DTYPES = {"mixed_float16", "mixed_bfloat16"}
_MODEL_CALL_ARGS = ("training", "mask")
_YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n"}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _matches_default(value: Any, default: Any) -> str | None:
    """What the argument expects, judging by the type of its Keras default, if the value does not fit."""
    if value is None or default is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        if isinstance(value, bool):
            return "an integer"
        if isinstance(value, int):
            return None
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return None
        return "an integer"
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return None
        return "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    if isinstance(default, list):
        if isinstance(value, (int, float, list)) and not isinstance(value, bool):
            return None
        return "a number or a list"
    return None


class SemanticChecker:
    """Walks a :class:`Spec` and reports what the catalogue does not allow."""

    def __init__(self, sink: DiagnosticSink, cat: Catalogue | None = None):
        self.sink = sink
        self.cat = cat or catalogue()
        self.declared_plugins: list[str] = []
        """The spec's ``plugins:`` (a requirement: named in errors, never imported)."""

    # -- numbers ---------------------------------------------------------------------------
    def _check_magnitudes(self, value: Any, path: Path) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, int) and abs(value) > MAX_INT_ARG:
            self.sink.error("number-too-large", f"{value} is too large for a layer argument", path,
                            f"arguments are limited to {MAX_INT_ARG}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._check_magnitudes(item, path + (i,))
        elif isinstance(value, dict):
            for key, item in value.items():
                self._check_magnitudes(item, path + (key,))

    # -- nested objects ----------------------------------------------------------------------
    def check_object(self, value: Any, namespace: str, path: Path, what: str) -> None:
        """A string name or ``{type: ..., args}`` from an allow-listed Keras namespace."""
        if value is None:
            return
        names = self.cat.object_names(namespace)
        if isinstance(value, str):
            if self._denied_object(namespace, value, path, what):
                return
            if value not in names:
                self.sink.error("unknown-object", f"unknown {what} '{value}'", path,
                                did_you_mean(value, names) or f"see the Keras {namespace} for the names")
                return
            required = self.cat.required_arguments(namespace, value)
            if required:
                class_name = self.cat.object_class(namespace, value)
                example = ", ".join(f"{arg}: ..." for arg in required)
                self.sink.error("missing-argument", f"{what} '{value}' needs the argument(s) {', '.join(required)}",
                                path, f"write it as a mapping: {{type: {class_name}, {example}}}")
            return
        config = value if isinstance(value, dict) else value.model_dump() if isinstance(value, ObjectConfig) else None
        if not isinstance(config, dict):
            self.sink.error("bad-object", f"a {what} is a name or a mapping with 'type', not {_type_name(value)}", path)
            return
        type_name = config.get("type")
        if not isinstance(type_name, str):
            self.sink.error("bad-object", f"a {what} given as a mapping needs 'type: ClassName'", path)
            return
        if self._denied_object(namespace, type_name, path + ("type",), what):
            return
        class_name = self.cat.object_class(namespace, type_name)
        if class_name is None:
            classes = list(self.cat.namespace(namespace)["classes"]) if namespace != "activations" else []
            hint = did_you_mean(type_name, classes + list(names))
            if namespace == "activations":
                hint = "activations take no arguments here; give the name (e.g. 'relu') or use an activation layer node"
            self.sink.error("unknown-object", f"unknown {what} class '{type_name}'", path + ("type",), hint)
            return
        args = self.cat.namespace(namespace)["classes"][class_name]["args"]
        for key, arg_value in config.items():
            if key == "type":
                continue
            if key not in args:
                self.sink.error("unknown-argument", f"{class_name} has no argument '{key}'", path + (key,),
                                did_you_mean(key, args) or f"its arguments are: {', '.join(args) or 'none'}",
                                key=True)
                continue
            self._check_magnitudes(arg_value, path + (key,))
            if namespace == "optimizers" and key == "learning_rate" and isinstance(arg_value, (dict, str)):
                self.check_object(arg_value, "schedules", path + (key,), "learning-rate schedule")
            elif namespace == "optimizers" and key == "inner_optimizer":
                # LossScaleOptimizer wraps an optimizer that graphspec builds from the allow-list too.
                if arg_value is None or (isinstance(arg_value, dict) and arg_value.get("type") == class_name) \
                        or arg_value == class_name:
                    self.sink.error("bad-object", f"{class_name}.inner_optimizer is the optimizer it wraps, "
                                    "such as {type: Adam, learning_rate: 0.001}", path + (key,))
                else:
                    self.check_object(arg_value, "optimizers", path + (key,), "optimizer")
            elif _holds_mapping(arg_value):
                self.sink.error("bad-argument-type", f"{class_name}.{key} takes plain values, not a mapping",
                                path + (key,))
        for key, meta in args.items():
            if meta.get("required") and key not in config:
                self.sink.error("missing-argument", f"{class_name} needs the argument '{key}'", path)

    def _denied_object(self, namespace: str, name: str, path: Path, what: str) -> bool:
        reason = self.cat.denied_object(namespace, name)
        if reason is None:
            return False
        hint = None
        if namespace == "activations" and name == "glu":
            hint = ("compute it with nodes: two Dense nodes of the same units (one with activation: sigmoid) "
                    "and a Multiply node of the two")
        self.sink.error("denied-object", f"the {what} '{name}' is not allowed in a spec: {reason}", path, hint)
        return True

    # -- layers ------------------------------------------------------------------------------
    def check_layer(self, layer_type: str, args: dict[str, Any], path: Path, *, in_node: bool) -> None:
        """A layer type and its constructor arguments (``path`` is the mapping holding them)."""
        entry = self.cat.layer(layer_type)
        if entry is None:
            missing = missing_plugin_hint(layer_type, self.declared_plugins)
            if missing is not None:  # a plugin's layer, and the plugin is not enabled
                suggestion = did_you_mean(layer_type, self.cat.layer_names)
                self.sink.error("plugin-not-enabled", missing[0], path + ("type",),
                                missing[1] + (f" (or {suggestion})" if suggestion else ""))
                return
            self.sink.error("unknown-layer-type", f"unknown layer type '{layer_type}'", path + ("type",),
                            did_you_mean(layer_type, self.cat.layer_names)
                            or "the type is a Keras layer class name, e.g. Dense or Conv2D")
            return
        if "denied" in entry:
            self.sink.error("denied-layer-type", f"'{layer_type}' is not allowed in a spec: {entry['denied']}",
                            path + ("type",))
            return
        known = entry["args"]
        canonical = self.cat.canonical(layer_type)
        for key, value in args.items():
            arg_path = path + (key,)
            if key == "name":
                self.sink.error("name-argument", "a layer's name is its key in the spec", arg_path,
                                "remove 'name:'; rename the node instead", key=True)
                continue
            if key not in known:
                hint = did_you_mean(key, list(known) + (list(RESERVED_NODE_KEYS) if in_node else []))
                self.sink.error("unknown-argument", f"{canonical} has no argument '{key}'", arg_path,
                                hint or f"its arguments are: {', '.join(known)}", key=True)
                continue
            self._check_magnitudes(value, arg_path)
            namespace = nested_namespace(key)
            if key in NESTED_LAYER_ARGS and isinstance(value, dict):
                self.check_layer_config_dict(value, arg_path)
            elif key in NESTED_LAYER_ARGS and key == "cell" and isinstance(value, list):
                for i, item in enumerate(value):
                    self.check_layer_config_dict(item, arg_path + (i,))
            elif key in NESTED_LAYER_ARGS:
                self.sink.error("bad-argument", f"'{key}' is a layer configuration such as {{type: LSTM, units: 32}}",
                                arg_path)
            elif namespace is not None:
                self.check_object(value, namespace, arg_path, namespace.rstrip("s").replace("activation", "activation"))
            elif key == "dtype" and value is not None:
                if not isinstance(value, str) or (value not in self.cat.dtypes and value not in POLICY_DTYPES):
                    self.sink.error("unknown-dtype", f"unknown dtype {value!r}", arg_path,
                                    did_you_mean(str(value), self.cat.dtypes + sorted(POLICY_DTYPES)))
            elif key in entry.get("list_only_args", ()) and isinstance(value, str):
                self.sink.error("file-argument", f"'{key}' given as a string would make Keras read a file", arg_path,
                                "give the vocabulary inline as a list")
            elif _holds_mapping(value):
                self.sink.error("bad-argument-type", f"{canonical}.{key} takes plain values, not a mapping", arg_path,
                                "mappings are accepted only where graphspec builds the Keras object itself "
                                "(activations, initializers, regularizers, constraints, nested layers)")
            elif "default" not in known[key] and isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
                self.sink.error("bad-argument-type", f"{canonical}.{key} expects a number, got the string {value!r}",
                                arg_path, "remove the quotes")
            else:
                default = known[key].get("default")
                expected = _matches_default(value, default)
                if expected:
                    hint = f"Keras' default is {default!r}"
                    if expected == "true or false" and isinstance(value, str) and value.lower() in _YAML11_BOOLEANS:
                        hint = f"'{value}' is a string in YAML 1.2 (graphspec's YAML); write true or false"
                    self.sink.error("bad-argument-type",
                                    f"{canonical}.{key} expects {expected}, got {_type_name(value)}", arg_path, hint)
        misspelt = {did_you_mean(key, list(known)) for key in args if key not in known}
        for key, meta in known.items():
            # A misspelt required argument is already reported, with the right spelling as its hint.
            if meta.get("required") and key not in args and f"did you mean '{key}'?" not in misspelt:
                self.sink.error("missing-argument", f"{canonical} needs the argument '{key}'", path + ("type",))

    def check_layer_config_dict(self, value: Any, path: Path) -> None:
        if not isinstance(value, dict) or not isinstance(value.get("type"), str):
            self.sink.error("bad-argument", "expected a layer configuration such as {type: LSTM, units: 32}", path)
            return
        self.check_layer(value["type"], {k: v for k, v in value.items() if k != "type"}, path, in_node=False)

    def check_call_values(self, node: dict, path: Path) -> None:
        """``call:`` values of any node form are plain data: Keras would deserialize a mapping."""
        for key, value in (node.get("call") if isinstance(node.get("call"), dict) else {}).items():
            if _holds_mapping(value):
                self.sink.error("bad-argument-type", f"call argument '{key}' takes plain values, not a mapping",
                                path + ("call", key))

    def check_call(self, layer_type: str | None, node: dict, path: Path) -> None:
        """Call arguments named in ``call:`` or in a mapping ``input:``."""
        entry = self.cat.layer(layer_type) if layer_type else None
        if entry is None or "denied" in entry:
            return
        call_args = entry["call_args"]
        if isinstance(node.get("input"), dict):
            for key in node["input"]:
                if key not in call_args:
                    self.sink.error("unknown-call-argument", f"{self.cat.canonical(layer_type)}.call() has no argument '{key}'",
                                    path + ("input", key), did_you_mean(key, call_args)
                                    or f"its call arguments are: {', '.join(call_args)}", key=True)
        for key in (node.get("call") if isinstance(node.get("call"), dict) else {}):
            if key not in call_args:
                self.sink.error("unknown-call-argument", f"{self.cat.canonical(layer_type)}.call() has no argument '{key}'",
                                path + ("call", key), did_you_mean(key, call_args)
                                or f"its call arguments are: {', '.join(call_args)}", key=True)

    # -- op: nodes (keras.ops calls) ---------------------------------------------------------------
    def check_op(self, name: str, node: dict, path: Path) -> None:
        """An ``op:`` node: an allow-listed keras.ops function, its arguments, and how its operands are given."""
        entry = self.cat.op(name)
        if entry is None:
            reason = self.cat.denied_op(name)
            if reason is not None:
                self.sink.error("denied-op", f"the op '{name}' is not allowed in a spec: {reason}", path + ("op",),
                                did_you_mean(name, self.cat.op_names) if "allow-list" in reason else None)
            else:
                self.sink.error("unknown-op", f"unknown op '{name}'", path + ("op",),
                                did_you_mean(name, self.cat.op_names)
                                or "an op is a keras.ops function name, e.g. add, abs, sum, reshape")
            return
        args = {k: v for k, v in node.items() if k not in ("op", "input")}
        operands = entry["operands"]
        variadic = entry.get("variadic")
        known = [a for a in entry["args"] if a not in ("kwargs",)]
        for key, value in args.items():
            arg_path = path + (key,)
            if key == variadic:
                self.sink.error("bad-operand", f"{name}'s operands are the references in 'input:'", arg_path,
                                "write them as a list: input: [a, b]", key=True)
                continue
            if key not in known:
                self.sink.error("unknown-argument", f"op '{name}' has no argument '{key}'", arg_path,
                                did_you_mean(key, known + ["input"]) or f"its arguments are: {', '.join(known)}",
                                key=True)
                continue
            if key in operands:
                if isinstance(value, bool) or isinstance(value, (int, float)):
                    self._check_magnitudes(value, arg_path)
                    continue
                self.sink.error("bad-operand", f"operand '{key}' of op '{name}' is a tensor (a reference in "
                                f"'input:') or a scalar constant, not {_type_name(value)}", arg_path,
                                f"write the reference under input: {{{key}: node_name}}" if isinstance(value, str)
                                else None)
                continue
            self._check_magnitudes(value, arg_path)
            if _holds_mapping(value):
                self.sink.error("bad-argument-type", f"op '{name}': '{key}' takes plain values, not a mapping",
                                arg_path)
            elif key == "dtype" and value is not None and (not isinstance(value, str) or value not in self.cat.dtypes):
                self.sink.error("unknown-dtype", f"unknown dtype {value!r}", arg_path,
                                did_you_mean(str(value), self.cat.dtypes))
        inline = [o for o in operands if o in args]
        free = [o for o in operands if o not in args]
        raw = node.get("input")
        input_path = path + ("input",)
        missing: list[str] = []
        if isinstance(raw, dict) and variadic:
            self.sink.error("bad-operand", f"op '{name}' takes its operands as a list of references",
                            input_path, "write input: [a, b]")
        elif isinstance(raw, dict):
            for key in raw:
                if key not in operands:
                    self.sink.error("unknown-argument", f"'{key}' is not a tensor operand of op '{name}'",
                                    input_path + (key,), did_you_mean(key, operands)
                                    or f"its operands are: {', '.join(operands)}", key=True)
                elif key in inline:
                    self.sink.error("bad-operand", f"operand '{key}' of op '{name}' is given twice: in 'input:' "
                                    "and as a constant", input_path + (key,), key=True)
            missing = [o for o in free if o not in raw]
        else:
            count = len(raw) if isinstance(raw, list) else 1
            if variadic:
                if isinstance(raw, list) and not raw:
                    self.sink.error("wrong-operand-count", f"op '{name}' needs at least one operand",
                                    input_path)
                missing = []
            elif count > len(free):
                self.sink.error("wrong-operand-count",
                                f"op '{name}' takes {len(free)} tensor operand(s) here"
                                + (f" ({', '.join(free)})" if free else "") + f", 'input:' gives {count}",
                                input_path if raw is not None else path + ("op",),
                                f"its operands are {', '.join(operands)}"
                                + (f"; {', '.join(inline)} given as a constant" if inline else ""))
                missing = []
            else:
                missing = free[count:]
        required_missing = [o for o in missing if entry["args"].get(o, {}).get("required")
                            or entry["family"] in ("binary", "where", "matmul")]
        if required_missing:
            self.sink.error("missing-argument", f"op '{name}' needs the operand(s) {', '.join(required_missing)}",
                            path + ("op",), "give a reference in 'input:' (a list in operand order: "
                            f"[{', '.join(operands)}]) or a scalar constant, e.g. {required_missing[0]}: 1.0")
        for key, meta in entry["args"].items():
            if meta.get("required") and key not in operands and key not in args and key != variadic:
                self.sink.error("missing-argument", f"op '{name}' needs the argument '{key}'", path + ("op",))

    # -- the whole spec ----------------------------------------------------------------------
    # These walk the plain data (not the validated Spec) so that they run even where other
    # parts of the spec failed Pydantic's structural checks: every problem is reported at once.
    def check_spec(self, data: dict) -> None:
        declared = data.get("plugins")
        self.declared_plugins = [p for p in declared if isinstance(p, str)] if isinstance(declared, list) else []
        inputs = data.get("inputs")
        for name, inp in (inputs.items() if isinstance(inputs, dict) else ()):
            dtype = inp.get("dtype") if isinstance(inp, dict) else None
            if isinstance(dtype, str) and dtype not in self.cat.dtypes:
                self.sink.error("unknown-dtype", f"unknown dtype '{dtype}'", ("inputs", name, "dtype"),
                                did_you_mean(dtype, self.cat.dtypes))
        layers = data.get("layers") if isinstance(data.get("layers"), dict) else {}
        for name, layer in layers.items():
            if isinstance(layer, dict) and isinstance(layer.get("type"), str):
                self.check_layer(layer["type"], _args(layer, ("type",)), ("layers", name), in_node=False)
        nodes = data.get("nodes") if isinstance(data.get("nodes"), dict) else {}
        for name, node in nodes.items():
            if not isinstance(node, dict):
                continue
            path = ("nodes", name)
            self.check_call_values(node, path)
            if isinstance(node.get("type"), str) and not any(k in node for k in ("shared", "sequential", "model")):
                self.check_layer(node["type"], _args(node, RESERVED_NODE_KEYS), path, in_node=True)
                self.check_call(node["type"], node, path)
            elif isinstance(node.get("op"), str) and not any(k in node for k in ("type", "shared", "sequential",
                                                                                   "model")):
                self.check_op(node["op"], node, path)
            elif isinstance(node.get("shared"), str):
                shared = layers.get(node["shared"])
                if isinstance(shared, dict) and isinstance(shared.get("type"), str):
                    self.check_call(shared["type"], node, path)
            elif isinstance(node.get("sequential"), list):
                named: dict[str, int] = {}
                for i, layer in enumerate(node["sequential"]):
                    if isinstance(layer, dict) and isinstance(layer.get("type"), str):
                        # 'name' names a layer inside the block (the schema checks its form)
                        self.check_layer(layer["type"], _args(layer, ("type", "name")), path + ("sequential", i),
                                         in_node=False)
                    inner = layer.get("name") if isinstance(layer, dict) else None
                    if isinstance(inner, str) and inner in named:
                        self.sink.error("duplicate-name", f"two layers of the block '{name}' are named '{inner}' "
                                        f"(layers {named[inner]} and {i})", path + ("sequential", i, "name"),
                                        "names inside a sequential block are unique: rename one, or leave it "
                                        "out and Keras names the layer")
                    elif isinstance(inner, str):
                        named[inner] = i
            if "sequential" in node or "model" in node:
                # A block or a saved model is called like any Keras model: model.call(inputs, training, mask).
                for key in (node.get("call") if isinstance(node.get("call"), dict) else {}):
                    if key not in _MODEL_CALL_ARGS:
                        self.sink.error("unknown-call-argument", f"a model's call() has no argument '{key}'",
                                        path + ("call", key), did_you_mean(key, _MODEL_CALL_ARGS)
                                        or "its call arguments are: training, mask", key=True)
        if isinstance(data.get("compile"), dict):
            self.check_compile(data["compile"])

    def check_compile(self, compiled: dict) -> None:
        base = ("compile",)
        if "optimizer" in compiled:
            self.check_object(compiled["optimizer"], "optimizers", base + ("optimizer",), "optimizer")

        def each(value, namespace, what, key):
            if isinstance(value, dict) and "type" not in value:
                for out, item in value.items():
                    items = item if isinstance(item, list) else [item]
                    for i, obj in enumerate(items):
                        sub = (out, i) if isinstance(item, list) else (out,)
                        self.check_object(obj, namespace, base + (key,) + sub, what)
            elif isinstance(value, list):
                for i, obj in enumerate(value):
                    self.check_object(obj, namespace, base + (key, i), what)
            else:
                self.check_object(value, namespace, base + (key,), what)

        for key, namespace, what in (("loss", "losses", "loss"), ("metrics", "metrics", "metric"),
                                     ("weighted_metrics", "metrics", "metric")):
            if compiled.get(key) is not None:
                each(compiled[key], namespace, what, key)


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _holds_mapping(value: Any) -> bool:
    if isinstance(value, dict):
        return True
    return isinstance(value, list) and any(_holds_mapping(v) for v in value)


def _args(mapping: dict, reserved) -> dict:
    return {k: v for k, v in mapping.items() if k not in reserved}
