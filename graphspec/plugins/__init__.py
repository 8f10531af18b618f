"""Plugins: custom Keras layers, enabled by the person running graphspec — never by a spec.

A plugin is a Python module (or an installed package) named on the command line
(``graphspec check --plugin my_team_layers spec.yaml``) or in the Python API
(``graphspec.load(path, plugins=["my_team_layers"])``). Enabling it imports it; a spec only
*uses* its layer types (``type: Scale``) and may *declare* that it needs it
(``plugins: [my_team_layers]``: data, never imported), so that ``check`` without the plugin can
say which one to enable. The module exposes::

    GRAPHSPEC_PLUGIN = {
        "layers": [Scale, ...],            # Keras layer classes, registered with
                                           # keras.saving.register_keras_serializable
        "rules": {"Scale": scale_rule},    # optional shape rules, as graphspec.infer.rules
        "version": "1.2.0",                # optional (else __version__, else the package's version)
        "name": "my_team_layers",          # optional: if given, the import name itself
    }

(or a function returning that mapping). graphspec catalogues each class's constructor and
``call()`` arguments the way it catalogues Keras' own layers (:func:`graphspec.catalogue.generate.layer_entry`),
and records each plugin used by a spec — import name, version, SHA-256 of its source files — in the
spec hash and in the ``.keras`` artifact's metadata. The artifact is a plain Keras model: loading it
needs the plugin's classes registered (``import my_team_layers`` before ``keras.saving.load_model``).

This module imports neither Keras nor any plugin until a plugin is enabled: ``check`` without
plugins stays free of TensorFlow.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from graphspec.errors import Diagnostic, GraphspecError

BUILTIN_PROVIDERS: dict[str, str] = {
    "LayerScale": "graphspec.plugins.applications",
    "CustomScaleLayer": "graphspec.plugins.applications",
}
"""Layer types graphspec knows a plugin for, so that ``check`` without it names the plugin to enable
(kept equal to the built-in plugins' layers by ``tests/test_plugins.py``)."""

BUILTIN_PLUGINS: tuple[str, ...] = ("graphspec.plugins.applications",)
"""graphspec's own plugins: Keras' own layer classes that ``keras.layers`` does not export. Their catalogue
entries are generated with Keras' (``keras.json``, ``builtin_plugins``: a test sees them drift) and their
shape rules are pure Python, so enabling one imports no Keras (``check`` stays free of TensorFlow); the
classes are imported when a model is built. Being graphspec's own code holding only Keras' classes, a
built-in plugin is also enabled by a spec that declares it (``plugins: [graphspec.plugins.applications]``);
any other plugin only by the person running graphspec."""

PLUGIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class PluginError(GraphspecError):
    """A plugin that cannot be enabled (not importable, malformed, a layer name Keras already has...)."""

    stage = "plugin"


def _error(name: str, message: str, hint: str | None = None) -> PluginError:
    return PluginError([Diagnostic(code="bad-plugin", message=f"plugin '{name}': {message}", hint=hint)])


@dataclass(frozen=True, eq=False)
class Plugin:
    """An enabled plugin: its layer classes, their catalogue entries and shape rules."""

    name: str
    """The import name given to ``--plugin`` (``my_team_layers``, ``graphspec.plugins.applications``)."""
    version: str | None
    sha256: str
    """``sha256:<hex>`` of the plugin's source files (every ``.py`` file of a package)."""
    classes: Mapping[str, type] = field(repr=False)
    entries: dict[str, dict] = field(repr=False)
    rules: dict[str, Callable] = field(repr=False)

    def record(self) -> dict[str, Any]:
        """What the spec hash and the artifact's metadata record of the plugin."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


_LOADED: dict[str, Plugin] = {}
_ACTIVE: ContextVar[tuple[Plugin, ...]] = ContextVar("graphspec_plugins", default=())


def load_plugin(name: str) -> Plugin:
    """Import a plugin module and catalogue its layers (once per process). Raises :class:`PluginError`."""
    if name in _LOADED:
        return _LOADED[name]
    if not isinstance(name, str) or not PLUGIN_NAME.match(name):
        raise _error(str(name), "a plugin is named by its Python import name, e.g. my_team_layers or "
                                "my_package.layers")
    if name in BUILTIN_PLUGINS:
        _LOADED[name] = _builtin_plugin(name)
        return _LOADED[name]
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise _error(name, f"cannot import it ({exc})",
                     "install the package or put the module on PYTHONPATH") from None
    declared = getattr(module, "GRAPHSPEC_PLUGIN", None)
    if callable(declared):
        declared = declared()
    if not isinstance(declared, dict) or not isinstance(declared.get("layers"), (list, tuple)) \
            or not declared["layers"]:
        raise _error(name, "it has no GRAPHSPEC_PLUGIN = {'layers': [LayerClass, ...]}",
                     "see docs/plugins.md for what a plugin module exposes")
    unknown = set(declared) - {"layers", "rules", "version", "name"}
    if unknown:
        raise _error(name, f"GRAPHSPEC_PLUGIN has unknown keys: {', '.join(sorted(unknown))}",
                     "it takes 'layers', 'rules' and 'version'")
    if declared.get("name", name) != name:
        raise _error(name, f"GRAPHSPEC_PLUGIN names it '{declared['name']}'",
                     f"a plugin is known by its import name: enable it as --plugin {declared['name']}, or drop 'name'")
    import keras

    from graphspec.catalogue import keras_catalogue
    from graphspec.catalogue.generate import base_layer_arguments, layer_entry

    base_args = base_layer_arguments()
    keras_layers = keras_catalogue().data["layers"]
    classes: dict[str, type] = {}
    entries: dict[str, dict] = {}
    for cls in declared["layers"]:
        if not isinstance(cls, type) or not issubclass(cls, keras.layers.Layer):
            raise _error(name, f"{cls!r} is not a Keras layer class")
        layer_name = cls.__name__
        if layer_name in keras_layers:
            raise _error(name, f"its layer '{layer_name}' has the name of a Keras layer",
                         "rename the class: a spec's type names one class")
        if layer_name in classes:
            raise _error(name, f"it lists two layers named '{layer_name}'")
        if not _serializable(keras, cls):
            raise _error(name, f"its layer '{layer_name}' is not registered with Keras' serialization",
                         f"decorate it with @keras.saving.register_keras_serializable(package='{name}') so that "
                         "the saved model loads where the plugin is imported")
        classes[layer_name] = cls
        entries[layer_name] = {**layer_entry(cls, base_args), "plugin": name}
    rules = declared.get("rules") or {}
    if not isinstance(rules, dict) or any(not callable(f) or r not in classes for r, f in rules.items()):
        raise _error(name, "GRAPHSPEC_PLUGIN['rules'] maps the plugin's own layer names to shape rules")
    version = declared.get("version") or getattr(module, "__version__", None) or _package_version(name)
    plugin = Plugin(name=name, version=None if version is None else str(version), sha256=_source_digest(module),
                    classes=classes, entries=entries, rules=dict(rules))
    _LOADED[name] = plugin
    return plugin


class _ClassesOnDemand(Mapping):
    """A built-in plugin's layer classes by name: the names known from the catalogue, the classes imported
    (with Keras) the first time one is asked for, and checked against the catalogue's entries then."""

    def __init__(self, names: Sequence[str], load: Callable[[], dict[str, type]]):
        self._names = tuple(names)
        self._load = load
        self._classes: dict[str, type] | None = None

    def __getitem__(self, name: str) -> type:
        if name not in self._names:
            raise KeyError(name)
        if self._classes is None:
            self._classes = self._load()
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _builtin_plugin(name: str) -> Plugin:
    """A built-in plugin without Keras: entries from the catalogue, the module's pure rules, classes on demand."""
    from graphspec.catalogue import keras_catalogue

    module = importlib.import_module(name)  # graphspec's own: imports Keras only in layer_classes()
    entries = keras_catalogue().data.get("builtin_plugins", {}).get(name)
    if not entries:
        raise _error(name, "the catalogue has no entries for this built-in plugin",
                     "run python -m graphspec.catalogue.generate")

    def classes() -> dict[str, type]:
        found = {cls.__name__: cls for cls in module.layer_classes()}
        if sorted(found) != sorted(entries):
            raise _error(name, f"its layers ({', '.join(sorted(found))}) are not the catalogue's "
                         f"({', '.join(sorted(entries))})", "run python -m graphspec.catalogue.generate")
        return found

    version = getattr(module, "__version__", None) or _package_version(name)
    return Plugin(name=name, version=None if version is None else str(version), sha256=_source_digest(module),
                  classes=_ClassesOnDemand(list(entries), classes), entries=dict(entries), rules=dict(module.RULES))


def declared_builtin_plugins(data: Any) -> tuple[Plugin, ...]:
    """The built-in plugins a spec's plain data declares under ``plugins:`` (any other name stays data)."""
    declared = data.get("plugins") if isinstance(data, dict) else None
    if not isinstance(declared, list):
        return ()
    names = [name for name in declared if isinstance(name, str) and name in BUILTIN_PLUGINS]  # others: schema's
    return tuple(load_plugin(name) for name in dict.fromkeys(names))


def load_plugins(names: Iterable[str] | None) -> tuple[Plugin, ...]:
    """Enable several plugins (in order, duplicates once); two plugins may not define the same layer."""
    plugins: list[Plugin] = []
    for name in names or ():
        plugin = load_plugin(name)
        if plugin not in plugins:
            plugins.append(plugin)
    seen: dict[str, str] = {}
    for plugin in plugins:
        for layer in plugin.classes:
            if layer in seen:
                raise _error(plugin.name, f"its layer '{layer}' is also a layer of the plugin '{seen[layer]}'",
                             "enable one of the two")
            seen[layer] = plugin.name
    return tuple(plugins)


def _serializable(keras, cls: type) -> bool:
    """Keras' own classes load by module; any other must be registered (``package>Name``)."""
    if cls.__module__ == "keras" or cls.__module__.startswith("keras."):
        return True
    return keras.saving.get_registered_object(keras.saving.get_registered_name(cls)) is cls


def _package_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name.split(".")[0])
    except metadata.PackageNotFoundError:
        return None


