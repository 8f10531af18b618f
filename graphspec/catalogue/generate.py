"""Maintenance command: regenerate ``keras.json`` and ``keras_ops.json`` from the installed Keras.

    python -m graphspec.catalogue.generate          # rewrite the checked-in catalogue
    python -m graphspec.catalogue.generate --check  # exit 1 if it drifted from Keras

The catalogue is what graphspec knows about Keras without importing it: every
layer class with its constructor arguments and defaults and its call arguments,
and the names usable in the allow-listed namespaces (activations, initializers,
regularizers, constraints, optimizers, learning-rate schedules, losses, metrics).
Nothing here is copied by hand except the deny-list, which is graphspec's own policy.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

CATALOGUE_PATH = Path(__file__).with_name("keras.json")
OPS_PATH = Path(__file__).with_name("keras_ops.json")

DENIED_LAYERS: dict[str, str] = {
    "Lambda": "it runs arbitrary Python code",
    "TFSMLayer": "it loads a TensorFlow SavedModel from a path",
    "TorchModuleWrapper": "it wraps arbitrary PyTorch code",
    "JaxLayer": "it wraps arbitrary JAX functions",
    "FlaxLayer": "it wraps arbitrary Flax modules",
    "Layer": "it is the abstract base class, not a usable layer",
    "Wrapper": "it is an abstract base class; use Bidirectional or TimeDistributed",
    "InputLayer": "inputs are declared under 'inputs:'",
    "Pipeline": "it takes layer objects; use a 'sequential:' node",
    "StackedRNNCells": "it takes cell objects; use a 'sequential:' node of RNN layers",
}
"""Layer classes a spec may not use, with the reason (shown in the error)."""

FILE_ARGUMENTS: dict[str, list[str]] = {
    "StringLookup": ["vocabulary"],
    "IntegerLookup": ["vocabulary"],
    "TextVectorization": ["vocabulary"],
}
"""Arguments Keras would read as a file path when given a string: a spec must give a list."""

BASE_ARGS_EXCLUDED = {"name"}  # a node's name is its key in the spec
NAMESPACES = {
    "initializers": "keras.initializers",
    "regularizers": "keras.regularizers",
    "constraints": "keras.constraints",
    "optimizers": "keras.optimizers",
    "schedules": "keras.optimizers.schedules",
    "losses": "keras.losses",
    "metrics": "keras.metrics",
}
ABSTRACT = {"Initializer", "Regularizer", "Constraint", "Optimizer", "LearningRateSchedule", "Loss", "Metric",
            "MeanMetricWrapper", "OptimizerMap", "MultiOptimizer"}

DENIED_OBJECTS: dict[str, dict[str, str]] = {
    "activations": {
        "glu": "it halves the last axis at run time while Keras' symbolic shape keeps it, so the shapes "
               "checked before training would be wrong",
        "threshold": "it needs arguments (threshold, default_value) that an activation given by name cannot pass",
    },
    "initializers": {
        "STFT": "it needs scipy, which graphspec does not install, and only suits STFTSpectrogram's kernels",
    },
    "losses": {
        "categorical_generalized_cross_entropy": "the function needs the argument q, which a name cannot pass; "
                                                 "write {type: CategoricalGeneralizedCrossEntropy, q: 0.5}",
    },
}
"""Names of an allow-listed namespace a spec may not use (aliases of a denied class included), with the reason.
``tests/test_catalogue.py`` instantiates every other name in each form the spec allows."""

COMPILE_STRINGS = {"metrics": {"accuracy", "acc"}, "losses": {"crossentropy", "ce"}}
"""Names ``model.compile()`` resolves itself, picking binary, categorical or sparse by the targets
(``compile_utils.get_metric`` and ``get_loss``)."""


def _json_default(value):
    """The default as JSON when it is plain data, else a marker with its repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"default": value}
    if isinstance(value, (tuple, list)) and all(isinstance(v, (bool, int, float, str, type(None))) for v in value):
        return {"default": list(value)}
    return {"default_repr": repr(value)}


