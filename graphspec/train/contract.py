"""What the model expects of its data (:class:`ModelIO`, read from the built model and the spec),
and the checks of an opened source against it: shapes, dtypes, counts, finite values.

A mismatch is a located :class:`TrainError` naming the input, the expected and the received shape,
reported before any training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from graphspec.errors import DiagnosticSink, Path
from graphspec.pipeline import CheckedSpec

if TYPE_CHECKING:
    from graphspec.train.sources import Examples

Shape = tuple  # of int | None


# -- what the model expects ---------------------------------------------------------------------

@dataclass
class Tensor:
    shape: Shape
    dtype: str


@dataclass
class ModelIO:
    """The model's inputs and outputs by name, their per-example shapes and dtypes, and structure."""

    inputs: dict[str, Tensor]
    outputs: dict[str, Tensor]
    targets: list[str]
    """Outputs that have a loss, so need target data for training and evaluation."""
    sparse: set[str] = field(default_factory=set)
    """Outputs whose loss takes class indices (sparse categorical losses)."""
    sparse_metrics: set[str] = field(default_factory=set)
    """Outputs with a metric that takes class indices (``sparse_categorical_accuracy``, ...)."""
    dict_outputs: bool = False

    def x(self, values: dict):
        if len(self.inputs) == 1:
            return values[next(iter(self.inputs))]
        return {name: values[name] for name in self.inputs}

    def y(self, values: dict):
        if self.dict_outputs:
            return {name: values[name] for name in self.targets}
        if len(self.outputs) == 1:
            return values[self.targets[0]] if self.targets else None
        return tuple(values[name] for name in self.outputs if name in self.targets)


