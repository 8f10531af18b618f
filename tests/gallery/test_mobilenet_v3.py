"""specs/mobilenet_v3_small.yaml is keras.applications.MobileNetV3Small(weights=None) (issue 7).

Compared with Keras' own model, built in a fresh Keras session: the same layer types in the same
order, the same operations (layers and keras.ops calls) in the same order, the same names wherever
Keras' code names a layer, the same parameter count (also the one ``check`` infers without
TensorFlow), and bit-identical outputs once the weights are copied by name.

Names that differ, and why (the test asserts exactly these differences and no others):

- the 14 ``ReLU`` layers of the ReLU bottlenecks and of the hard sigmoids, and the 19
  ``Activation("hard_swish")`` layers, which Keras' ``relu()``/``hard_swish()``/``hard_sigmoid()``
  create without a name: Keras calls them ``re_lu``, ``re_lu_1``, ... and ``activation``,
  ``activation_1``, ..., numbered by a counter global to the Python process (the same call gives
  ``re_lu_17`` after another model was built). Those numbers say nothing of the architecture, so
  the spec names these layers after their place (``expanded_conv_1_expand_relu``,
  ``expanded_conv_3_squeeze_excite_relu6``, ``conv_1_hard_swish``). They have no weights: copying
  weights by name is unaffected.
- the 18 ``keras.ops`` operations of the hard sigmoids (``x + 3.0`` and ``* (1.0 / 6.0)``), which
  Keras names ``add``, ``add_1``, ... and ``multiply``, ... by the same counter; graphspec names an
  op after its node (docs/architecture.md, "op: nodes"): ``expanded_conv_squeeze_excite_shift``
  and ``expanded_conv_squeeze_excite_hard_sigmoid``.

The other layers Keras leaves unnamed occur once (``rescaling``, ``global_average_pooling2d``,
``dropout``, ``flatten``): the spec gives them the names Keras gives them in a fresh session.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from graphspec.canonical import canonical_data, graph_hash
from graphspec.loader import LoadedSpec
from graphspec.pipeline import check_file, check_loaded
from graphspec.source import SourceMap

SPEC = Path(__file__).resolve().parents[2] / "specs" / "mobilenet_v3_small.yaml"
PARAMS = 2_554_968


def test_check_infers_keras_parameter_count_without_tensorflow() -> None:
    """``graphspec check`` passes (its ``expect:`` included) without importing TensorFlow or Keras, and a
    ``--set params.classes`` keeps ``expect: params`` right."""
    probe = ("import sys\nfrom graphspec.cli import main\nsys.argv = ['graphspec', 'check', sys.argv[1], "
             "'--set', 'params.classes=10']\ntry:\n    main()\nfinally:\n"
             "    print('HEAVY=' + ','.join(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'})))")
    result = subprocess.run([sys.executable, "-c", probe, str(SPEC)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "HEAVY=\n" in result.stdout
    assert f"total params: {PARAMS - 1025 * 990:,}" in result.stdout
    checked = check_file(SPEC)
    assert checked.inferred.total_params == PARAMS
    names = list(checked.graph.nodes)
    assert [n for n in names if n.endswith("_add")] == [f"expanded_conv_{k}_add" for k in (2, 4, 5, 7, 9, 10)]
    assert sum(n.endswith("_project_bn") for n in names) == 11 and names[-1] == "predictions"
    # The canonical form (blocks kept; block outputs and inputs given by expressions) survives sorted keys.
    data = json.loads(json.dumps(canonical_data(checked.graph), sort_keys=True))
    again = check_loaded(LoadedSpec(data, SourceMap(file="canonical")))
    assert graph_hash(again) == graph_hash(checked) and list(again.graph.nodes) == names


@pytest.mark.slow
def test_spec_is_keras_applications_mobilenet_v3_small() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    keras = pytest.importorskip("keras")
    from graphspec.emit import emit

    keras.backend.clear_session(free_memory=False)  # Keras' automatic names as in a fresh process
    reference = keras.applications.MobileNetV3Small(weights=None)
    checked = check_file(SPEC)
    built = emit(checked)

    # The same layers, in the same order, named alike except Keras' numbered automatic names.
    assert [type(layer).__name__ for layer in built.layers] == [type(layer).__name__ for layer in reference.layers]
    differing = [(b.name, r.name, type(r).__name__) for b, r in zip(built.layers[1:], reference.layers[1:])
                 if b.name != r.name]
    assert all(re.fullmatch(r"re_lu(_\d+)?" if kind == "ReLU" else r"activation(_\d+)?", keras_name)
               and kind in ("ReLU", "Activation") for _, keras_name, kind in differing), differing
    assert [kind for *_, kind in differing].count("ReLU") == 14
    assert [kind for *_, kind in differing].count("Activation") == 19
    assert len(differing) == 33
    assert not {name for name, *_ in differing} & {layer.name for layer in reference.layers}

    # The same operations (layers and keras.ops calls) in the same order; the ops named after their nodes.
    assert [type(op).__name__ for op in built.operations] == [type(op).__name__ for op in reference.operations]
    ops = [(b.name, r.name) for b, r in zip(built.operations, reference.operations)
           if not isinstance(r, keras.layers.Layer)]
    assert len(ops) == 18
    assert all(re.fullmatch(r"(add|multiply)(_\d+)?", keras_name) and
               re.fullmatch(r"expanded_conv(_\d+)?_squeeze_excite_(shift|hard_sigmoid)", name) for name, keras_name in ops)

    assert built.count_params() == reference.count_params() == checked.inferred.total_params == PARAMS

    # Bit-identical outputs with the weights copied by name (random kernels; batch norm statistics too).
    rng = np.random.default_rng(7)
    copied = 0
    for layer in built.layers:
        if layer.weights:
            weights = [rng.normal(1.0 if "variance" in w.path else 0.0, 0.2, w.shape).astype("float32")
                       for w in layer.weights]
            weights = [np.abs(v) if "variance" in w.path else v for v, w in zip(weights, layer.weights)]
            layer.set_weights(weights)
            reference.get_layer(layer.name).set_weights(weights)
            copied += 1
    assert copied == sum(1 for layer in reference.layers if layer.weights)
    images = rng.uniform(0.0, 255.0, (2, 224, 224, 3)).astype("float32")
    expected = np.asarray(reference(images, training=False))
    assert np.array_equal(np.asarray(built(images, training=False)), expected)
    assert expected.shape == (2, 1000) and np.allclose(expected.sum(axis=1), 1.0, atol=1e-4)
