"""The data side of training, by concern (this module gathers their public names):

* :mod:`.contract`     — what the model expects (:class:`ModelIO`) and the checks of a source against it
* :mod:`.sources`      — NPZ, built-in, CSV, image folders, TFRecord, arrays, ``tf.data`` to :class:`Examples`
* :mod:`.pipeline`     — :class:`Examples` to seeded, batched ``tf.data`` pipelines
* :mod:`.streamerrors` — errors met while the data streams, turned back into located errors
"""

from __future__ import annotations

from graphspec.train.contract import ModelIO, Tensor, check_examples, check_values, model_io
from graphspec.train.pipeline import (
    backend_batch,
    eval_dataset,
    for_keras,
    numpy_training_batches,
    split,
    steps_per_epoch,
    training_dataset,
)
from graphspec.train.sources import (
    DATA_DIR,
    IMAGE_EXTENSIONS,
    Examples,
    describe,
    digits_arrays,
    open_python,
    open_source,
    resolve_data_path,
)
from graphspec.train.streamerrors import data_errors

__all__ = ["DATA_DIR", "IMAGE_EXTENSIONS", "Examples", "ModelIO", "Tensor", "backend_batch", "check_examples",
           "check_values", "data_errors", "describe", "digits_arrays", "eval_dataset", "for_keras", "model_io",
           "numpy_training_batches", "open_python", "open_source", "resolve_data_path", "split", "steps_per_epoch",
           "training_dataset"]
