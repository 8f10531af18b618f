"""Shared helpers of the train tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import numpy as np

TINY_SPEC = """\
graphspec: 1
name: tiny
inputs:
  x: {shape: [4]}
nodes:
  h: {type: Dense, units: 8, activation: relu}
  drop: {type: Dropout, rate: 0.2}
  y: {type: Dense, units: 3, activation: softmax}
outputs: [y]
compile:
  optimizer: {type: Adam, learning_rate: 0.01}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
train:
  data: {npz: data.npz}
  validation: {split: 0.25}
  batch_size: 16
  epochs: 3
  seed: 1
  verbose: 0
"""


def tiny_arrays(n: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5).astype(np.int64)
    return {"x": x, "y": y}


def weights_of(model) -> list[np.ndarray]:
    return [np.asarray(w) for w in model.get_weights()]
