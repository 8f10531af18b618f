"""The ``expect:`` section checked against inferred counts and shapes, before TensorFlow.

Only what inference knows is compared (a layer without a shape rule leaves the count
unknown); ``graphspec build`` checks everything again against the built model.
"""

from __future__ import annotations

from graphspec.errors import DiagnosticSink, InferError
from graphspec.infer import InferredGraph


def check_expectations(inferred: InferredGraph) -> None:
    """Raise :class:`InferError` where ``expect:`` contradicts what inference found."""
    spec = inferred.graph.spec
    expect = spec.expect
    if expect is None:
        return
    sink = DiagnosticSink(source=inferred.graph.source)
    total, trainable = inferred.total_params, inferred.trainable_params
    if expect.params is not None and total is not None and total != expect.params:
        sink.error("expect-failed", f"expected {expect.params:,} parameters, the model has {total:,}",
                   ("expect", "params"), f"if the change is intended, set params: {total}")
    # Frozen layers and blocks are counted as non-trainable by inference (exactly as Keras does).
    if expect.trainable_params is not None and trainable is not None and trainable != expect.trainable_params:
        sink.error("expect-failed",
                   f"expected {expect.trainable_params:,} trainable parameters, the model has {trainable:,}",
                   ("expect", "trainable_params"), f"if the change is intended, set trainable_params: {trainable}")
    for name, expected in (expect.output_shapes or {}).items():
        actual = inferred.outputs.get(name)
        if actual is not None and list(actual.shape[1:]) != list(expected):
            sink.error("expect-failed", f"expected output '{name}' of shape {expected}, the model gives "
                       f"{list(actual.shape[1:])}", ("expect", "output_shapes", name))
    sink.raise_if_errors(InferError)
