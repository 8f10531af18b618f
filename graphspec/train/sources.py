"""Data sources opened into :class:`Examples`, checked against the spec (:mod:`.contract`).

Every source is opened into :class:`Examples` — arrays in memory (NPZ, the
built-in digits, CSV, image folders as file lists, a dict of arrays) or a stream
(TFRecord, a ``tf.data.Dataset``) — keyed by the spec's input and output names.
Before any training, each example's shape and dtype are compared with what the
model expects (:class:`ModelIO`); a mismatch is a located :class:`TrainError`
naming the input, the expected and the received shape.

Shuffling is seeded per epoch (``seed``, epoch number), so the order of epoch
*k* does not depend on how many epochs ran in this process: a resumed run sees
exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any, Callable

import numpy as np

from graphspec.files import confined_path
from graphspec.errors import Diagnostic, DiagnosticSink, Path, TrainError, did_you_mean
from graphspec.pipeline import CheckedSpec
from graphspec.schema.train import (
    BuiltinSource,
    CsvSource,
    ImageDirSource,
    NpzSource,
    TfrecordSource,
)
from graphspec.train.contract import (
    _NONFINITE_HINT,
    ModelIO,
    Shape,
    Tensor,
    _first_rows,
    check_examples,
    check_values,
)
from graphspec.train.streamerrors import _MARK, _ORIGINS, _checked_map, _Origin, _plain_fn, _register, _tf_message

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
DATA_DIR = FsPath(__file__).resolve().parent.parent / "data"



# -- opened sources -----------------------------------------------------------------------------

@dataclass
class Examples:
    """One opened data source, keyed by spec input/output names."""

    description: str
    """How errors name it: ``npz 'data/train.npz'``."""
    count: int | None
    arrays: dict[str, np.ndarray] | None = None
    """In-memory arrays, the first axis the examples."""
    keys: dict[str, str] = field(default_factory=dict)
    """Spec name -> name in the file (for messages)."""
    indices: np.ndarray | None = None
    """A subset of the arrays' examples (validation split), in this order."""
    element: Callable | None = None
    """Per-example transform of gathered array values (decoding image files)."""
    stream: Callable[[], Any] | None = None
    """A function giving an unbatched ``tf.data.Dataset`` of dicts keyed by spec names."""
    skip: int = 0
    take: int | None = None
    batched: bool = False
    """A user's ``tf.data.Dataset`` that is already batched."""
    cache: bool = False
    shapes: dict[str, Tensor] = field(default_factory=dict)
    """Per-example shape and dtype of each name, as the source gives it (before casting)."""
    row_name: Callable[[int], str] | None = None
    """How errors name example *i* of the arrays (``line 7`` for CSV); default ``example i``."""
    origin: Diagnostic | None = None
    """Where the source is in the spec (file, line, column, path): errors met while streaming it point there."""
    failed: Callable[[str], str] | None = None
    """For ``element`` decoding files: a failed file's name -> what is wrong with it (read again to tell)."""
    failed_hint: str = ""
    origin_token: int | None = None
    """A stream's registered :class:`_Origin` (its location is filled in when the source is opened)."""
    verify: Callable[["Examples", DiagnosticSink], None] | None = None
    """A stream's reading pass, run once its shapes are known to fit (it sets ``count``)."""

    @property
    def size(self) -> int | None:
        if self.indices is not None:
            return len(self.indices)
        if self.count is None:
            return None
        n = self.count - self.skip
        return n if self.take is None else min(n, self.take)


def resolve_data_path(checked: CheckedSpec, raw: str, where: Path, sink: DiagnosticSink, *,
                      directory: bool = False) -> FsPath | None:
    """A data path from the spec: relative to the spec's folder, never leaving it, existing."""
    base = checked.directory.resolve()
    target = confined_path(raw, base, where, sink, what="training data")
    if target is None:
        return None
    if directory and not target.is_dir():
        sink.error("file-not-found", f"no folder '{raw}' (looked in {base})", where)
        return None
    if not directory and not target.is_file():
        sink.error("file-not-found", f"no file '{raw}' (looked in {base})", where)
        return None
    return target


def _wanted(io_: ModelIO, need_targets: bool) -> list[str]:
    return list(io_.inputs) + (list(io_.targets) if need_targets else [])


