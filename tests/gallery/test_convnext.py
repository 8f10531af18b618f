"""specs/convnext_tiny.yaml is keras.applications.ConvNeXtTiny(weights=None), layer for layer.

Compared with Keras' own model (built here, no download): the same layers -- names, types, order, the
names of the layers nested in the stem and downsampling Sequentials --, the same parameters, and
bit-identical outputs for one image once the weights are copied by layer name.

One difference, by construction: the residual add of each block. Keras writes it ``inputs + x``, a
``keras.ops`` Add that Keras names itself from a process-wide counter (``add``, ``add_1``, ...,
``add_17`` in a fresh session; other numbers after any other add was made). graphspec names an op after
its node, as it names layers (an automatic name could collide with another node's), so these 18
operations are ``convnext_tiny_stage_<s>_block_<b>_add``. They are operations, not layers (no weights,
not in ``model.layers``); the test checks that they are exactly these, in the same places. The input is
named ``image`` (Keras' is automatic, ``input_layer``), as in the other gallery specs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

keras = pytest.importorskip("keras")

import graphspec  # noqa: E402

SPEC = Path(__file__).resolve().parents[2] / "specs" / "convnext_tiny.yaml"
PARAMS = 28_589_128


def test_check_is_fast_and_imports_no_tensorflow() -> None:
    """'graphspec check specs/convnext_tiny.yaml' passes without --plugin and without importing Keras: the
    spec declares graphspec's built-in plugin, whose LayerScale is catalogued and has a pure shape rule."""
    probe = ("import sys, time\nfrom typer.testing import CliRunner\nfrom graphspec.cli import app\n"
             "start = time.perf_counter()\n"
             f"result = CliRunner().invoke(app, ['check', {str(SPEC)!r}])\n"
             "print(result.exit_code, round(time.perf_counter() - start, 1),"
             " sorted({m.split('.')[0] for m in sys.modules} & {'keras', 'tensorflow'}))\n"
             "print(result.output)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    code, seconds, imported = done.stdout.split("\n", 1)[0].split(" ", 2)
    assert (code, imported) == ("0", "[]"), done.stdout[-3000:] + done.stderr[-3000:]
    assert float(seconds) < 5
    assert "total params: 28,589,128" in done.stdout


def _structure(model) -> list[tuple[str, str]]:
    """(type, name) of every operation of the functional graph, in the graph's order, and of the layers
    nested in its Sequentials (right after the Sequential)."""
    found = []
    for op in model._operations[1:]:  # [0] is the input layer, named by Keras (input_layer)
        found.append((type(op).__name__, op.name))
        if isinstance(op, keras.Sequential):
            found.extend((type(inner).__name__, inner.name) for inner in op.layers)
    return found


@pytest.mark.slow
def test_convnext_tiny_spec_is_keras_applications_convnext_tiny() -> None:
    keras.backend.clear_session(free_memory=False)  # Keras' automatic names (add, add_1, ...) from 0
    checked = graphspec.load(SPEC)  # LayerScale: the spec declares graphspec's built-in plugin
    assert checked.inferred.total_params == PARAMS
    built = graphspec.build(checked)
    reference = keras.applications.ConvNeXtTiny(weights=None)

    ours, theirs = _structure(built), _structure(reference)
    assert len(ours) == len(theirs) == 152 + 8  # the graph's operations; the Sequentials' layers
    adds = 0
    for (our_type, our_name), (their_type, their_name) in zip(ours, theirs):
        assert our_type == their_type
        if their_type == "Add":  # keras.ops' Add of 'inputs + x' (see the module docstring)
            assert re.fullmatch(r"add(_\d+)?", their_name)
            assert re.fullmatch(r"convnext_tiny_stage_[0-3]_block_\d_add", our_name)
            adds += 1
        else:
            assert our_name == their_name
    assert adds == 18
    assert [layer.name for layer in built.layers[1:]] == [layer.name for layer in reference.layers[1:]]

    assert built.count_params() == reference.count_params() == PARAMS
    copied = 0
    for layer in reference.layers:
        if layer.weights:
            layer.set_weights(built.get_layer(layer.name).get_weights())
            copied += 1
    # stem, 3 downsampling steps, 5 weighted layers in each of 18 blocks, head (the Normalization's mean and
    # variance are constants given in the spec, not weights)
    assert copied == 1 + 3 + 5 * 18 + 2
    x = np.random.default_rng(7).uniform(0, 255, (1, 224, 224, 3)).astype("float32")
    ours_out = np.asarray(built(x, training=False))
    theirs_out = np.asarray(reference(x, training=False))
    assert ours_out.shape == (1, 1000)
    np.testing.assert_array_equal(ours_out, theirs_out)
