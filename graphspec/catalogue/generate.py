"""Maintenance command: regenerate ``keras.json`` from the installed Keras.

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


def build_catalogue() -> dict:
    import keras

    layers_mod = keras.layers
    base_args, _ = _arguments(keras.layers.Layer.__init__)
    base_args = {k: v for k, v in base_args.items() if k not in BASE_ARGS_EXCLUDED}

    by_class: dict[type, list[str]] = {}
    for name in sorted(dir(layers_mod)):
        obj = getattr(layers_mod, name)
        if name.startswith("_") or not inspect.isclass(obj) or not issubclass(obj, keras.layers.Layer):
            continue
        by_class.setdefault(obj, []).append(name)

    layers: dict[str, dict] = {}
    for cls, names in by_class.items():
        canonical = cls.__name__ if cls.__name__ in names else names[0]
        args, takes_kwargs = _arguments(cls.__init__)
        args.pop("name", None)
        if takes_kwargs:
            for key, value in base_args.items():
                args.setdefault(key, value)
        call_args, _ = _arguments(cls.call)
        entry = {
            "args": args,
            "call_args": list(call_args),
        }
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
    }


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


def render(catalogue: dict) -> str:
    return json.dumps(catalogue, indent=1, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render(build_catalogue())
    if "--check" in argv:
        if CATALOGUE_PATH.read_text() != text:
            print(f"{CATALOGUE_PATH} is stale: run python -m graphspec.catalogue.generate", file=sys.stderr)
            return 1
        return 0
    CATALOGUE_PATH.write_text(text)
    print(f"wrote {CATALOGUE_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