def _arrays_examples(description: str, arrays: dict[str, np.ndarray], keys: dict[str, str], limit: int | None,
                     where: Path, sink: DiagnosticSink) -> Examples | None:
    if limit is not None:
        arrays = {k: v[:limit] for k, v in arrays.items()}
    lengths = {name: (len(a) if a.ndim else None) for name, a in arrays.items()}
    if any(n is None for n in lengths.values()):
        bad = next(name for name, n in lengths.items() if n is None)
        sink.error("bad-data", f"{description}: '{keys.get(bad, bad)}' is a scalar, not one value per example", where)
        return None
    if len(set(lengths.values())) > 1:
        listing = ", ".join(f"'{keys.get(k, k)}' {n}" for k, n in lengths.items())
        sink.error("bad-data", f"{description}: the arrays have different numbers of examples ({listing})", where)
        return None
    count = next(iter(lengths.values())) if lengths else 0
    shapes = {name: Tensor(tuple(a.shape[1:]), a.dtype.name if a.dtype.kind not in "US" else "string")
              for name, a in arrays.items()}
    return Examples(description=description, count=count, arrays=arrays, keys=keys, shapes=shapes)


def _missing_name(sink, description: str, name: str, key: str, available: list[str], where: Path, what: str,
                  io_: ModelIO) -> None:
    role = "input" if name in io_.inputs else "output"
    hint = did_you_mean(key, available)
    if hint is None:
        hint = f"map it to one of its {what}s: map: {{{name}: <{what}>}}" if available else None
    else:
        hint = hint[:-1] + f" (map: {{{name}: {hint.split(chr(39))[1]}}})"
    sink.error("missing-data", f"{role} '{name}' has no data: {description} has no {what} '{key}'"
               + (f" (it has {', '.join(available[:20])})" if available else ""), where, hint)


def open_npz(source: NpzSource, checked: CheckedSpec, io_: ModelIO, where: Path, sink: DiagnosticSink,
             need_targets: bool) -> Examples | None:
    path = resolve_data_path(checked, source.npz, where + ("npz",), sink)
    if path is None:
        return None
    return _load_npz(path, f"npz '{source.npz}'", source, io_, where, sink, need_targets)


def _load_npz(path: FsPath, description: str, source, io_: ModelIO, where: Path, sink: DiagnosticSink,
              need_targets: bool, extra: Callable[[dict], dict] | None = None) -> Examples | None:
    rewrite = "write it again with numpy.savez(path, name=array, ...) or numpy.savez_compressed"
    # Only a zip archive is handed to numpy: anything else would be tried as a pickle (refused, but numpy's
    # message then suggests loading it unsafely).
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
    except OSError as exc:
        sink.error("bad-data", f"{description} cannot be read: {exc.strerror or exc}", where)
        return None
    if magic.startswith(b"\x93NUMPY"):
        sink.error("bad-data", f"{description} holds a single array (a .npy file), not named arrays", where,
                   "save it with numpy.savez(path, input_name=array, ...)")
        return None
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        sink.error("bad-data", f"{description} is not an NPZ file (a zip archive of .npy arrays)"
                   + ("; it is empty" if not magic else ""), where, rewrite)
        return None
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # a damaged or truncated archive: the user's file to fix
        sink.error("bad-data", f"{description} is a damaged NPZ file: {_member_error(exc)}", where, rewrite)
        return None
    with archive:
        available = list(archive.files)
        raw: dict[str, np.ndarray] = {}
        member = ""

        def read(key):
            nonlocal member
            member = key
            value = archive[key]
            member = ""
            return value

        try:
            loader = read
            if extra is not None:
                derived = extra({k: read(k) for k in available})
                available = list(derived)
                loader = derived.__getitem__
            keys = {}
            for name in _wanted(io_, need_targets):
                key = source.map.get(name, name)
                if key not in available:
                    _missing_name(sink, description, name, key, available, where, "array", io_)
                    continue
                raw[name] = np.asarray(loader(key))
                keys[name] = key
        except Exception as exc:  # a damaged member (bad CRC, truncated), or an array of Python objects
            if _is_object_array_error(exc):
                sink.error("bad-data", f"{description}: array '{member}' holds Python objects (dtype object), "
                           "which are not read", where, "save numbers (or strings) as plain numpy arrays, e.g. "
                           "numpy.asarray(values, dtype=numpy.float32)")
            else:
                sink.error("bad-data", f"{description}: array '{member}' (member '{member}.npy') cannot be read, "
                           f"the file is damaged: {_member_error(exc)}", where, rewrite)
            return None
    unknown = [n for n in source.map if n not in io_.inputs and n not in io_.outputs]
    for name in unknown:
        sink.error("unknown-name", f"map: '{name}' is neither an input nor an output of the spec", where + ("map", name),
                   did_you_mean(name, list(io_.inputs) + list(io_.outputs)))
    if sink.has_errors:
        return None
    examples = _arrays_examples(description, raw, keys, source.limit, where, sink)
    return examples


def _is_object_array_error(exc: BaseException) -> bool:
    return isinstance(exc, ValueError) and ("allow_pickle" in str(exc) or "bject arrays" in str(exc))


