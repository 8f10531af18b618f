"""Predictions of classification outputs carry the predicted class and its probability."""

from __future__ import annotations

import numpy as np
import pytest

from graphspec.pipeline import check_text
from graphspec.train.predict import ClassOutput, class_arrays, classification_outputs

TWO_HEADS = """\
graphspec: 1
name: heads
inputs:
  x: {shape: [4]}
nodes:
  h: {type: Dense, units: 8, activation: relu}
  kind: {type: Dense, units: 3, activation: softmax, input: h}
  flag: {type: Dense, units: 1, activation: sigmoid, input: h}
  tags: {type: Dense, units: 4, input: h}
  size: {type: Dense, units: 1, input: h}
outputs: {kind: kind, flag: flag, tags: tags, size: size}
compile:
  optimizer: adam
  loss: {kind: categorical_crossentropy, flag: binary_crossentropy,
         tags: {type: BinaryCrossentropy, from_logits: true}, size: mse}
"""


def test_classification_outputs_follow_the_loss():
    found = classification_outputs(check_text(TWO_HEADS))
    assert found == {"kind": ClassOutput("categorical"), "flag": ClassOutput("binary"),
                     "tags": ClassOutput("binary", from_logits=True)}  # 'size' (mse) is no classification


def test_categorical_class_is_the_argmax_and_its_probability():
    value = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], np.float32)
    out = class_arrays("kind", value, ClassOutput("categorical"))
    assert out["kind_class"].tolist() == [1, 0] and out["kind_class"].dtype == np.int64
    assert out["kind_probability"].tolist() == pytest.approx([0.7, 0.5])


def test_logits_get_softmax_for_the_probability():
    logits = np.log(np.array([[0.2, 0.8]]))
    out = class_arrays("y", logits, ClassOutput("categorical", from_logits=True))
    assert out["y_class"].tolist() == [1] and out["y_probability"].tolist() == pytest.approx([0.8])


def test_binary_threshold_half_and_the_probability_of_the_class_predicted():
    out = class_arrays("flag", np.array([[0.9], [0.2], [0.5]]), ClassOutput("binary"))
    assert out["flag_class"].tolist() == [1, 0, 1]
    assert out["flag_probability"].tolist() == pytest.approx([0.9, 0.8, 0.5])


def test_multi_label_gives_a_0_1_per_label_and_no_single_probability():
    out = class_arrays("tags", np.array([[2.0, -1.0, 0.0, -3.0]]), ClassOutput("binary", from_logits=True))
    assert list(out) == ["tags_class"] and out["tags_class"].tolist() == [[1, 0, 1, 0]]


def test_predict_writes_class_columns(project):
    from graphspec.train.loop import train
    from graphspec.train.predict import predict

    result = train(project / "tiny.yaml", runs_root=project / "runs", run_name="p",
                   overrides=[(("train", "epochs"), 1)])
    summary = predict(result.run_dir, project / "data.npz", project / "out.npz")
    assert summary["arrays"]["y_class"] == [200] and summary["classes"] == {"y": "categorical"}
    with np.load(project / "out.npz") as out:
        assert out["y_class"].tolist() == out["y"].argmax(axis=1).tolist()
        np.testing.assert_allclose(out["y_probability"], out["y"].max(axis=1), rtol=1e-6)
    predict(result.run_dir, project / "data.npz", project / "out.csv")
    header, first = (project / "out.csv").read_text().splitlines()[:2]
    assert header == "y_0,y_1,y_2,y_class,y_probability"
    cells = first.split(",")
    assert cells[3] in ("0", "1", "2")  # an integer, not '1.0'
    assert int(cells[3]) == int(np.argmax([float(c) for c in cells[:3]]))
