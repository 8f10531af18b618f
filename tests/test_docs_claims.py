"""What the docs say about built models is what Keras does (issue 6, item 9: three claims were wrong).

Each test quotes the docs' claim and checks it against a real build, so a Keras upgrade that
changes the behaviour fails here instead of leaving the docs wrong again.
"""

from __future__ import annotations

import numpy as np
import pytest

from graphspec.pipeline import check_text
from testkit import REPO, check_errors, spec_text

SPEC_MD = (REPO / "docs" / "spec.md").read_text(encoding="utf-8")

MAPPING_OUTPUTS = spec_text("""
    graphspec: 1
    name: mapping_outputs
    inputs:
      x: {shape: [4, 8]}
    nodes:
      mha: {type: MultiHeadAttention, num_heads: 2, key_dim: 4, input: {query: x, value: x},
            call: {return_attention_scores: true}}
      head: {type: Dense, units: 3, input: "mha[0]"}
    outputs: {scores: "mha[1]", y: head}
""")

DROPOUT_TRAINING = spec_text("""
    graphspec: 1
    name: mc_dropout
    inputs:
      x: {shape: [64]}
    nodes:
      drop: {type: Dropout, rate: 0.5, call: {training: true}}
    outputs: [drop]
""")


def test_mapping_outputs_output_names_are_the_producing_layers():
    import graphspec

    assert 'output_names == ["mha", "head"]' in " ".join(SPEC_MD.split())
    model = graphspec.build(check_text(MAPPING_OUTPUTS))
    assert list(model.output_names) == ["mha", "head"]
    predicted = model.predict({"x": np.ones((2, 4, 8), "float32")}, verbose=0)
    assert sorted(predicted) == ["scores", "y"]
    assert predicted["scores"].shape == (2, 2, 4, 4)


def test_call_training_true_is_overridden_by_predict_but_not_by_a_direct_call():
    import graphspec

    assert "is *not* active in `predict`" in SPEC_MD
    model = graphspec.build(check_text(DROPOUT_TRAINING))
    x = np.ones((8, 64), "float32")
    predicted = model.predict(x, verbose=0)
    np.testing.assert_array_equal(predicted, x)  # predict passes training=False: no dropout
    called = np.asarray(model(x))
    assert (called == 0).any() and (called == 2).any()  # a direct call honours call: {training: true}


@pytest.mark.parametrize("key, value", [("params", 1), ("trainable_params", 1), ("output_shapes", "{drop: [3]}")])
def test_check_already_checks_expect(key, value):
    assert "`graphspec check` already compares" in SPEC_MD
    error = check_errors(DROPOUT_TRAINING + f"expect: {{{key}: {value}}}\n")
    assert [d.code for d in error.diagnostics] == ["expect-failed"]
    assert error.diagnostics[0].line == 8