def _arguments(function, *, skip=("self",)) -> tuple[dict, bool]:
    """Named parameters of a callable: name -> {required | default}; and whether it takes **kwargs."""
    args: dict[str, dict] = {}
    takes_kwargs = False
    for param in inspect.signature(function).parameters.values():
        if param.name in skip:
            continue
        if param.kind is param.VAR_KEYWORD:
            takes_kwargs = True
            continue
        if param.kind is param.VAR_POSITIONAL:
            continue
        args[param.name] = {"required": True} if param.default is param.empty else _json_default(param.default)
    return args, takes_kwargs


def _module(dotted: str):
    import importlib

    return importlib.import_module(dotted)


def base_layer_arguments() -> dict:
    """The constructor arguments every Keras layer takes through ``**kwargs`` (``trainable``, ``dtype``, ...)."""
    import keras

    base_args, _ = _arguments(keras.layers.Layer.__init__)
    return {k: v for k, v in base_args.items() if k not in BASE_ARGS_EXCLUDED}


def layer_entry(cls, base_args: dict) -> dict:
    """A layer class's catalogue entry: constructor arguments (with the base layer's, where it takes
    ``**kwargs``) and ``call()`` arguments. Also catalogues plugin layers (:mod:`graphspec.plugins`)."""
    args, takes_kwargs = _arguments(cls.__init__)
    args.pop("name", None)
    if takes_kwargs:
        for key, value in base_args.items():
            args.setdefault(key, value)
    call_args, _ = _arguments(cls.call)
    return {"args": args, "call_args": list(call_args)}


def build_catalogue() -> dict:
    import keras

    layers_mod = keras.layers
    base_args = base_layer_arguments()

    by_class: dict[type, list[str]] = {}
    for name in sorted(dir(layers_mod)):
        obj = getattr(layers_mod, name)
        if name.startswith("_") or not inspect.isclass(obj) or not issubclass(obj, keras.layers.Layer):
            continue
        by_class.setdefault(obj, []).append(name)

    layers: dict[str, dict] = {}
    for cls, names in by_class.items():
        canonical = cls.__name__ if cls.__name__ in names else names[0]
        entry = layer_entry(cls, base_args)
        if canonical in DENIED_LAYERS:
            entry["denied"] = DENIED_LAYERS[canonical]
        if canonical in FILE_ARGUMENTS:
            entry["list_only_args"] = FILE_ARGUMENTS[canonical]
        layers[canonical] = entry
        for alias in names:
            if alias != canonical:
                layers[alias] = {"alias_of": canonical}

    activations = sorted(
        n for n in dir(keras.activations)
        if not n.startswith("_") and inspect.isfunction(getattr(keras.activations, n))
        and n not in {"get", "serialize", "deserialize"} and n not in DENIED_OBJECTS["activations"]
    )

    namespaces: dict[str, dict] = {}
    for key, dotted in NAMESPACES.items():
        mod = _module(dotted)
        classes: dict[str, dict] = {}
        aliases: dict[str, str] = {}
        functions: list[str] = []
        for name in sorted(dir(mod)):
            obj = getattr(mod, name)
            if name.startswith("_") or name in {"get", "serialize", "deserialize"} or name in ABSTRACT:
                continue
            if inspect.isclass(obj):
                if obj.__name__ == name:
                    classes[name] = {"args": _arguments(obj.__init__)[0]}
                else:
                    aliases[name] = obj.__name__
            elif inspect.isfunction(obj):
                functions.append(name)
        # Short string names Keras itself accepts ('mse', 'acc', ...), from its own registry.
        try:
            registry = _module(dotted.replace("keras.", "keras.src.", 1)).ALL_OBJECTS_DICT
            for name, obj in registry.items():
                if name in classes or name in aliases or name in functions or name in ABSTRACT:
                    continue
                if inspect.isclass(obj) and obj.__name__ in classes:
                    aliases[name] = obj.__name__
                elif inspect.isfunction(obj):
                    functions.append(name)
        except (ImportError, AttributeError):
            pass
        denied = DENIED_OBJECTS.get(key, {})
        denied = {**denied, **{alias: denied[target] for alias, target in aliases.items() if target in denied}}
        classes = {name: entry for name, entry in classes.items() if name not in denied}
        aliases = {name: target for name, target in aliases.items() if name not in denied}
        functions = sorted(set(functions) - set(denied))
        if key in COMPILE_STRINGS:
            functions = sorted(set(functions) | COMPILE_STRINGS[key])
        namespaces[key] = {"classes": classes, "aliases": dict(sorted(aliases.items())), "functions": functions,
                           "built_by_graphspec": _unresolved_names(mod, key, classes, aliases, functions),
                           "denied": dict(sorted(denied.items()))}

    namespaces["activations"] = {"denied": dict(DENIED_OBJECTS["activations"])}

    dtypes = sorted({"float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64",
                     "uint8", "uint16", "uint32", "uint64", "bool", "string", "complex64", "complex128"})
    return {
        "keras_version": keras.__version__,
        "base_layer_args": sorted(base_args),
        "layers": dict(sorted(layers.items())),
        "activations": activations,
        "namespaces": namespaces,
        "dtypes": dtypes,
        "ops": build_ops(),
        "builtin_plugins": builtin_plugin_entries(base_args),
    }