def _loss_names(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return getattr(value, "type", "")


def model_io(checked: CheckedSpec, model) -> ModelIO:
    """What ``model`` (built from ``checked``) takes and gives, per example."""
    from graphspec.emit import output_shapes

    spec = checked.spec
    inputs = {name: Tensor(tuple(inp.shape), inp.dtype) for name, inp in spec.inputs.items()}
    shapes = output_shapes(checked, model)
    outputs = {}
    model_outputs = model.outputs
    for i, name in enumerate(checked.graph.outputs):
        dtype = str(getattr(model_outputs[i], "dtype", "float32")) if i < len(model_outputs) else "float32"
        outputs[name] = Tensor(tuple(shapes.get(name, ())), dtype)
    targets: list[str] = []
    sparse: set[str] = set()
    loss = spec.compile.loss if spec.compile is not None else None
    for name in outputs:
        if isinstance(loss, dict) and "type" not in loss:
            own = loss.get(name)
        else:
            own = loss
        if own is not None:
            targets.append(name)
            if "sparse" in _loss_names(own).lower():
                sparse.add(name)
    sparse_metrics: set[str] = set()
    compile_ = spec.compile
    for metrics in (getattr(compile_, "metrics", None), getattr(compile_, "weighted_metrics", None)):
        for name in outputs:
            own = metrics.get(name) if isinstance(metrics, dict) else metrics
            own = own if isinstance(own, list) else [own] if own is not None else []
            if any("sparse" in _loss_names(m).lower() for m in own):
                sparse_metrics.add(name)
    return ModelIO(inputs=inputs, outputs=outputs, targets=targets, sparse=sparse, sparse_metrics=sparse_metrics,
                   dict_outputs=isinstance(spec.outputs, dict))


# -- checks -------------------------------------------------------------------------------------

def _fits(data: Shape, expected: Shape) -> bool:
    if len(data) != len(expected):
        return False
    return all(e is None or d is None or d == e for d, e in zip(data, expected))


def _dtype_fits(data: str, expected: str) -> bool:
    numeric = ("float", "int", "uint", "bool", "bfloat")
    if expected == "string":
        return data in ("string", "str") or data.startswith("<U") or data.startswith("bytes") or data.startswith("str")
    if data == "string" or data.startswith("str") or data.startswith("bytes"):
        return False
    if expected.startswith("float") or expected.startswith("bfloat"):
        return data.startswith(numeric)
    if expected.startswith(("int", "uint")):
        return data.startswith(("int", "uint", "bool"))
    if expected == "bool":
        return data == "bool"
    return True


def _fmt(shape: Shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def check_examples(examples: Examples, io_: ModelIO, where: Path, sink: DiagnosticSink, need_targets: bool) -> None:
    """Every input's (and target's) shape and dtype against the spec; counts; emptiness."""
    if examples.size == 0:
        sink.error("empty-data", f"{examples.description} has no examples", where)
        return
    for name, expected in io_.inputs.items():
        got = examples.shapes.get(name)
        if got is None:
            continue
        key = examples.keys.get(name)
        source_name = f"{examples.description}" + (f", '{key}'" if key and key != name else "")
        if not _fits(got.shape, expected.shape):
            sink.error("data-shape-mismatch",
                       f"input '{name}': the spec expects shape {_fmt(expected.shape)} per example, "
                       f"{source_name} gives {_fmt(got.shape)}", where,
                       f"reshape the data, or change inputs.{name}.shape to {list(got.shape)}")
        elif not _dtype_fits(got.dtype, expected.dtype):
            sink.error("data-dtype-mismatch", f"input '{name}': the spec expects {expected.dtype}, "
                       f"{source_name} gives {got.dtype}", where,
                       f"convert the data, or set inputs.{name}.dtype")
    if not need_targets:
        return
    for name in io_.targets:
        got = examples.shapes.get(name)
        if got is None:
            continue
        out = io_.outputs[name].shape
        key = examples.keys.get(name)
        source_name = f"{examples.description}" + (f", '{key}'" if key and key != name else "")
        options = [out]
        if out and out[-1] == 1:
            options.append(out[:-1])
        if name in io_.sparse and out:
            options += [out[:-1], out[:-1] + (1,)]
        if not any(_fits(got.shape, option) for option in options):
            expected_text = " or ".join(dict.fromkeys(_fmt(o) for o in options))
            hint = None
            if name not in io_.sparse and out and len(got.shape) == len(out) - 1:
                hint = ("class indices need a sparse loss (sparse_categorical_crossentropy), "
                        "or give one-hot targets")
            sink.error("data-shape-mismatch",
                       f"output '{name}': the model gives shape {_fmt(out)} per example, so its targets need "
                       f"{expected_text}; {source_name} gives {_fmt(got.shape)}", where, hint)
        elif got.dtype == "string" or got.dtype.startswith("<U"):
            sink.error("data-dtype-mismatch", f"output '{name}': targets must be numbers, {source_name} gives strings",
                       where)


_NONFINITE_HINT = ("graphspec does not train on NaN or infinite values: fix or drop those examples "
                   "(numpy.nan_to_num, or a mask such as numpy.isfinite(x).all(axis=1)), or fill the gaps")
_CHUNK = 1 << 22
"""Values per piece when scanning arrays (bounds the temporary memory of the checks)."""


def _first_rows(array: np.ndarray, bad: Callable[[np.ndarray], np.ndarray]) -> tuple[int, int, Any]:
    """How many examples of ``array`` have a value for which ``bad`` is true, the first one, and that value."""
    n = len(array)
    per_row = max(1, int(np.prod(array.shape[1:], dtype=np.int64)))
    step = max(1, _CHUNK // per_row)
    count, first, value = 0, -1, None
    for start in range(0, n, step):
        piece = array[start:start + step].reshape(-1, per_row)
        rows = bad(piece).any(axis=1)
        found = int(rows.sum())
        if found and first < 0:
            first = start + int(np.argmax(rows))
            row = piece[first - start]
            value = row[bad(row)][0]
        count += found
    return count, first, value


def check_values(examples: Examples, io_: ModelIO, where: Path, sink: DiagnosticSink, need_targets: bool) -> None:
    """The values of in-memory arrays: no NaN or infinity in inputs and targets, and whole class indices
    within the output's classes for targets of a sparse loss or metric.  (Streamed sources are checked
    while they are read: see :func:`open_tfrecord`.)"""
    if examples.arrays is None:
        return
    row_name = examples.row_name or (lambda i: f"example {i}")
    names = list(io_.inputs) + (list(io_.targets) if need_targets else [])
    for name in names:
        array = examples.arrays.get(name)
        if array is None or array.dtype.kind not in "fciub" or array.ndim == 0 or not len(array):
            continue
        role = "input" if name in io_.inputs else "output"
        key = examples.keys.get(name)
        source_name = examples.description + (f", '{key}'" if key and key != name else "")
        if array.dtype.kind in "fc":
            count, first, value = _first_rows(array, lambda a: ~np.isfinite(a))
            if count:
                sink.error("bad-data", f"{role} '{name}': {source_name} has NaN or infinite values in {count} "
                           f"example(s), the first in {row_name(first)} ({value})", where, _NONFINITE_HINT)
                continue
        if role != "output" or (name not in io_.sparse and name not in io_.sparse_metrics):
            continue
        out = io_.outputs[name].shape
        got = examples.shapes.get(name)
        if name not in io_.sparse and got is not None and out and out[-1] not in (None, 1) \
                and tuple(got.shape) == tuple(out):
            continue  # one-hot targets for a dense loss: the sparse metric is the user's own mismatch
        what = ("its sparse loss" if name in io_.sparse else "its sparse metric") + " takes class indices"
        if array.dtype.kind in "fc":
            count, first, value = _first_rows(array, lambda a: a != np.floor(a))
            if count:
                sink.error("bad-data", f"output '{name}': {what} (whole numbers 0, 1, ...); {source_name} has "
                           f"fractional values in {count} example(s), the first in {row_name(first)} ({value})",
                           where, "give class indices, or use a loss for one-hot or continuous targets "
                           "(categorical_crossentropy, binary_crossentropy, mse)")
                continue
        classes = out[-1] if out and out[-1] is not None and out[-1] > 1 else None
        if classes is not None:
            count, first, value = _first_rows(array, lambda a: (a < 0) | (a >= classes))
            if count:
                sink.error("bad-data", f"output '{name}': {what} from 0 to {classes - 1} (the output has "
                           f"{classes} classes); {source_name} has {value} in {count} example(s), the first in "
                           f"{row_name(first)}", where, f"give class indices below {classes}, or give the output "
                           "more units")