def _member_error(exc: BaseException) -> str:
    """Why a zip member could not be read, without numpy's advice to unpickle it."""
    text = _first_line(exc)
    if "pickle" in text.lower():
        return "it holds pickled data, which is not read"
    return text or type(exc).__name__


def digits_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The built-in digits data with its derived arrays (see :class:`BuiltinSource`)."""
    image = arrays["image"]
    label = arrays["label"].astype(np.int32)
    scaled = image.astype(np.float32) / 16.0
    return {
        "image": image,
        "pixels": scaled.reshape(len(image), 64),
        "label": label,
        "onehot": np.eye(10, dtype=np.float32)[label],
        "parity": (label % 2).astype(np.float32).reshape(-1, 1),
        "ink": scaled.mean(axis=(1, 2, 3)).astype(np.float32).reshape(-1, 1),
        "rows": scaled.mean(axis=(2, 3)).astype(np.float32),
        "cols": scaled.mean(axis=(1, 3)).astype(np.float32),
        "profile": np.concatenate([scaled.mean(axis=(2, 3)), scaled.mean(axis=(1, 3))], axis=1).astype(np.float32),
    }


def open_builtin(source: BuiltinSource, checked: CheckedSpec, io_: ModelIO, where: Path, sink: DiagnosticSink,
                 need_targets: bool) -> Examples | None:
    return _load_npz(DATA_DIR / "digits.npz", "built-in dataset 'digits'", source, io_, where, sink, need_targets,
                     extra=digits_arrays)


def open_csv(source: CsvSource, checked: CheckedSpec, io_: ModelIO, where: Path, sink: DiagnosticSink,
             need_targets: bool) -> Examples | None:
    path = resolve_data_path(checked, source.csv, where + ("csv",), sink)
    if path is None:
        return None
    description = f"csv '{source.csv}'"
    rows: list[list[str]] = []
    lines: list[int] = []  # the file line each row starts on (a quoted cell may span lines)
    ragged: tuple[int, int] | None = None
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=source.delimiter)
            header = next(reader, None)
            width = len(header or ())
            line = reader.line_num + 1
            for row in reader:
                if source.limit is not None and len(rows) >= source.limit:
                    break
                if row and any(cell.strip() for cell in row):  # blank lines are skipped
                    if len(row) != width and ragged is None:
                        ragged = (line, len(row))
                    rows.append(row)
                    lines.append(line)
                line = reader.line_num + 1
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        sink.error("bad-data", f"{description} cannot be read: {exc}", where)
        return None
    if not header:
        sink.error("empty-data", f"{description} is empty (no header row)", where)
        return None
    if ragged is not None:
        # A row with more or fewer cells than the header: its values would be read from the wrong columns.
        sink.error("bad-data", f"{description} line {ragged[0]} has {ragged[1]} cells, the header has {width}",
                   where, "every row needs one cell per header column (quote cells that contain the delimiter)")
        return None
    header = [h.strip() for h in header]
    column_of = {h: i for i, h in enumerate(header)}
    for name in source.columns:
        if name not in io_.inputs and name not in io_.outputs:
            sink.error("unknown-name", f"columns: '{name}' is neither an input nor an output of the spec",
                       where + ("columns", name), did_you_mean(name, list(io_.inputs) + list(io_.outputs)))
    arrays: dict[str, np.ndarray] = {}
    keys: dict[str, str] = {}
    for name in _wanted(io_, need_targets):
        if name not in source.columns:
            role = "input" if name in io_.inputs else "output"
            sink.error("missing-data", f"{role} '{name}' has no data: 'columns' does not map it", where + ("columns",),
                       f"add it: columns: {{{name}: <column>}} (columns: {', '.join(header[:20])})")
            continue
        spec_cols = source.columns[name]
        cols = [spec_cols] if isinstance(spec_cols, str) else list(spec_cols)
        missing = [c for c in cols if c not in column_of]
        for col in missing:
            sink.error("missing-data", f"{description} has no column '{col}' (for '{name}')",
                       where + ("columns", name), did_you_mean(col, header) or f"columns: {', '.join(header[:20])}")
        if missing:
            continue
        expected = io_.inputs.get(name) or io_.outputs.get(name)
        is_text = expected is not None and expected.dtype == "string"
        matrix = []
        for line, row in zip(lines, rows):
            values = []
            for col in cols:
                index = column_of[col]
                cell = row[index].strip() if index < len(row) else ""
                if is_text:
                    values.append(cell)
                    continue
                try:
                    value = float(cell)
                except ValueError:
                    sink.error("bad-data", f"{description} line {line}, column '{col}': {cell!r} is not a number",
                               where + ("columns", name))
                    break
                if not math.isfinite(value):
                    sink.error("bad-data", f"{description} line {line}, column '{col}': {cell!r} is not a finite "
                               "number", where + ("columns", name), _NONFINITE_HINT)
                    break
                values.append(value)
            else:
                matrix.append(values)
                continue
            break
        if sink.has_errors:
            continue
        array = np.array(matrix, dtype=object if is_text else np.float64)
        if is_text:
            array = array.astype(str)
        elif np.all(np.mod(array, 1) == 0) and expected is not None and "int" in expected.dtype:
            array = array.astype(np.int64)
        else:
            array = array.astype(np.float32)
        if isinstance(spec_cols, str):
            array = array.reshape(len(matrix)) if not matrix or len(cols) == 1 else array
        arrays[name] = array
        keys[name] = spec_cols if isinstance(spec_cols, str) else "+".join(cols)
    if sink.has_errors:
        return None
    examples = _arrays_examples(description, arrays, keys, None, where, sink)
    if examples is not None:
        examples.row_name = lambda i: f"line {lines[i]}"
        # A single column for a [1]-shaped input: give it that shape.
        for name, array in list(arrays.items()):
            expected = io_.inputs.get(name) or io_.outputs.get(name)
            if array.ndim == 1 and expected is not None and tuple(expected.shape) == (1,) and name in io_.inputs:
                arrays[name] = array.reshape(-1, 1)
                examples.shapes[name] = Tensor((1,), examples.shapes[name].dtype)
    return examples


def open_images(source: ImageDirSource, checked: CheckedSpec, io_: ModelIO, where: Path, sink: DiagnosticSink,
                need_targets: bool) -> Examples | None:
    root = resolve_data_path(checked, source.images, where + ("images",), sink, directory=True)
    if root is None:
        return None
    description = f"image folder '{source.images}'"
    image_input = source.input or (next(iter(io_.inputs)) if len(io_.inputs) == 1 else None)
    if image_input is None or image_input not in io_.inputs:
        sink.error("missing-data", "say which input receives the images: input: <name>" if image_input is None
                   else f"'{image_input}' is not an input of the spec", where + ("input",),
                   did_you_mean(image_input or "", io_.inputs) or f"inputs: {', '.join(io_.inputs)}")
        return None
    shape = io_.inputs[image_input].shape
    if len(shape) != 3 or shape[0] is None or shape[1] is None or shape[2] not in (1, 3, 4):
        sink.error("data-shape-mismatch", f"input '{image_input}' has shape {list(shape)}; images need "
                   "[height, width, channels] with 1, 3 or 4 channels", where + ("input",))
        return None
    label_output = source.label or (io_.targets[0] if len(io_.targets) == 1 else
                                    next(iter(io_.outputs)) if len(io_.outputs) == 1 else None)
    if need_targets and (label_output is None or label_output not in io_.outputs):
        sink.error("missing-data", "say which output receives the class: label: <name>" if label_output is None
                   else f"'{label_output}' is not an output of the spec", where + ("label",),
                   f"outputs: {', '.join(io_.outputs)}")
        return None
    present = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = list(source.classes) if source.classes else present
    for name in classes:
        if name not in present:
            sink.error("missing-data", f"{description} has no class folder '{name}'", where + ("classes",),
                       did_you_mean(name, present))
    if not classes:
        sink.error("empty-data", f"{description} has no class sub-folders", where,
                   "put the images of each class in a sub-folder named after it: root/cat/1.png")
    if sink.has_errors:
        return None
    paths: list[str] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        folder = root / name
        found = 0
        for file in sorted(folder.rglob("*")):
            if file.suffix.lower() in IMAGE_EXTENSIONS and file.is_file():
                resolved = file.resolve()
                if not resolved.is_relative_to(root):
                    continue  # a link leaving the folder is ignored
                paths.append(str(resolved))
                labels.append(index)
                found += 1
        if not found:
            # A class without examples still takes a class index: almost always a mistake (a failed copy).
            sink.error("empty-data", f"{description}: class folder '{name}' holds no images "
                       f"({', '.join(IMAGE_EXTENSIONS)})", where + (("classes",) if source.classes else ()),
                       "add its images, or remove the folder" + (" and its name from classes:" if source.classes
                                                                 else " (or list the classes to use: classes: [...])"))
    if sink.has_errors:
        return None
    if source.limit is not None:
        order = np.random.default_rng(0).permutation(len(paths))[:source.limit]
        paths = [paths[i] for i in sorted(order)]
        labels = [labels[i] for i in sorted(order)]
    if not paths:
        sink.error("empty-data", f"{description} holds no images ({', '.join(IMAGE_EXTENSIONS)})", where)
        return None
    arrays = {"__path__": np.array(paths)}
    label_array = np.array(labels, dtype=np.int32)
    label_shape: Shape = ()
    if need_targets and label_output is not None:
        expected = io_.outputs[label_output].shape
        if source.one_hot:
            label_array = np.eye(len(classes), dtype=np.float32)[label_array]
            label_shape = (len(classes),)
        arrays[label_output] = label_array
    height, width, channels = shape
    dtype = io_.inputs[image_input].dtype

    def element(values):
        import tensorflow as tf

        data = tf.io.read_file(values["__path__"])
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
        image = tf.image.resize(image, (height, width))
        image = tf.cast(image, dtype)
        out = {image_input: image}
        if label_output in values:
            out[label_output] = values[label_output]
        return out

    def failed(path: str) -> str:
        """What is wrong with an image file the pipeline could not decode (read it again to tell)."""
        import tensorflow as tf

        shown = path
        with contextlib.suppress(ValueError):
            shown = str(FsPath(path).relative_to(checked.directory.resolve()))
        try:
            tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
            reason = "it could not be decoded"
        except Exception as exc:  # the error to report
            reason = _tf_message(exc)
        return f"image file '{shown}' cannot be read as an image: {reason}"

    shapes = {image_input: Tensor((height, width, channels), dtype)}
    if need_targets and label_output is not None:
        shapes[label_output] = Tensor(label_shape, label_array.dtype.name)
    keys = {image_input: "images", **({label_output: "class folder"} if label_output else {})}
    return Examples(description=description, count=len(paths), arrays=arrays, element=element, shapes=shapes,
                    keys=keys, cache=source.cache, failed=failed,
                    failed_hint="replace or remove the file; image folders take PNG, JPEG, GIF and BMP files "
                    "(recognised by their content, whatever the extension)")


def open_tfrecord(source: TfrecordSource, checked: CheckedSpec, io_: ModelIO, where: Path, sink: DiagnosticSink,
                  need_targets: bool) -> Examples | None:
    raw_files = [source.tfrecord] if isinstance(source.tfrecord, str) else list(source.tfrecord)
    files = []
    for i, raw in enumerate(raw_files):
        path = resolve_data_path(checked, raw, where + (("tfrecord",) if isinstance(source.tfrecord, str)
                                                        else ("tfrecord", i)), sink)
        if path is not None:
            files.append(str(path))
    description = f"tfrecord '{raw_files[0]}'" + (f" (+{len(raw_files) - 1} files)" if len(raw_files) > 1 else "")
    features = source.features
    names: dict[str, str] = {}
    for name in _wanted(io_, need_targets):
        key = source.map.get(name, name)
        if key not in features:
            _missing_name(sink, description, name, key, list(features), where + ("features",), "feature", io_)
            continue
        names[name] = key
    if sink.has_errors:
        return None
    shapes: dict[str, Tensor] = {}
    for name, key in names.items():
        feature = features[key]
        expected = io_.inputs.get(name) or io_.outputs.get(name)
        if feature.decode is not None:
            shapes[name] = Tensor(tuple(expected.shape), expected.dtype)  # decoded to the input's shape
        else:
            shapes[name] = Tensor(tuple(feature.shape), feature.dtype)
    compression = {"none": None, "gzip": "GZIP", "zlib": "ZLIB"}[source.compression]
    wanted = {key: features[key] for key in set(names.values())}

    parse_spec = _tfrecord_parse_spec(wanted)

    @_plain_fn
    def parse(record):
        import tensorflow as tf

        parsed = tf.io.parse_single_example(record, parse_spec())
        out = {}
        for name, key in names.items():
            value = parsed[key]
            feature = wanted[key]
            expected = io_.inputs.get(name) or io_.outputs.get(name)
            if feature.decode == "image":
                channels = expected.shape[-1] if expected.shape and expected.shape[-1] in (1, 3, 4) else 0
                value = tf.io.decode_image(value, channels=channels, expand_animations=False)
                value = tf.cast(value, expected.dtype)
                value = tf.ensure_shape(value, expected.shape)
            elif feature.decode == "raw":
                value = tf.io.decode_raw(value, expected.dtype)
                value = tf.reshape(value, expected.shape)
            out[name] = value
        return out

    counts: list[int] = []

    def verify(examples: Examples, sink: DiagnosticSink) -> None:
        """Once the shapes are known to fit: read every record (counting, checking values)."""
        found = _read_tfrecords(files, raw_files, compression, source.limit, names, wanted, parse_spec, io_,
                                need_targets, where, sink)
        if found is not None:
            counts[:] = found
            examples.count = sum(found)

    decodes = any(feature.decode is not None for feature in wanted.values())
    token = _register(_Origin(description, None, lambda payload: _explain_record(payload, files, raw_files,
                                                                                 compression, parse),
                              "rewrite the record, or leave the file out")) if decodes else None

    def stream():
        import tensorflow as tf

        dataset = tf.data.TFRecordDataset(files, compression_type=compression)
        if source.limit is not None:
            dataset = dataset.take(source.limit)
        if token is None:
            return dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        # Bytes decoded while streaming (images) may fail: name the record that did.
        n = sum(counts)
        starts = tf.constant(np.cumsum([0] + counts[:-1]), tf.int64)
        shown = tf.constant(files[:len(counts)])

        def name_of(k):
            i = tf.searchsorted(starts, tf.reshape(k, [1]), side="right")[0] - 1
            return tf.strings.join([tf.gather(shown, i), "|", tf.strings.as_string(k - tf.gather(starts, i))])
        return _checked_map(dataset.enumerate(), parse, n, name_of, token)

    return Examples(description=description, count=None, stream=stream, shapes=shapes, keys=dict(names),
                    cache=source.cache, origin_token=token, verify=verify)


def _tfrecord_parse_spec(wanted: dict) -> Callable[[], dict]:
    def spec():
        import tensorflow as tf

        out = {}
        for key, feature in wanted.items():
            dtype = {"float32": tf.float32, "int64": tf.int64, "string": tf.string}[feature.dtype]
            out[key] = tf.io.FixedLenFeature(feature.shape if feature.decode is None else [], dtype)
        return out
    return spec


def _scan_tfrecord(path: str, limit: int | None) -> str | None:
    """Walk an uncompressed TFRecord file by its length headers (no data read): the problem if a record
    runs past the end of the file.  TensorFlow reads a file cut inside a record's header as a clean end."""
    size = os.path.getsize(path)
    offset = count = 0
    with open(path, "rb") as handle:
        while offset < size and (limit is None or count < limit):
            header = handle.read(12)
            if len(header) < 12:
                return (f"the file ends inside the header of record {count} (byte {offset}, {size - offset} of "
                        "12 bytes): it is truncated")
            (length,) = struct.unpack("<Q", header[:8])
            end = offset + 12 + length + 4
            if end > size:
                return (f"record {count} at byte {offset} is {length + 16} bytes long but the file ends at byte "
                        f"{size}: it is truncated (or not a TFRecord file)")
            handle.seek(end)
            offset = end
            count += 1
    return None