def builtin_plugin_entries(base_args: dict) -> dict:
    """The layers of graphspec's built-in plugins (Keras' own classes that keras.layers does not export),
    catalogued as Keras' are, so that check reads them without importing Keras (graphspec.plugins)."""
    from graphspec.plugins import BUILTIN_PLUGINS

    found = {}
    for name in BUILTIN_PLUGINS:
        classes = sorted(_module(name).layer_classes(), key=lambda cls: cls.__name__)
        found[name] = {cls.__name__: {**layer_entry(cls, base_args), "plugin": name} for cls in classes}
    return found


# --------------------------------------------------------------------------------------------
# keras.ops: the functions an `op:` node may call
# --------------------------------------------------------------------------------------------

OP_FAMILIES: dict[str, tuple[str, ...]] = {
    # one tensor in, the same shape out (element-wise math, activations, axis-wise normalizations)
    "unary": (
        "abs", "absolute", "negative", "exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "rsqrt",
        "square", "reciprocal", "sign", "floor", "ceil", "round", "trunc", "sin", "cos", "tan", "tanh", "sinh",
        "cosh", "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh", "erf", "erfinv", "cbrt",
        "sigmoid", "relu", "relu6", "softplus", "softsign", "silu", "swish", "gelu", "elu", "selu", "leaky_relu",
        "hard_sigmoid", "hard_silu", "hard_swish", "log_sigmoid", "logical_not", "isnan", "isinf", "isfinite",
        "softmax", "log_softmax", "cumsum", "cumprod", "zeros_like", "ones_like", "full_like", "stop_gradient",
        "nan_to_num", "clip", "cast",
    ),
    # two tensors (or a tensor and a scalar constant) broadcast together
    "binary": (
        "add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "mod", "power", "maximum",
        "minimum", "equal", "not_equal", "less", "less_equal", "greater", "greater_equal", "logical_and",
        "logical_or", "logical_xor", "arctan2",
    ),
    "where": ("where",),
    "reduce": ("sum", "mean", "max", "min", "prod", "std", "var", "any", "all", "argmax", "argmin", "logsumexp",
               "amax", "amin"),
    "reshape": ("reshape",),
    "transpose": ("transpose",),
    "expand_dims": ("expand_dims",),
    "squeeze": ("squeeze",),
    "swapaxes": ("swapaxes",),
    "matmul": ("matmul",),
    "einsum": ("einsum",),
}
"""graphspec's policy: the keras.ops functions an ``op:`` node may call, by the shape rule that covers them
(``graphspec/infer/rules/ops.py``). Their arguments, defaults and output dtypes are read from Keras below."""