def _source_digest(module) -> str:
    """SHA-256 over the plugin's source files: the module's file, or every ``.py`` file of a package."""
    digest = hashlib.sha256()
    paths = getattr(module, "__path__", None)
    if paths:
        files = sorted((p for root in paths for p in Path(root).rglob("*.py") if "__pycache__" not in p.parts),
                       key=lambda p: str(p))
        roots = [Path(r) for r in paths]
    else:
        files = [Path(module.__file__)] if getattr(module, "__file__", None) else []
        roots = [f.parent for f in files]
    for path in files:
        root = next(r for r in roots if r in path.parents or r == path.parent)
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()


# -- the plugins in effect -----------------------------------------------------------------------

def active_plugins() -> tuple[Plugin, ...]:
    """The plugins enabled in this context (none unless the CLI or the API enabled some)."""
    return _ACTIVE.get()


@contextlib.contextmanager
def using(plugins: Sequence[Plugin]) -> Iterator[tuple[Plugin, ...]]:
    """Enable ``plugins`` (in addition to those in effect) inside the block."""
    merged = tuple(dict.fromkeys((*_ACTIVE.get(), *plugins)))
    token = _ACTIVE.set(merged)
    try:
        yield merged
    finally:
        _ACTIVE.reset(token)


def enable(names: Iterable[str] | None) -> tuple[Plugin, ...]:
    """Load and enable plugins for the rest of this context (the command line: one command per process)."""
    plugins = load_plugins(names)
    if plugins:
        _ACTIVE.set(tuple(dict.fromkeys((*_ACTIVE.get(), *plugins))))
    return plugins