def _read_tfrecords(files, raw_files, compression, limit, names, wanted, parse_spec, io_, need_targets, where,
                    sink) -> list[int] | None:
    """Read every record once before training: count them per file, and check that each parses, that
    float features hold no NaN or infinity, and that class indices of sparse targets are whole numbers
    within the classes.  Errors name the file and the record (counting from 0)."""
    import tensorflow as tf

    spec = parse_spec()
    plain = {key for key, feature in wanted.items() if feature.decode is None}
    numeric = {name: key for name, key in names.items() if key in plain and wanted[key].dtype == "float32"
               and (name in io_.inputs or need_targets)}
    labels = {name: key for name, key in names.items() if key in plain and need_targets and name in io_.targets
              and (name in io_.sparse or name in io_.sparse_metrics)}
    counts: list[int] = []
    total = 0
    for path, shown in zip(files, raw_files):
        if limit is not None and total >= limit:
            break
        remaining = None if limit is None else limit - total
        what = f"tfrecord '{shown}'"
        problem = _scan_tfrecord(path, remaining) if compression is None else None
        if problem is not None:
            sink.error("bad-data", f"{what}: {problem}", where, "write the file again (a writer that was "
                       "interrupted leaves a partial last record), or set limit: to the number of complete records")
            return None
        dataset = tf.data.TFRecordDataset([path], compression_type=compression)
        if remaining is not None:
            dataset = dataset.take(remaining)
        seen = 0
        batches = iter(dataset.batch(1024))
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except tf.errors.OpError as exc:  # a corrupt or truncated (compressed) file
                sink.error("bad-data", f"{what} cannot be read after record {seen}: {_tf_message(exc)}", where,
                           "write the file again; a damaged file cannot be read past the damage")
                return None
            try:
                parsed = tf.io.parse_example(batch, spec)
            except tf.errors.OpError:
                for j in range(len(batch)):  # find the record
                    try:
                        tf.io.parse_single_example(batch[j], spec)
                    except tf.errors.OpError as exc:
                        sink.error("bad-data", f"{what}: record {seen + j} does not match the features: "
                                   f"{_tf_message(exc)}", where + ("features",),
                                   "each record needs every feature read, with the shape and dtype given")
                        return None
                sink.error("bad-data", f"{what}: records {seen}..{seen + len(batch) - 1} do not match the features",
                           where + ("features",))
                return None
            for name, key in numeric.items():
                values = parsed[key].numpy()
                count, first, value = _first_rows(values, lambda a: ~np.isfinite(a)) if len(values) else (0, 0, 0)
                if count:
                    role = "input" if name in io_.inputs else "output"
                    sink.error("bad-data", f"{role} '{name}': {what}, feature '{key}', has NaN or infinite values "
                               f"in record {seen + first} ({value})", where, _NONFINITE_HINT)
                    return None
            for name, key in labels.items():
                values = parsed[key].numpy()
                out = io_.outputs[name].shape
                classes = out[-1] if out and out[-1] is not None and out[-1] > 1 else None
                bad = ((lambda a: a != np.floor(a)) if values.dtype.kind == "f" else (lambda a: np.zeros(a.shape, bool)))
                if classes is not None:
                    bad = (lambda test: lambda a: test(a) | (a < 0) | (a >= classes))(bad)
                count, first, value = _first_rows(values, bad) if len(values) else (0, 0, 0)
                if count:
                    sink.error("bad-data", f"output '{name}': its sparse loss takes class indices (whole numbers "
                               f"0, 1, ...{f' below {classes}' if classes else ''}); {what}, feature '{key}', has "
                               f"{value} in record {seen + first}", where,
                               "give class indices, or use a loss for one-hot or continuous targets")
                    return None
            seen += len(batch)
        counts.append(seen)
        total += seen
    return counts


