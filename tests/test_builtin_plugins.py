"""graphspec's built-in plugins (graphspec.plugins.BUILTIN_PLUGINS: Keras' own classes that keras.layers does
not export) enable without importing Keras -- catalogue entries generated with Keras', pure shape rules,
classes imported when a model is built -- and a spec that declares one (``plugins: [...]``) has it. Other
plugins stay the runner's decision (tests/test_plugins.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import graphspec
from graphspec.canonical import spec_hash
from graphspec.errors import GraphspecError
from graphspec.pipeline import check_text
from graphspec.plugins import BUILTIN_PLUGINS, PluginError, _builtin_plugin, load_plugin
from testkit import spec_text

APPLICATIONS = "graphspec.plugins.applications"

DECLARED = spec_text("""
    graphspec: 1
    name: scaled
    plugins: [graphspec.plugins.applications]
    inputs:
      x: {shape: [7, 7, 16]}
    nodes:
      pw: {type: Dense, units: 16}
      scale: {type: LayerScale, init_values: 1.0e-6, projection_dim: 16}
      res: {type: Add, input: [x, scale]}
    outputs: [res]
    """)


def test_a_spec_declaring_a_builtin_plugin_has_it() -> None:
    checked = check_text(DECLARED)  # no plugin enabled by the runner
    assert checked.inferred.nodes["scale"].params == 16
    assert [plugin.name for plugin in checked.graph.plugins] == [APPLICATIONS]
    # the same plugin, record and hash as when the runner enables it
    enabled = graphspec.loads(DECLARED, plugins=[APPLICATIONS])
    assert checked.graph.plugins[0].record() == load_plugin(APPLICATIONS).record()
    assert spec_hash(checked.graph) == spec_hash(enabled.graph)


def test_without_the_declaration_the_builtin_plugin_is_still_named() -> None:
    with pytest.raises(GraphspecError) as error:
        check_text(DECLARED.replace("plugins: [graphspec.plugins.applications]\n", ""))
    assert [d.code for d in error.value.diagnostics] == ["plugin-not-enabled"]
    assert f"plugins: [{APPLICATIONS}]" in error.value.diagnostics[0].hint


def test_a_malformed_plugins_list_is_a_schema_error_not_a_crash() -> None:
    """Found by tests/test_fuzz.py: the declared built-ins were read before the schema checked the list."""
    for bad in ("[[graphspec.plugins.applications]]", "[{a: 1}, graphspec.plugins.applications]"):
        with pytest.raises(GraphspecError) as error:
            check_text(DECLARED.replace("[graphspec.plugins.applications]", bad, 1))
        assert error.value.stage == "schema"


def test_enabling_a_builtin_plugin_imports_no_keras() -> None:
    """Declared by the spec, or enabled with --plugin: check stays free of Keras and TensorFlow."""
    probe = ("import sys\nfrom graphspec.pipeline import check_text\nfrom graphspec.plugins import load_plugin, using\n"
             f"text = {DECLARED!r}\n"
             "declared = check_text(text)\n"
             "with using([load_plugin('graphspec.plugins.applications')]):\n"
             "    enabled = check_text(text.replace('plugins: [graphspec.plugins.applications]', ''))\n"
             "print(declared.inferred.total_params, enabled.inferred.total_params,"
             " sorted({m.split('.')[0] for m in sys.modules} & {'keras', 'tensorflow'}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "288 288 []", done.stdout + done.stderr[-2000:]


def test_classes_are_imported_on_demand_and_checked_against_the_catalogue(monkeypatch) -> None:
    plugin = load_plugin(APPLICATIONS)
    assert sorted(plugin.classes) == ["CustomScaleLayer", "LayerScale"] == sorted(plugin.entries)
    assert plugin.classes["LayerScale"].__module__ == "keras.src.applications.convnext"
    module = sys.modules[APPLICATIONS]
    monkeypatch.setattr(module, "layer_classes", lambda: [plugin.classes["LayerScale"]])
    stale = _builtin_plugin(APPLICATIONS)
    assert sorted(stale.classes) == sorted(plugin.entries)  # names come from the catalogue
    with pytest.raises(PluginError) as error:
        stale.classes["LayerScale"]
    assert "are not the catalogue's" in error.value.diagnostics[0].message
    assert "graphspec.catalogue.generate" in error.value.diagnostics[0].hint


def test_the_catalogue_holds_every_builtin_plugin() -> None:
    from graphspec.catalogue import keras_catalogue

    assert sorted(keras_catalogue().data["builtin_plugins"]) == sorted(BUILTIN_PLUGINS)


def test_a_declared_builtin_plugin_builds_without_being_enabled() -> None:
    import numpy as np

    model = graphspec.build(check_text(DECLARED))
    assert type(model.get_layer("scale")).__name__ == "LayerScale"
    x = np.ones((1, 7, 7, 16), "float32")
    assert np.asarray(model(x)).shape == (1, 7, 7, 16)