OP_OPERANDS: dict[str, tuple[str, ...]] = {
    "unary": ("x",), "binary": ("x1", "x2"), "where": ("condition", "x1", "x2"), "reduce": ("x",),
    "reshape": ("x",), "transpose": ("x",), "expand_dims": ("x",), "squeeze": ("x",), "swapaxes": ("x",),
    "matmul": ("x1", "x2"), "einsum": ("operands",),
}
"""The arguments of each family that take a tensor (a reference in ``input:``) or a scalar constant."""

OP_STOP_GRADIENT_OPERAND = {"stop_gradient": ("variable",)}

CALLABLE_PARAMETERS = {"f", "fn", "function", "body", "body_fun", "cond", "true_fn", "false_fn", "pyfunc",
                       "branches", "fun", "loop_vars"}
"""Parameter names that take a Python function: an op with one of them is denied (it would run code)."""

RANDOM_REASON = ("keras.random functions are not operations of a functional graph (Keras cannot call them on "
                 "symbolic tensors or save them); for seeded noise use a GaussianNoise layer node "
                 "(see docs/spec.md, the VAE example)")
OP_PROBE_DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
OP_PROBE_SCALARS = {"py_int": 2, "py_float": 2.0, "py_bool": True}
"""Operand kinds whose output dtype the catalogue records for every allowed op (a scalar constant is
weakly typed in Keras: ``x + 2.0`` keeps a float16 ``x`` float16)."""

_OP_PROBE_ARGS: dict[str, dict] = {
    "full_like": {"fill_value": 1}, "clip": {"x_min": 0, "x_max": 1}, "cast": {"dtype": "float32"},
    "reshape": {"newshape": (-1, 6)}, "transpose": {}, "expand_dims": {"axis": 1}, "squeeze": {},
    "swapaxes": {"axis1": 1, "axis2": 2}, "einsum": {"subscripts": "abc,abc->ab"},
}


