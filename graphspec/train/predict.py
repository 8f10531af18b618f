"""``graphspec predict``: a trained model plus inputs -> an NPZ (one array per output) or a CSV.

Batches are predicted one at a time and appended to temporary files, so the
outputs never have to fit in memory; the result appears atomically when
complete. In a CSV, an output of shape (k,) gives the columns ``name_0`` ..
``name_{k-1}`` and a scalar output the column ``name``.

Classification outputs -- those whose loss is a (sparse) categorical or binary
cross-entropy (focal variants included) -- also get their predicted class, as
the extra arrays/columns ``<output>_class`` and ``<output>_probability``:

* categorical (softmax over the last axis): the index of the largest value, and that value;
* binary (one unit, or a scalar): 1 where the probability is >= 0.5, else 0, and the
  probability of the class predicted (p or 1 - p);
* multi-label (binary loss, several units): ``<output>_class`` holds 0/1 per label
  (each thresholded at 0.5); no ``_probability`` -- the output itself is the
  probability of each label.

A loss with ``from_logits: true`` gets softmax/sigmoid applied for the probability.
A name that is already an output's is not reused (that derived array is left out).
"""

from __future__ import annotations

import csv
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

import numpy as np

from graphspec.errors import Diagnostic, TrainError
from graphspec.train import data as datalib
from graphspec.train import rundir
from graphspec.train.evaluate import default_examples, load_model, open_target, source_for_file


def _named(outputs: Any, names: list[str], dict_outputs: bool) -> dict[str, np.ndarray]:
    if isinstance(outputs, dict):
        return {name: np.asarray(outputs[name]) for name in names}
    if isinstance(outputs, (list, tuple)):
        return {name: np.asarray(value) for name, value in zip(names, outputs)}
    return {names[0]: np.asarray(outputs)}


_CATEGORICAL = ("categoricalcrossentropy", "sparsecategoricalcrossentropy", "categoricalfocalcrossentropy",
                "sparsecategoricalfocalcrossentropy")
_BINARY = ("binarycrossentropy", "binaryfocalcrossentropy")


@dataclass(frozen=True)
class ClassOutput:
    """How an output's predicted class is read: ``categorical`` (argmax) or ``binary`` (>= 0.5)."""

    kind: str
    from_logits: bool = False


def classification_outputs(checked) -> dict[str, ClassOutput]:
    """The spec's outputs that are classifications, by output name (pure Python: the compile section)."""
    compile_ = checked.spec.compile
    loss = compile_.loss if compile_ is not None else None
    result = {}
    for name in checked.graph.outputs:
        own = loss.get(name) if isinstance(loss, dict) else loss
        if own is None:
            continue
        kind_name = own if isinstance(own, str) else getattr(own, "type", "")
        key = kind_name.replace("_", "").lower()
        args = getattr(own, "args", {}) if not isinstance(own, str) else {}
        if key in _CATEGORICAL:
            result[name] = ClassOutput("categorical", bool(args.get("from_logits", False)))
        elif key in _BINARY:
            result[name] = ClassOutput("binary", bool(args.get("from_logits", False)))
    return result


def class_arrays(name: str, value: np.ndarray, how: ClassOutput) -> dict[str, np.ndarray]:
    """``{name_class: ..., name_probability: ...}`` for one batch of one output (see the module's doc)."""
    value = np.asarray(value, dtype=np.float64)
    if how.kind == "categorical":
        if value.ndim < 2 or value.shape[-1] < 2:
            return {}
        if how.from_logits:
            shifted = np.exp(value - value.max(axis=-1, keepdims=True))
            value = shifted / shifted.sum(axis=-1, keepdims=True)
        return {f"{name}_class": value.argmax(axis=-1).astype(np.int64),
                f"{name}_probability": value.max(axis=-1).astype(np.float32)}
    if how.from_logits:
        value = 1.0 / (1.0 + np.exp(-value))
    if value.ndim == 1 or (value.ndim == 2 and value.shape[1] == 1):
        p = value.reshape(len(value))
        predicted = (p >= 0.5).astype(np.int64)
        return {f"{name}_class": predicted, f"{name}_probability": np.where(predicted == 1, p, 1.0 - p).astype(np.float32)}
    return {f"{name}_class": (value >= 0.5).astype(np.int64)}  # multi-label: 0/1 per label


