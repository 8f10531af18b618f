"""Errors met while the data streams, turned back into located errors.

A file that cannot be decoded (an image folder's file, a TFRecord's image bytes) only shows up when
the pipeline reaches it, inside ``model.fit``. The pipeline then fails a ``tf.debugging.Assert`` whose
message carries a marker: the number of a registered origin (which source, where in the spec) and
the name of the file or record. :func:`data_errors` turns that back into a located error.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from dataclasses import dataclass, replace
from typing import Callable


from graphspec.errors import Diagnostic, TrainError


def _plain_fn(fn):
    """Mark a tf.data function as plain TensorFlow: no AutoGraph conversion (it costs ~1 s at start-up)."""
    import tensorflow as tf

    return tf.autograph.experimental.do_not_convert(fn)

_MARK = "graphspec-bad-data#"
_MARK_RE = re.compile(re.escape(_MARK) + r"(\d+):(.*?)#end", re.S)


@dataclass
class _Origin:
    description: str
    diagnostic: Diagnostic | None
    """A located template (file, line, column, path) or None (data given in Python)."""
    explain: Callable[[str], str]
    """The marker's payload (a file, a record number) -> the sentence saying what is wrong."""
    hint: str


_ORIGINS: dict[int, _Origin] = {}
_ORIGINS_KEPT = 256


def _register(origin: _Origin) -> int:
    token = max(_ORIGINS, default=0) + 1
    _ORIGINS[token] = origin
    for old in sorted(_ORIGINS)[:-_ORIGINS_KEPT]:
        del _ORIGINS[old]
    return token


def _tf_message(exc: BaseException) -> str:
    """The sentence of a TensorFlow error about the data, without its graph-execution wrapping."""
    text = (getattr(exc, "message", None) or str(exc)).strip()
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:[A-Za-z]+\].*$", "", text, flags=re.S)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line[0].isspace()
             and not line.strip().startswith(("Graph execution error", "Detected at node", "Stack trace",
                                              "<stack traces unavailable>", "[[", "File "))]
    return (lines[0] if lines else text.splitlines()[0] if text else type(exc).__name__)[:400]


@contextlib.contextmanager
def data_errors(what: str = "the data"):
    """Turn TensorFlow's complaints about the *data* met while running (a label out of range,
    a file that is not an image, a corrupt record) into a clear error instead of a traceback."""
    import tensorflow as tf

    try:
        yield
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError, tf.errors.NotFoundError,
            tf.errors.OutOfRangeError) as exc:
        text = (getattr(exc, "message", None) or str(exc))
        marked = _MARK_RE.search(text)
        origin = _ORIGINS.get(int(marked.group(1))) if marked else None
        if origin is not None:
            # tf.debugging.Assert prints strings C-escaped (\\', octal UTF-8 bytes): undo that.
            payload = codecs.escape_decode(marked.group(2).encode("utf-8", "backslashreplace"))[0]
            payload = payload.decode("utf-8", "replace")
            try:
                explained = origin.explain(payload)
            except Exception:  # telling why is a courtesy: never fail the report over it
                explained = f"'{payload}' cannot be read"
            message = f"{what}: {origin.description}: {explained}"
            if origin.diagnostic is not None:
                diagnostic = replace(origin.diagnostic, code="bad-data", message=message, hint=origin.hint)
            else:
                diagnostic = Diagnostic(code="bad-data", message=message, hint=origin.hint)
            raise TrainError([diagnostic]) from None
        raise TrainError([Diagnostic(code="bad-data", message=f"{what}: {_tf_message(exc)}", path=("train", "data"),
                                     hint="check the values in the data (labels within the number of classes, "
                                     "files of the right kind)")]) from None


def _checked_map(items, fn, count: int, name_of: Callable, token: int):
    """``items`` (a dataset of ``(k, item)``, k = 0, 1, ... count-1) mapped by ``fn``; an item whose ``fn``
    fails (a file that is not an image) stops the pipeline with the marker naming ``name_of(k)``.

    Failed items are dropped (``ignore_errors``) and a running position check, with a sentinel at the
    end, notices the first gap: exact, and nothing more than a counter per element when all is well.
    """
    import tensorflow as tf

    mapped = items.map(_plain_fn(lambda k, item: (k, fn(item))), num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=True).ignore_errors()
    values_spec = mapped.element_spec[1]
    count = tf.cast(count, tf.int64)
    sentinel = tf.data.Dataset.from_tensors((count, tf.nest.map_structure(
        lambda s: tf.zeros([d if d is not None else 0 for d in s.shape], s.dtype), values_spec)))

    @_plain_fn
    def check(expected, element):
        k, values = element
        name = name_of(tf.minimum(expected, count - 1))
        message = tf.strings.join([f"{_MARK}{token}:", name, "#end"])
        with tf.control_dependencies([tf.debugging.Assert(tf.equal(k, expected), [message])]):
            k = tf.identity(k)
        return expected + 1, (k, values)

    checked = mapped.concatenate(sentinel).scan(tf.constant(0, tf.int64), check)
    return checked.filter(_plain_fn(lambda k, values: k < count)).map(_plain_fn(lambda k, values: values))