def plugin_rule(layer_type: str) -> Callable | None:
    """The shape rule an enabled plugin gives for one of its layers."""
    for plugin in _ACTIVE.get():
        if layer_type in plugin.rules:
            return plugin.rules[layer_type]
    return None


def plugin_class(layer_type: str) -> type | None:
    """The layer class an enabled plugin defines under this name."""
    for plugin in _ACTIVE.get():
        if layer_type in plugin.classes:
            return plugin.classes[layer_type]
    return None


def used_plugins(spec) -> tuple[Plugin, ...]:
    """The enabled plugins whose layers a validated spec uses (nodes, shared layers, nested layers)."""
    active = _ACTIVE.get()
    if not active:
        return ()
    by_layer = {layer: plugin for plugin in active for layer in plugin.classes}
    found: dict[Plugin, None] = {}
    dumped = spec.model_dump(mode="python")
    stack: list[Any] = [dumped.get("nodes"), dumped.get("layers")]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            kind = item.get("type")
            if isinstance(kind, str) and kind in by_layer:
                found[by_layer[kind]] = None
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return tuple(p for p in active if p in found)


def missing_plugin_hint(layer_type: str, declared: Sequence[str] = ()) -> tuple[str, str] | None:
    """``(message, hint)`` for a layer type unknown to the catalogue that a plugin not enabled would give:
    a built-in plugin graphspec knows, or a plugin the spec declares it needs (``plugins:``)."""
    enabled = {p.name for p in _ACTIVE.get()}
    provider = BUILTIN_PROVIDERS.get(layer_type)
    if provider is not None and provider not in enabled:
        return (f"layer type '{layer_type}' comes from the plugin '{provider}', which is not enabled",
                f"enable it: graphspec check --plugin {provider} ... (Python: graphspec.load(path, "
                f"plugins=['{provider}'])), or declare it in the spec: plugins: [{provider}]")
    missing = [name for name in declared if name not in enabled]
    if missing:
        names = ", ".join(f"'{n}'" for n in missing)
        flags = " ".join(f"--plugin {n}" for n in missing)
        return (f"unknown layer type '{layer_type}'; the spec needs the plugin{'s' if len(missing) > 1 else ''} "
                f"{names}, not enabled", f"enable {'them' if len(missing) > 1 else 'it'}: graphspec check {flags} ...")
    return None