def predict(target: str | os.PathLike, data: str | os.PathLike | Any = None, output: str | os.PathLike = "predictions.npz",
            *, mapping: dict | None = None, batch_size: int | None = None, best: bool = False) -> dict:
    """Predict every example of ``data`` and write ``output`` (``.npz`` or ``.csv``); returns a summary."""
    out_path = FsPath(output)
    kind = out_path.suffix.lower()
    if kind not in (".npz", ".csv"):
        raise TrainError([Diagnostic(code="bad-output-path", message=f"'{output}' must end in .npz or .csv")])
    opened = open_target(target, best=best)
    model = load_model(opened)
    io_ = datalib.model_io(opened.checked, model)
    if data is None:
        examples, what = default_examples(opened, io_, need_targets=False)
    elif isinstance(data, (str, os.PathLike)):
        source, located = source_for_file(opened.checked, data, mapping)
        examples = datalib.open_source(source, located, io_, (), need_targets=False)
        what = str(data)
    else:
        examples = datalib.open_python(data, io_, need_targets=False)
        what = "data"
    size = batch_size or (opened.settings or {}).get("batch_size") or 32
    dataset = datalib.eval_dataset(examples, io_, batch_size=size, with_targets=False)
    names = list(io_.outputs)
    classes = classification_outputs(opened.checked)
    try:
        count, shapes, names = _predict_into(out_path, kind, model, dataset, names, io_, examples, size, classes)
    except OSError as exc:  # a full disk, an unwritable folder: a named error, no partial output
        from graphspec.files import cannot_write

        raise cannot_write(out_path, exc, TrainError) from None
    return {"output": str(out_path), "examples": count, "data": what,
            "arrays": {name: [count, *shapes[name]] for name in names},
            "classes": {name: how.kind if how.kind == "categorical" or shapes[name] in ((), (1,)) else "multi-label"
                        for name, how in classes.items() if name in shapes}}


def _predict_into(out_path: FsPath, kind: str, model, dataset, outputs: list[str], io_, examples, size: int,
                  classes: dict[str, ClassOutput] | None = None):
    from graphspec.files import remove_stale_temps, temp_prefix

    out_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_path.parent, f"predict-{out_path.name}")  # what a killed predict left
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=temp_prefix(f"predict-{out_path.name}")) as scratch:
        parts: dict[str, Any] = {}
        names: list[str] = []  # the outputs, each followed by its derived class arrays
        shapes: dict[str, tuple] = {}
        dtypes: dict[str, np.dtype] = {}
        count = 0
        try:
            with datalib.data_errors("prediction stopped on bad data"):
                for batch in dataset:
                    x = datalib.backend_batch(batch[0])
                    values = _named(model.predict_on_batch(x), outputs, io_.dict_outputs)
                    for output, how in (classes or {}).items():
                        if output in values:
                            derived = class_arrays(output, values[output], how)
                            values.update({k: v for k, v in derived.items() if k not in outputs})
                    for name, value in values.items():
                        if name not in shapes:
                            shapes[name], dtypes[name] = value.shape[1:], value.dtype
                            parts[name] = open(FsPath(scratch) / f"{len(names)}.raw", "wb")
                            names.append(name)
                        parts[name].write(np.ascontiguousarray(value, dtype=dtypes[name]).tobytes())
                    count += len(next(iter(values.values())))
        finally:
            for handle in parts.values():
                handle.close()
        if count == 0:
            raise TrainError([Diagnostic(code="empty-data", message=f"{examples.description} has no examples")])
        with rundir.AtomicFile(out_path, suffix=kind) as tmp:
            files = {name: FsPath(scratch) / f"{i}.raw" for i, name in enumerate(names)}
            if kind == ".npz":
                _write_npz(tmp, files, names, shapes, dtypes, count)
            else:
                _write_csv(tmp, files, names, shapes, dtypes, count, size)
    return count, shapes, names


def _write_npz(tmp: FsPath, files: dict[str, FsPath], names, shapes, dtypes, count: int) -> None:
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for name in names:
            header = {"descr": np.lib.format.dtype_to_descr(dtypes[name]), "fortran_order": False,
                      "shape": (count, *shapes[name])}
            with archive.open(f"{name}.npy", "w", force_zip64=True) as entry, \
                    open(files[name], "rb") as raw:
                np.lib.format.write_array_header_2_0(entry, header)
                while chunk := raw.read(1 << 22):
                    entry.write(chunk)


def _write_csv(tmp: FsPath, files: dict[str, FsPath], names, shapes, dtypes, count: int, rows_per_chunk: int) -> None:
    columns: list[str] = []
    widths = {}
    for name in names:
        width = int(np.prod(shapes[name])) if shapes[name] else 1
        widths[name] = width
        columns += [name] if not shapes[name] else [f"{name}_{i}" for i in range(width)]
    handles = {name: open(files[name], "rb") for name in names}
    try:
        with open(tmp, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(columns)
            done = 0
            while done < count:
                take = min(rows_per_chunk, count - done)
                blocks = []
                for name in names:
                    itemsize = dtypes[name].itemsize * widths[name]
                    data = np.frombuffer(handles[name].read(itemsize * take), dtype=dtypes[name])
                    blocks.append(data.reshape(take, widths[name]))
                # Each block keeps its own type (an int64 class column stays '3', not '3.0').
                for row in zip(*(block.tolist() for block in blocks)):
                    writer.writerow([cell for part in row for cell in part])
                done += take
    finally:
        for handle in handles.values():
            handle.close()
