"""Data sources to seeded, batched ``tf.data`` pipelines, checked against the spec first.

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
from dataclasses import dataclass, field, replace
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

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
DATA_DIR = FsPath(__file__).resolve().parent.parent / "data"

Shape = tuple  # of int | None


def _plain_fn(fn):
    """Mark a tf.data function as plain TensorFlow: no AutoGraph conversion (it costs ~1 s at start-up)."""
    import tensorflow as tf

    return tf.autograph.experimental.do_not_convert(fn)


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
    return ModelIO(inputs=inputs, outputs=outputs, targets=targets, sparse=sparse,
                   dict_outputs=isinstance(spec.outputs, dict))


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

    @property
    def size(self) -> int | None:
        if self.indices is not None:
            return len(self.indices)
        if self.count is None:
            return None
        n = self.count - self.skip
        return n if self.take is None else min(n, self.take)


@contextlib.contextmanager
def data_errors(what: str = "the data"):
    """Turn TensorFlow's complaints about the *data* met while running (a label out of range,
    a file that is not an image, a corrupt record) into a clear error instead of a traceback."""
    import tensorflow as tf

    try:
        yield
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError, tf.errors.NotFoundError,
            tf.errors.OutOfRangeError) as exc:
        text = (exc.message or str(exc)).strip()
        # TF wraps the op's own message in graph-execution context; keep the sentence about the data.
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line[0].isspace()
                 and not line.strip().startswith(("Graph execution error", "Detected at node", "Stack trace",
                                                  "[[", "File "))]
        message = (lines[0] if lines else text.splitlines()[0])[:400]
        raise TrainError([Diagnostic(code="bad-data", message=f"{what}: {message}", path=("train", "data"),
                                     hint="check the values in the data (labels within the number of classes, "
                                     "files of the right kind)")]) from None


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
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # not a zip, truncated, pickled: the user's file to fix
        sink.error("bad-data", f"{description} cannot be read as an NPZ file: {exc}", where,
                   "write it with numpy.savez or numpy.savez_compressed")
        return None
    if not hasattr(archive, "files"):
        sink.error("bad-data", f"{description} holds a single array, not named arrays", where,
                   "save it with numpy.savez(path, input_name=array, ...)")
        return None
    with archive:
        available = list(archive.files)
        raw: dict[str, np.ndarray] = {}
        try:
            loader = (lambda key: archive[key])
            if extra is not None:
                derived = extra({k: archive[k] for k in available})
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
        except ValueError as exc:  # object arrays need pickle: refused
            sink.error("bad-data", f"{description}: {exc}", where, "arrays of objects are not read (no pickle)")
            return None
    unknown = [n for n in source.map if n not in io_.inputs and n not in io_.outputs]
    for name in unknown:
        sink.error("unknown-name", f"map: '{name}' is neither an input nor an output of the spec", where + ("map", name),
                   did_you_mean(name, list(io_.inputs) + list(io_.outputs)))
    if sink.has_errors:
        return None
    examples = _arrays_examples(description, raw, keys, source.limit, where, sink)
    return examples


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
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=source.delimiter)
            header = next(reader, None)
            rows = list(reader) if source.limit is None else [r for _, r in zip(range(source.limit), reader)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        sink.error("bad-data", f"{description} cannot be read: {exc}", where)
        return None
    if not header:
        sink.error("empty-data", f"{description} is empty (no header row)", where)
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
        for line, row in enumerate(rows, start=2):
            values = []
            for col in cols:
                index = column_of[col]
                cell = row[index].strip() if index < len(row) else ""
                if is_text:
                    values.append(cell)
                    continue
                try:
                    values.append(float(cell))
                except ValueError:
                    sink.error("bad-data", f"{description} line {line}, column '{col}': {cell!r} is not a number",
                               where + ("columns", name))
                    break
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
        for file in sorted(folder.rglob("*")):
            if file.suffix.lower() in IMAGE_EXTENSIONS and file.is_file():
                resolved = file.resolve()
                if not resolved.is_relative_to(root):
                    continue  # a link leaving the folder is ignored
                paths.append(str(resolved))
                labels.append(index)
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

    shapes = {image_input: Tensor((height, width, channels), dtype)}
    if need_targets and label_output is not None:
        shapes[label_output] = Tensor(label_shape, label_array.dtype.name)
    keys = {image_input: "images", **({label_output: "class folder"} if label_output else {})}
    return Examples(description=description, count=len(paths), arrays=arrays, element=element, shapes=shapes,
                    keys=keys, cache=source.cache)


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

    def records():
        import tensorflow as tf

        return tf.data.TFRecordDataset(files, compression_type=compression)

    def stream():
        import tensorflow as tf

        description_ = {}
        for key, feature in wanted.items():
            dtype = {"float32": tf.float32, "int64": tf.int64, "string": tf.string}[feature.dtype]
            description_[key] = tf.io.FixedLenFeature(feature.shape if feature.decode is None else [], dtype)

        @_plain_fn
        def parse(record):
            parsed = tf.io.parse_single_example(record, description_)
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

        dataset = records()
        if source.limit is not None:
            dataset = dataset.take(source.limit)
        return dataset.map(_plain_fn(parse), num_parallel_calls=tf.data.AUTOTUNE)

    def count() -> int:
        import tensorflow as tf

        dataset = records()
        if source.limit is not None:
            dataset = dataset.take(source.limit)
        return int(dataset.reduce(np.int64(0), lambda c, _: c + 1))

    try:
        n = count()
    except Exception as exc:  # a corrupt or unreadable record file
        sink.error("bad-data", f"{description} cannot be read: {_first_line(exc)}", where)
        return None
    return Examples(description=description, count=n, stream=stream, shapes=shapes,
                    keys=dict(names), cache=source.cache)


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
    return Examples(description=description, count=None if batched else count, stream=mapped, shapes=shapes,
                    batched=batched)


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


# -- pipelines ----------------------------------------------------------------------------------

def split(examples: Examples, fraction: float, seed: int, shuffle: bool) -> tuple[Examples, Examples]:
    """Hold out ``fraction`` of the examples for validation (seeded shuffle, or the last ones)."""
    n = examples.size
    if n is None:
        raise TrainError([Diagnostic(code="bad-data", message=f"{examples.description}: a validation split needs "
                                     "a source whose size is known", hint="give validation: {data: ...}")])
    held = int(round(n * fraction))
    if held < 1 or held >= n:
        raise TrainError([Diagnostic(code="empty-data", message=f"validation split {fraction} of {n} examples leaves "
                                     f"{n - held} for training and {held} for validation")])
    if examples.arrays is not None:
        base = examples.indices if examples.indices is not None else np.arange(n)
        order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
        train_idx = base[np.sort(order[:n - held])]
        val_idx = base[np.sort(order[n - held:])]
        return replace(examples, indices=train_idx), replace(examples, indices=val_idx)
    # a stream: the last examples in file order
    return (replace(examples, take=n - held, count=examples.count),
            replace(examples, skip=examples.skip + n - held, take=held))


def _cast(values: dict, io_: ModelIO):
    import tensorflow as tf

    out = {}
    for name, value in values.items():
        if name in io_.inputs:
            out[name] = tf.cast(value, io_.inputs[name].dtype) if value.dtype != io_.inputs[name].dtype else value
        elif name in io_.outputs:
            wanted = io_.outputs[name].dtype
            if value.dtype == tf.string:
                out[name] = value
            elif name in io_.sparse:
                out[name] = value
            else:
                out[name] = tf.cast(value, wanted) if value.dtype != tf.as_dtype(wanted) else value
        else:
            out[name] = value
    return out


def _structure(io_: ModelIO, with_targets: bool):
    @_plain_fn
    def to_xy(values):
        values = _cast(values, io_)
        x = io_.x(values)
        if not with_targets or not io_.targets:
            return (x,)
        return x, io_.y(values)
    return to_xy


def steps_per_epoch(examples: Examples, batch_size: int, drop_remainder: bool = False) -> int | None:
    n = examples.size
    if n is None:
        return None
    return n // batch_size if drop_remainder else -(-n // batch_size)


def _tensors(examples: Examples, io_: ModelIO, with_targets: bool) -> dict:
    import tensorflow as tf

    names = list(io_.inputs) + (io_.targets if with_targets else [])
    extra = ["__path__"] if "__path__" in examples.arrays else []
    return {name: tf.constant(examples.arrays[name]) for name in names + extra if name in examples.arrays}


def _base_stream(examples: Examples):
    dataset = examples.stream()
    if examples.skip:
        dataset = dataset.skip(examples.skip)
    if examples.take is not None:
        dataset = dataset.take(examples.take)
    return dataset


def training_dataset(examples: Examples, io_: ModelIO, *, batch_size: int, seed: int, shuffle: bool,
                     first_epoch: int, epochs: int, shuffle_buffer: int, steps: int | None,
                     drop_remainder: bool = False):
    """Batches for epochs ``first_epoch .. epochs-1`` back to back; epoch *e* is shuffled with seed (seed, e).

    Returns ``(dataset, steps_per_epoch)``; the dataset holds exactly ``steps_per_epoch`` batches per
    epoch (repeating the data within an epoch when ``steps`` asks for more than one pass).
    """
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    to_xy = _structure(io_, True)
    per_pass = steps_per_epoch(examples, batch_size, drop_remainder)
    if examples.batched:
        dataset = _base_stream(examples).map(to_xy, num_parallel_calls=autotune)
        if steps is None:
            return dataset.prefetch(autotune), None
        return dataset.repeat().prefetch(autotune), steps
    repeat = steps is not None and steps != per_pass  # more (or fewer) batches than one pass: cycle the data
    steps = steps or per_pass
    if steps is None:
        raise TrainError([Diagnostic(code="bad-data", message=f"{examples.description}: its size is unknown, so "
                                     "train.steps_per_epoch is needed")])
    if examples.arrays is not None:
        tensors = _tensors(examples, io_, True)
        n = examples.size
        subset = tf.constant(examples.indices if examples.indices is not None else np.arange(n), tf.int64)
        element = examples.element

        def epoch_indices(epoch):
            if shuffle:
                seeds = tf.stack([tf.constant(seed, tf.int64), epoch])
                return tf.gather(subset, tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seeds))
            return subset

        if element is None:
            @_plain_fn
            def gather(idx):
                return to_xy({name: tf.gather(t, idx) for name, t in tensors.items()})

            @_plain_fn
            def one_epoch(epoch):
                idx = tf.data.Dataset.from_tensor_slices(epoch_indices(epoch))
                idx = idx.repeat() if repeat else idx
                return idx.batch(batch_size, drop_remainder=drop_remainder).take(steps).map(gather)
        else:
            @_plain_fn
            def load(i):
                return element({name: t[i] for name, t in tensors.items()})

            decoded = None
            if examples.cache:  # decode once, then shuffle the decoded examples in a buffer
                decoded = tf.data.Dataset.from_tensor_slices(subset).map(load, num_parallel_calls=autotune).cache()

            @_plain_fn
            def one_epoch(epoch):
                if decoded is not None:
                    ds = decoded.shuffle(min(n, shuffle_buffer), seed=seed * 1_000_003 + epoch) if shuffle else decoded
                else:
                    ds = tf.data.Dataset.from_tensor_slices(epoch_indices(epoch)).map(load, num_parallel_calls=autotune)
                ds = ds.repeat() if repeat else ds
                return ds.batch(batch_size, drop_remainder=drop_remainder).take(steps).map(to_xy)
    else:
        base = _base_stream(examples)
        if examples.cache:
            base = base.cache()

        @_plain_fn
        def one_epoch(epoch):
            ds = base.shuffle(shuffle_buffer, seed=seed * 1_000_003 + epoch) if shuffle else base
            ds = ds.repeat() if repeat else ds
            return ds.batch(batch_size, drop_remainder=drop_remainder).take(steps).map(
                to_xy, num_parallel_calls=autotune)

    dataset = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
    if examples.size is not None:
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps * max(epochs - first_epoch, 0)))
    return dataset.prefetch(autotune), steps


def eval_dataset(examples: Examples, io_: ModelIO, *, batch_size: int, with_targets: bool = True):
    """Batches in order, once (evaluation, validation, prediction)."""
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    to_xy = _structure(io_, with_targets)
    if examples.batched:
        return _base_stream(examples).map(to_xy, num_parallel_calls=autotune).prefetch(autotune)
    if examples.arrays is not None:
        tensors = _tensors(examples, io_, with_targets)
        n = examples.size
        subset = tf.constant(examples.indices if examples.indices is not None else np.arange(n), tf.int64)
        if examples.element is None:
            dataset = tf.data.Dataset.from_tensor_slices(subset).batch(batch_size).map(
                _plain_fn(lambda idx: to_xy({name: tf.gather(t, idx) for name, t in tensors.items()})))
        else:
            element = examples.element
            dataset = tf.data.Dataset.from_tensor_slices(subset).map(
                _plain_fn(lambda i: element({name: t[i] for name, t in tensors.items()})), num_parallel_calls=autotune)
            if examples.cache:
                dataset = dataset.cache()
            dataset = dataset.batch(batch_size).map(to_xy)
    else:
        dataset = _base_stream(examples)
        if examples.cache:
            dataset = dataset.cache()
        dataset = dataset.batch(batch_size).map(to_xy, num_parallel_calls=autotune)
    if examples.size is not None:  # a known length spares Keras its "ran out of data" warning
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(-(-examples.size // batch_size)))
    return dataset.prefetch(autotune)


def describe(examples: Examples) -> str:
    size = examples.size
    return f"{examples.description}: {'?' if size is None else f'{size:,}'} examples"


__all__ = ["Examples", "ModelIO", "check_examples", "describe", "eval_dataset", "model_io", "open_python",
           "open_source", "resolve_data_path", "split", "training_dataset", "digits_arrays"]