def _explain_record(payload: str, files, raw_files, compression, parse) -> str:
    """What is wrong with the record the stream could not decode (read it again to tell)."""
    import tensorflow as tf

    path, _, number = payload.rpartition("|")
    shown = raw_files[files.index(path)] if path in files else path
    try:
        record = next(iter(tf.data.TFRecordDataset([path], compression_type=compression).skip(int(number)).take(1)))
        parse(record)
        reason = "it could not be decoded"
    except Exception as exc:  # the error to report
        reason = _tf_message(exc)
    return f"file '{shown}', record {number} cannot be decoded: {reason}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


_OPENERS = {NpzSource: open_npz, BuiltinSource: open_builtin, CsvSource: open_csv, ImageDirSource: open_images,
            TfrecordSource: open_tfrecord}


def open_source(source, checked: CheckedSpec, io_: ModelIO, where: Path, *, need_targets: bool = True) -> Examples:
    """Open a spec's data source and check it against the model; raises a located :class:`TrainError`."""
    sink = DiagnosticSink(source=checked.loaded.source if where and where[0] == "train" else None)
    examples = _OPENERS[type(source)](source, checked, io_, where, sink, need_targets)
    if examples is not None:
        check_examples(examples, io_, where, sink, need_targets)
        if not sink.has_errors and examples.verify is not None:
            examples.verify(examples, sink)
            if not sink.has_errors:
                check_examples(examples, io_, where, sink, need_targets)  # now that its size is known
        if not sink.has_errors:
            check_values(examples, io_, where, sink, need_targets)
        origin = Diagnostic(code="bad-data", message="", path=tuple(where))
        examples.origin = sink.source.locate(origin) if sink.source is not None else origin
        if examples.origin_token in _ORIGINS:
            _ORIGINS[examples.origin_token].diagnostic = examples.origin
        if isinstance(source, NpzSource) or isinstance(source, BuiltinSource):
            examples.cache = False  # already in memory
    sink.raise_if_errors(TrainError)
    assert examples is not None
    return examples


