"""Stage 6 — train: a checked spec, its ``train:`` section and data to a fitted model and a run directory.

Like :mod:`graphspec.emit`, these modules import TensorFlow; nothing here is
imported by ``graphspec check`` or ``graphspec --help``.

* :mod:`.settings`   — the resolved train settings, command-line overrides
* :mod:`.sources`    — data sources (NPZ, built-in, CSV, image folders, TFRecord, arrays,
                        ``tf.data``) opened into examples
* :mod:`.contract`   — what the model expects of its data, and the checks against it
* :mod:`.pipeline`   — examples to seeded, batched ``tf.data`` pipelines
* :mod:`.streamerrors` — errors met while the data streams, located; :mod:`.data` gathers these names
* :mod:`.rundir`     — the run directory and atomic writes
* :mod:`.loop`       — ``fit`` with callbacks, resume, signals, NaN detection
* :mod:`.distribute` — distribution strategies
* :mod:`.evaluate`, :mod:`.predict` — ``graphspec evaluate`` / ``graphspec predict``
"""

from __future__ import annotations

from graphspec.backend import import_tensorflow

__all__ = ["train", "evaluate", "predict"]


def train(*args, **kwargs):
    """See :func:`graphspec.train.loop.train`."""
    import_tensorflow()
    from graphspec.train.loop import train as _train

    return _train(*args, **kwargs)


def evaluate(*args, **kwargs):
    """See :func:`graphspec.train.evaluate.evaluate`."""
    import_tensorflow()
    from graphspec.train.evaluate import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


def predict(*args, **kwargs):
    """See :func:`graphspec.train.predict.predict`."""
    import_tensorflow()
    from graphspec.train.predict import predict as _predict

    return _predict(*args, **kwargs)
