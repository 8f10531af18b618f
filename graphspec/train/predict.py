"""``graphspec predict``: a trained model plus inputs -> an NPZ (one array per output) or a CSV.

Batches are predicted one at a time and appended to temporary files, so the
outputs never have to fit in memory; the result appears atomically when
complete. In a CSV, an output of shape (k,) gives the columns ``name_0`` ..
``name_{k-1}`` and a scalar output the column ``name``.
"""

from __future__ import annotations

import csv
import os
import tempfile
import zipfile
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
    try:
        count, shapes = _predict_into(out_path, kind, model, dataset, names, io_, examples, size)
    except OSError as exc:  # a full disk, an unwritable folder: a named error, no partial output
        from graphspec.files import cannot_write

        raise cannot_write(out_path, exc, TrainError) from None
    return {"output": str(out_path), "examples": count, "data": what,
            "arrays": {name: [count, *shapes[name]] for name in names}}


def _predict_into(out_path: FsPath, kind: str, model, dataset, names: list[str], io_, examples, size: int):
    from graphspec.files import remove_stale_temps, temp_prefix

    out_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_path.parent, f"predict-{out_path.name}")  # what a killed predict left
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=temp_prefix(f"predict-{out_path.name}")) as scratch:
        parts = {name: open(FsPath(scratch) / f"{name}.raw", "wb") for name in names}
        shapes: dict[str, tuple] = {}
        dtypes: dict[str, np.dtype] = {}
        count = 0
        try:
            with datalib.data_errors("prediction stopped on bad data"):
                for batch in dataset:
                    x = batch[0]
                    values = _named(model.predict_on_batch(x), names, io_.dict_outputs)
                    for name, value in values.items():
                        if name not in shapes:
                            shapes[name], dtypes[name] = value.shape[1:], value.dtype
                        parts[name].write(np.ascontiguousarray(value, dtype=dtypes[name]).tobytes())
                    count += len(next(iter(values.values())))
        finally:
            for handle in parts.values():
                handle.close()
        if count == 0:
            raise TrainError([Diagnostic(code="empty-data", message=f"{examples.description} has no examples")])
        with rundir.AtomicFile(out_path, suffix=kind) as tmp:
            if kind == ".npz":
                _write_npz(tmp, scratch, names, shapes, dtypes, count)
            else:
                _write_csv(tmp, scratch, names, shapes, dtypes, count, size)
    return count, shapes


def _write_npz(tmp: FsPath, scratch: str, names, shapes, dtypes, count: int) -> None:
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for name in names:
            header = {"descr": np.lib.format.dtype_to_descr(dtypes[name]), "fortran_order": False,
                      "shape": (count, *shapes[name])}
            with archive.open(f"{name}.npy", "w", force_zip64=True) as entry, \
                    open(FsPath(scratch) / f"{name}.raw", "rb") as raw:
                np.lib.format.write_array_header_2_0(entry, header)
                while chunk := raw.read(1 << 22):
                    entry.write(chunk)


def _write_csv(tmp: FsPath, scratch: str, names, shapes, dtypes, count: int, rows_per_chunk: int) -> None:
    columns: list[str] = []
    widths = {}
    for name in names:
        width = int(np.prod(shapes[name])) if shapes[name] else 1
        widths[name] = width
        columns += [name] if not shapes[name] else [f"{name}_{i}" for i in range(width)]
    handles = {name: open(FsPath(scratch) / f"{name}.raw", "rb") for name in names}
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
                for row in np.concatenate(blocks, axis=1).tolist():
                    writer.writerow(row)
                done += take
    finally:
        for handle in handles.values():
            handle.close()