def open_python(data: Any, io_: ModelIO, *, need_targets: bool = True, description: str = "data") -> Examples:
    """Data given in the Python API: a dict of arrays keyed by input/output names, an ``(x, y)`` pair
    of arrays or dicts, or a ``tf.data.Dataset`` of such examples (unbatched, or batched)."""
    sink = DiagnosticSink()
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover
        tf = None
    if tf is not None and isinstance(data, tf.data.Dataset):
        examples = _dataset_examples(data, io_, description, sink, need_targets)
    else:
        values = _as_named(data, io_)
        if values is None:
            sink.error("bad-data", f"{description}: expected a dict of arrays keyed by input/output names, "
                       "an (x, y) pair or a tf.data.Dataset", ())
            raise TrainError(sink.diagnostics)
        arrays = {}
        for name in _wanted(io_, need_targets):
            if name not in values:
                role = "input" if name in io_.inputs else "output"
                sink.error("missing-data", f"{role} '{name}' has no data in {description}", (),
                           did_you_mean(name, list(values)) or f"keys given: {', '.join(map(str, values))}")
                continue
            arrays[name] = np.asarray(values[name])
        sink.raise_if_errors(TrainError)
        examples = _arrays_examples(description, arrays, {}, None, (), sink)
    if examples is not None:
        check_examples(examples, io_, (), sink, need_targets)
        if not sink.has_errors:
            check_values(examples, io_, (), sink, need_targets)
    sink.raise_if_errors(TrainError)
    assert examples is not None
    return examples


