"""``graphspec import``: an existing Keras model to a spec (see docs/import.md).

Sources: a ``.keras`` archive (its ``config.json`` read as plain JSON after the archive checks, never
deserialized by Keras), a JSON config (``model.to_json()``), ``keras.applications.NAME`` with keyword
arguments, or a Python factory ``package.module:function`` (runs the user's code: only with
``allow_code=True``). The spec is checked by graphspec's own pure-Python stages before it is returned, and
its ``expect:`` filled from what ``check`` infers (or from the built model, when Keras built one).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from graphspec.importer.convert import Converter
from graphspec.importer.graph import model_to_spec
from graphspec.importer.source import (ImportSourceError, check_classes, copy_archive_weights, fail, read_archive,
                                       read_json_config)
from graphspec.importer.writer import dump

__all__ = ["ImportResult", "ImportSourceError", "import_model"]

_APPLICATION = re.compile(r"^keras\.applications\.([A-Za-z0-9_]+)$")
_FACTORY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*):([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass
class ImportResult:
    data: dict
    """The spec as plain data (what ``text`` says)."""
    text: str
    """The spec as YAML."""
    model: Any = None
    """The Keras model, where the source was built by Keras (applications, factories); None for files."""
    archive: FsPath | None = None
    """The .keras archive imported (its ``model.weights.h5`` is the weights ``write_weights`` copies)."""
    notes: list[str] = field(default_factory=list)

    def write_weights(self, target: FsPath) -> FsPath:
        """Keras' ``.weights.h5`` of the imported model: the archive's own (copied, bounded), or saved by Keras."""
        from graphspec.files import AtomicFile

        if self.model is not None:
            with AtomicFile(target, suffix=".weights.h5") as tmp:
                self.model.save_weights(str(tmp))
            return target
        if self.archive is None:
            raise fail("no-weights", "a JSON config holds no weights", "import the .keras file instead")
        copy_archive_weights(self.archive, target)
        return target


def import_model(source: str, *, kwargs: dict | None = None, allow_code: bool = False, expect: bool = True,
                 header: bool = True, weights: bool = False, weights_name: str | None = None,
                 directory: str | FsPath | None = None, fold: bool = False) -> ImportResult:
    """Import ``source`` (see the module doc); raises :class:`graphspec.errors.GraphspecError`.

    ``directory``: the folder the spec will be written to (where its ``model:`` files are looked up when
    ``expect:`` is filled in)."""
    kwargs = dict(kwargs or {})
    model = None
    metadata: dict = {}
    match_app = _APPLICATION.match(source)
    match_factory = _FACTORY.match(source)
    if match_app:
        model = _application(match_app.group(1), kwargs)
        full = _model_json(model)
        where = source
    elif match_factory and not FsPath(source).exists():
        if not allow_code:
            raise fail("code-not-allowed", f"'{source}' is a Python factory: importing it runs its code",
                       "pass --allow-code to run it (only for code you trust)")
        model = _factory(match_factory.group(1), match_factory.group(2), kwargs)
        full = _model_json(model)
        where = source
    else:
        path = FsPath(source)
        where = str(path)
        if path.suffix == ".keras":
            full, metadata = read_archive(path)
        elif path.suffix == ".json":
            full = read_json_config(path)
        else:
            raise fail("unknown-source", f"'{source}' is neither a .keras archive, a .json config, "
                       "keras.applications.NAME nor package.module:function",
                       "see docs/import.md for the sources graphspec imports")
        if kwargs:
            raise fail("bad-argument", "--arg applies to keras.applications and factories only", file=where)
    if not isinstance(full, dict):
        raise fail("bad-config", f"{where}: the config is not a JSON object", file=where)
    from graphspec.plugins import load_plugins, using

    builtin = _builtin_plugins_needed(full)
    if weights and model is None and not str(source).endswith(".keras"):
        raise fail("no-weights", f"'{source}' holds no weights", "import the .keras file to take its weights")
    with using(load_plugins(builtin)):
        result = _convert(source, full, metadata, where, model, builtin, expect, header,
                          (weights_name or "model.weights.h5") if weights else None, directory, fold)
    if model is None and str(source).endswith(".keras"):
        result.archive = FsPath(source)
    return result


def _convert(source, full, metadata, where, model, builtin, expect, header, weights_name, directory,
             fold=False) -> ImportResult:
    from graphspec.plugins import active_plugins

    plugin_classes = {cls for plugin in active_plugins() for cls in _plugin_class_names(plugin)}
    check_classes(full, where, plugin_classes)
    conv = Converter(where, plugin_classes)
    conv.hints = _written_hints(metadata)
    data = model_to_spec(full, full.get("compile_config"), where, conv, _call_names(metadata))
    _carry_metadata(data, metadata)
    if builtin:
        data = _after_header(data, "plugins", builtin)
    if weights_name:
        data = _after_header(data, "weights", weights_name)
    if expect:
        _fill_expect(data, model, directory)
    if fold:
        data = _folded(data, directory)
    comment = f"imported by graphspec import from {source}" if header else None
    return ImportResult(data=data, text=_in_fmts_layout(dump(data, comment)), model=model)


def _in_fmts_layout(text: str) -> str:
    """The written spec in ``graphspec fmt``'s layout, so that ``fmt --check`` (and its pre-commit hook) passes
    on what import writes; as written if fmt cannot format it (a spec is still a spec)."""
    from graphspec.errors import GraphspecError
    from graphspec.fmt import canonical_text

    try:
        return canonical_text(text)
    except GraphspecError:  # fmt's own refusals, or the loader's: the spec is written as laid out here
        return text


def _plugin_class_names(plugin) -> list[str]:
    return list(plugin.entries)


def _builtin_plugins_needed(config: Any) -> list[str]:
    """graphspec's built-in plugins providing Keras' own unexported classes the config names (ConvNeXt's LayerScale)."""
    from graphspec.plugins import BUILTIN_PROVIDERS

    needed: list[str] = []
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            module = item.get("module")
            provider = BUILTIN_PROVIDERS.get(item.get("class_name"))
            if provider and isinstance(module, str) and module.startswith("keras.src.applications."):
                if provider not in needed:
                    needed.append(provider)
            stack.extend(item.values())
    return needed


def _model_json(model) -> dict:
    import json

    data = json.loads(model.to_json())
    return data


def _application(name: str, kwargs: dict):
    from graphspec.backend import import_tensorflow

    import_tensorflow()
    import keras

    factory = getattr(keras.applications, name, None)
    if factory is None or not callable(factory) or name.startswith("_") or name[0].islower():
        raise fail("unknown-application", f"keras.applications has no model '{name}'",
                   "e.g. keras.applications.ResNet50 (a class-like name)")
    kwargs.setdefault("weights", None)
    if kwargs["weights"] not in (None,):
        raise fail("bad-argument", "weights= other than None would download files; import weights=None and "
                   "load your own with --weights")
    try:
        return factory(**kwargs)
    except Exception as exc:  # Keras' complaint about the arguments
        raise fail("bad-argument", f"keras.applications.{name}: {str(exc).splitlines()[0][:400]}") from None


def _factory(module_name: str, function: str, kwargs: dict):
    from graphspec.backend import import_tensorflow

    import_tensorflow()
    module = importlib.import_module(module_name)
    fn = getattr(module, function, None)
    if not callable(fn):
        raise fail("unknown-factory", f"'{module_name}' has no function '{function}'")
    model = fn(**kwargs)
    if not hasattr(model, "to_json"):
        raise fail("not-a-model", f"'{module_name}:{function}' returned a {type(model).__name__}, not a Keras model")
    return model


def _call_names(metadata: dict) -> dict[tuple[str, int], str]:
    """Names of shared-layer calls, from a graphspec-built archive's canonical spec (Keras keeps no call names)."""
    spec = (metadata.get("graphspec") or {}).get("canonical_spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("nodes"), dict):
        return {}
    counts: dict[str, int] = {}
    names: dict[tuple[str, int], str] = {}
    for node_name, node in spec["nodes"].items():
        if isinstance(node, dict) and isinstance(node.get("shared"), str):
            i = counts.get(node["shared"], 0)
            names[(node["shared"], i)] = node_name
            counts[node["shared"]] = i + 1
    return names if not (spec.get("blocks") or spec.get("params")) else {}


def _written_hints(metadata: dict) -> dict:
    """How a graphspec-built archive's spec wrote its nodes, shared layers and compile section (expanded, for a
    spec with blocks): only the spelling of what the config holds is taken from it (which Keras defaults were
    written out, the optimizer's name), never a value. Empty for archives Keras alone wrote."""
    spec = (metadata.get("graphspec") or {}).get("canonical_spec")
    if not isinstance(spec, dict):
        return {}
    try:
        from graphspec.canonical import expanded_data
        from graphspec.loader import LoadedSpec
        from graphspec.pipeline import check_loaded
        from graphspec.source import SourceMap

        spec = {k: v for k, v in spec.items() if k != "plugin_versions"}  # recorded beside the spec, not in it
        checked = check_loaded(LoadedSpec(spec, SourceMap(file="metadata.json")), check_files=False)
        flat = expanded_data(checked.graph)
    except Exception:  # a spec this graphspec cannot read (another version): no hints
        return {}
    return {"nodes": flat.get("nodes") or {}, "layers": flat.get("layers") or {}, "compile": flat.get("compile") or {}}


def _after_header(data: dict, key: str, value: Any) -> dict:
    out = {k: data[k] for k in ("graphspec", "name", "description") if k in data}
    out[key] = value
    out.update({k: v for k, v in data.items() if k not in out})
    return out


def _carry_metadata(data: dict, metadata: dict) -> None:
    """A graphspec-built archive's description (Keras' config has none)."""
    spec = (metadata.get("graphspec") or {}).get("canonical_spec")
    if isinstance(spec, dict) and isinstance(spec.get("description"), str):
        ordered = {"graphspec": data.pop("graphspec"), "name": data.pop("name"), "description": spec["description"]}
        if isinstance(spec.get("plugins"), list):
            ordered["plugins"] = spec["plugins"]
        ordered.update(data)
        data.clear()
        data.update(ordered)


def _folded(data: dict, directory) -> dict:
    """``data`` with repeated sub-graphs as blocks (:mod:`graphspec.importer.fold`), kept only when the folded
    spec expands to the very same graph (graph hash), else ``data`` unfolded."""
    from graphspec.canonical import graph_hash
    from graphspec.importer.fold import fold
    from graphspec.pipeline import check_text

    folded = fold(data)
    if folded is data:
        return data
    plain = {k: v for k, v in data.items() if k != "weights"}
    try:
        same = graph_hash(check_text(dump(plain), file="imported.yaml", directory=directory)) == graph_hash(
            check_text(dump({k: v for k, v in folded.items() if k != "weights"}), file="imported.yaml",
                       directory=directory))
    except Exception:  # a fold the spec language cannot say: keep the flat spec
        same = False
    return folded if same else data


def _fill_expect(data: dict, model, directory) -> None:
    from graphspec.pipeline import check_text

    text = dump({k: v for k, v in data.items() if k != "weights"})  # the weights are written after this
    params = shapes = None
    try:
        checked = check_text(text, file="imported.yaml", directory=directory)
        params = checked.inferred.total_params
        shapes = {name: list(info.shape[1:]) for name, info in checked.inferred.outputs.items()
                  if info is not None and not isinstance(info, (list, tuple))}
        if any(any(d is None for d in s) and False for s in shapes.values()):
            shapes = None
    except Exception:  # the caller's check reports it, located in the written spec
        checked = None
    if model is not None:
        params = model.count_params()
    expect: dict[str, Any] = {}
    if params is not None:
        expect["params"] = params
    if shapes:
        expect["output_shapes"] = shapes
    if expect:
        data["expect"] = expect