def _op_reason(name: str, function) -> str:
    try:
        params = set(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return "it is not a plain function"
    if params & CALLABLE_PARAMETERS:
        return "it takes a Python function (it would run code)"
    return "it is not in graphspec's op allow-list (no shape rule)"


def _probe_dtype(function, name: str, family: str, dtypes_in: tuple) -> str | None:
    """The output dtype of the op for operands of these dtypes (a dtype name or a scalar kind): the dtype
    Keras gives the symbolic tensor when it builds the model, provided the op *runs* on such operands and
    returns that dtype; None where Keras refuses them, or where the run fails or returns another dtype
    (``sigmoid`` of int32 builds as int32 and fails when it runs; ``reciprocal`` of float16 builds as
    float32 and returns float16)."""
    import keras
    import numpy as np

    shape = (2, 3, 2) if family in ("reshape", "swapaxes", "einsum", "squeeze") else (2, 3)
    if name == "squeeze":
        shape = (2, 1, 3)
    shapes = [(2, 3), (3, 2)] if family == "matmul" else [shape] * len(dtypes_in)

    def operands(symbolic: bool) -> list:
        values = []
        for d, s in zip(dtypes_in, shapes):
            if d in OP_PROBE_SCALARS:
                values.append(OP_PROBE_SCALARS[d])
            elif symbolic:
                values.append(keras.KerasTensor(s, dtype=d))
            else:  # values every op is defined on (positive, not 1: log, arccosh, ...)
                values.append(keras.ops.cast(np.full(s, 2 if d != "bool" else 1), d))
        return values

    def call(values: list):
        args = dict(_OP_PROBE_ARGS.get(name, {}))
        if family == "einsum":
            return function(args.pop("subscripts"), *values, **args)
        return function(*values, **args)

    try:
        symbolic = keras.backend.standardize_dtype(call(operands(True)).dtype)
    except Exception:  # Keras refuses these dtypes
        return None
    try:
        run = keras.backend.standardize_dtype(call(operands(False)).dtype)
    except Exception:  # Keras builds it, but the model would fail when it runs
        return None
    return symbolic if run == symbolic else None


def build_ops() -> dict:
    """Every keras.ops function: the allowed ones with arguments, operands and output dtypes, the others
    with the reason they are refused."""
    import keras

    family_of = {name: family for family, names in OP_FAMILIES.items() for name in names}
    ops: dict[str, dict] = {}
    for name in sorted(dir(keras.ops)):
        function = getattr(keras.ops, name)
        if name.startswith("_") or not callable(function) or inspect.isclass(function) or inspect.ismodule(function):
            continue
        family = family_of.get(name)
        if family is None:
            ops[name] = {"denied": _op_reason(name, function)}
            continue
        args, _ = _arguments(function, skip=())
        variadic = [p.name for p in inspect.signature(function).parameters.values()
                    if p.kind is p.VAR_POSITIONAL]
        operands = list(OP_STOP_GRADIENT_OPERAND.get(name, OP_OPERANDS[family]))
        for operand in operands:
            if operand not in args and operand not in variadic:
                raise SystemExit(f"keras.ops.{name} has no argument '{operand}': update OP_OPERANDS")
        entry: dict = {"family": family, "operands": operands, "args": args}
        if variadic:
            entry["variadic"] = variadic[0]
        if family in ("binary", "where"):
            kinds = OP_PROBE_DTYPES + tuple(OP_PROBE_SCALARS)
            table = {}
            for a in kinds:
                for b in kinds:
                    combos = [(a, b)] if family == "binary" else [("bool", a, b)]
                    for combo in combos:
                        if all(k in OP_PROBE_SCALARS for k in combo[-2:]):
                            continue
                        table["|".join(combo[-2:])] = _probe_dtype(function, name, family, combo)
            entry["dtypes"] = table
        elif family in ("matmul", "einsum"):
            entry["dtypes"] = {f"{a}|{b}": _probe_dtype(function, name, family, (a, b))
                               for a in OP_PROBE_DTYPES for b in OP_PROBE_DTYPES}
        else:
            entry["dtypes"] = {d: _probe_dtype(function, name, family, (d,)) for d in OP_PROBE_DTYPES}
        ops[name] = entry
    random = sorted(n for n in dir(keras.random) if not n.startswith("_") and inspect.isfunction(getattr(keras.random, n)))
    return {"allowed": {k: v for k, v in ops.items() if "denied" not in v},
            "denied": {k: v["denied"] for k, v in ops.items() if "denied" in v},
            "random": {"names": random, "reason": RANDOM_REASON}}


def _unresolved_names(mod, key: str, classes: dict, aliases: dict, functions: list[str]) -> list[str]:
    """The names Keras' own ``get()`` cannot resolve although they name a class (without required
    arguments) or a function of the namespace: graphspec builds those itself (``emit.make_object``).

    (``Constant`` and ``l1_l2``, for instance: Keras' ``get`` fails on them.) Names of classes with
    required arguments are left out: a spec must give them as a mapping with those arguments.
    """
    get = getattr(mod, "get", None)
    unresolved = []
    for name in [*classes, *aliases, *functions]:
        if name in COMPILE_STRINGS.get(key, ()):
            continue
        target = aliases.get(name, name)
        if target in classes and any(meta.get("required") for meta in classes[target]["args"].values()):
            continue
        try:
            if get is not None and get(name) is not None:
                continue
        except Exception:  # Keras cannot resolve the name: graphspec builds it
            pass
        unresolved.append(name)
    return sorted(unresolved)


def render(catalogue: dict) -> dict[Path, str]:
    """The catalogue's files and their text: ``keras_ops.json`` holds the ``ops`` section (read only for
    ``op:`` nodes, so that a check without them parses half as much), ``keras.json`` the rest."""
    rest = {key: value for key, value in catalogue.items() if key != "ops"}
    return {CATALOGUE_PATH: json.dumps(rest, indent=1, sort_keys=False) + "\n",
            OPS_PATH: json.dumps(catalogue["ops"], indent=1, sort_keys=False) + "\n"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    files = render(build_catalogue())
    if "--check" in argv:
        stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
        for path in stale:
            print(f"{path} is stale: run python -m graphspec.catalogue.generate", file=sys.stderr)
        return 1 if stale else 0
    for path, text in files.items():
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