def _as_named(data: Any, io_: ModelIO) -> dict | None:
    if isinstance(data, dict):
        return dict(data)
    if isinstance(data, (tuple, list)) and len(data) in (1, 2):
        x = data[0]
        y = data[1] if len(data) == 2 else None
        values: dict = {}
        values.update(x if isinstance(x, dict) else {next(iter(io_.inputs)): x})
        if y is not None:
            if isinstance(y, dict):
                values.update(y)
            elif isinstance(y, (tuple, list)) and len(io_.targets) > 1:
                values.update(dict(zip(io_.targets, y)))
            elif io_.targets:
                values[io_.targets[0]] = y
        return values
    if isinstance(data, np.ndarray) and len(io_.inputs) == 1:
        return {next(iter(io_.inputs)): data}
    return None


def _dataset_examples(dataset, io_: ModelIO, description: str, sink: DiagnosticSink,
                      need_targets: bool) -> Examples | None:
    import tensorflow as tf

    spec = dataset.element_spec
    if isinstance(spec, tuple):
        x_spec = spec[0]
        y_spec = spec[1] if len(spec) > 1 else None
        named = {}
        named.update(x_spec if isinstance(x_spec, dict) else {next(iter(io_.inputs)): x_spec})
        if isinstance(y_spec, dict):
            named.update(y_spec)
        elif isinstance(y_spec, tuple):
            named.update(dict(zip(io_.targets, y_spec)))
        elif y_spec is not None and io_.targets:
            named[io_.targets[0]] = y_spec

        def to_dict(*element):
            x = element[0]
            y = element[1] if len(element) > 1 else None
            out = dict(x) if isinstance(x, dict) else {next(iter(io_.inputs)): x}
            if isinstance(y, dict):
                out.update(y)
            elif isinstance(y, tuple):
                out.update(dict(zip(io_.targets, y)))
            elif y is not None and io_.targets:
                out[io_.targets[0]] = y
            return out
        mapped = lambda: dataset.map(_plain_fn(to_dict))  # noqa: E731
    elif isinstance(spec, dict):
        named = dict(spec)
        mapped = lambda: dataset  # noqa: E731
    else:
        named = {next(iter(io_.inputs)): spec}
        mapped = lambda: dataset.map(_plain_fn(lambda x: {next(iter(io_.inputs)): x}))  # noqa: E731
    for name in _wanted(io_, need_targets):
        if name not in named:
            role = "input" if name in io_.inputs else "output"
            sink.error("missing-data", f"{role} '{name}' has no data in {description}", (),
                       did_you_mean(name, list(named)) or f"keys given: {', '.join(map(str, named))}")
    if sink.has_errors:
        return None
    shapes = {name: Tensor(tuple(s.shape), s.dtype.name) for name, s in named.items()
              if isinstance(s, tf.TensorSpec)}
    # Batched if every input has one dimension more than the spec says, the first unknown.
    batched = all(name in shapes and len(shapes[name].shape) == len(t.shape) + 1 for name, t in io_.inputs.items())
    if batched:
        shapes = {name: Tensor(s.shape[1:], s.dtype) for name, s in shapes.items()}
    cardinality = int(dataset.cardinality())
    count = cardinality if cardinality >= 0 else None
    return Examples(description=description, count=None if batched else count,
                    stream=_finite_stream(mapped, shapes, _wanted(io_, need_targets), io_, description, batched),
                    shapes=shapes, batched=batched)


def _finite_stream(stream: Callable, shapes: dict[str, Tensor], names: list[str], io_: ModelIO, description: str,
                   batched: bool) -> Callable:
    """A ``tf.data.Dataset`` given in Python is not read before training: its float values are checked
    as they stream (one ``is_finite`` reduction per tensor), and NaN or infinity stops the run with an
    error naming the element (or batch)."""
    import tensorflow as tf

    checked = [name for name in names if name in shapes and shapes[name].dtype.startswith(("float", "bfloat", "half"))]
    if not checked:
        return stream
    token = _register(_Origin(description, None, lambda payload: f"{payload} has NaN or infinite values",
                              _NONFINITE_HINT))
    unit = "batch" if batched else "element"

    @_plain_fn
    def check(k, values):
        asserts = []
        for name in checked:
            role = "input" if name in io_.inputs else "output"
            message = tf.strings.join([f"{_MARK}{token}:{role} '{name}' in {unit} ", tf.strings.as_string(k), "#end"])
            asserts.append(tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(values[name])), [message]))
        with tf.control_dependencies(asserts):
            return {name: tf.identity(value) for name, value in values.items()}

    return lambda: stream().enumerate().map(check)


def describe(examples: Examples) -> str:
    size = examples.size
    return f"{examples.description}: {'?' if size is None else f'{size:,}'} examples"
