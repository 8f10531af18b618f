"""Opened :class:`Examples` to seeded, batched ``tf.data`` pipelines.

Shuffling is seeded per epoch (``seed``, epoch number), so the order of epoch
*k* does not depend on how many epochs ran in this process: a resumed run sees
exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from graphspec.errors import Diagnostic, TrainError
from graphspec.train.contract import ModelIO
from graphspec.train.sources import Examples
from graphspec.train.streamerrors import _checked_map, _Origin, _plain_fn, _register


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


def _cast_to(name: str, dtype, io_: ModelIO):
    """The dtype the value named ``name`` (of ``dtype``, a ``tf.DType``) is cast to for the model, or None
    to leave it as it is: inputs take the spec's dtype; targets the output's, except strings and the
    class indices of sparse losses."""
    import tensorflow as tf

    if name in io_.inputs:
        wanted = tf.as_dtype(io_.inputs[name].dtype)
    elif name in io_.outputs and dtype != tf.string and name not in io_.sparse:
        wanted = tf.as_dtype(io_.outputs[name].dtype)
    else:
        return None
    return wanted if dtype != wanted else None


def _cast(values: dict, io_: ModelIO):
    import tensorflow as tf

    out = {}
    for name, value in values.items():
        wanted = _cast_to(name, value.dtype, io_)
        out[name] = value if wanted is None else tf.cast(value, wanted)
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


def _decoder(examples: Examples, tensors: dict):
    """``order`` (indices into the arrays) -> a dataset of those examples decoded by ``examples.element``;
    a file that fails to decode stops the pipeline with an error naming it (see :func:`data_errors`)."""
    import tensorflow as tf

    element = examples.element
    if element is None:
        return None

    @_plain_fn
    def load(i):
        return element({name: t[i] for name, t in tensors.items()})

    if examples.failed is None or "__path__" not in tensors:
        return lambda order: tf.data.Dataset.from_tensor_slices(order).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    token = _register(_Origin(examples.description, examples.origin, examples.failed, examples.failed_hint))
    paths = tensors["__path__"]

    def decode(order):
        count = order.shape[0] if order.shape[0] is not None else tf.size(order, out_type=tf.int64)
        items = tf.data.Dataset.from_tensor_slices(order).enumerate()
        return _checked_map(items, load, count, lambda k: tf.gather(paths, tf.gather(order, k)), token)
    return decode


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
            return _epoch_order(subset, n, seed, epoch) if shuffle else subset

        decode = _decoder(examples, tensors)
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
            decoded = None
            if examples.cache:  # decode once, then shuffle the decoded examples in a buffer
                decoded = decode(subset).cache()

            @_plain_fn
            def one_epoch(epoch):
                if decoded is not None:
                    ds = decoded.shuffle(min(n, shuffle_buffer), seed=seed * 1_000_003 + epoch) if shuffle else decoded
                else:
                    ds = decode(epoch_indices(epoch))
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


def _epoch_order(subset, n: int, seed: int, epoch):
    """The examples of epoch ``epoch`` (``subset``'s entries, shuffled with the seed (seed, epoch))."""
    import tensorflow as tf

    seeds = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.gather(subset, tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seeds))


def numpy_training_batches(examples: Examples, io_: ModelIO, *, batch_size: int, seed: int, shuffle: bool,
                           first_epoch: int, epochs: int, steps: int | None, drop_remainder: bool = False):
    """The batches of :func:`training_dataset`, the same ones in the same order, gathered in NumPy from
    in-memory arrays: ``(batches, steps per epoch)`` as :func:`training_dataset` gives them, ``batches`` a
    generator of ``(x, y)`` (``(x,)`` without targets); or None where the batches need ``tf.data`` (files
    decoded per example, streams, text).

    For a backend other than TensorFlow (JAX), which takes NumPy batches from Python: no pipeline
    thread competes with the backend's for the CPU, and a batch costs one gather per array. Exactly the
    pipeline's batches: each epoch's order is the same stateless shuffle, computed by TensorFlow once per
    epoch, and every array is cast once, up front, with TensorFlow's own cast (a cast commutes with a
    gather), so no value is converted differently (tested against the pipeline)."""
    if examples.arrays is None or examples.element is not None or examples.batched or not examples.size:
        return None
    import tensorflow as tf

    names = [name for name in list(io_.inputs) + list(io_.targets) if name in examples.arrays]
    arrays = {}
    for name in names:
        array = examples.arrays[name]
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
            return None
        wanted = _cast_to(name, tf.as_dtype(array.dtype), io_)
        arrays[name] = array if wanted is None else tf.cast(tf.constant(array), wanted).numpy()
    n = examples.size
    per_pass = steps_per_epoch(examples, batch_size, drop_remainder)
    repeat = steps is not None and steps != per_pass
    steps = steps or per_pass
    subset = examples.indices if examples.indices is not None else np.arange(n)

    def structured(values: dict):
        x = io_.x(values)
        return (x,) if not io_.targets else (x, io_.y(values))

    def batches():
        for epoch in range(first_epoch, epochs):
            order = _epoch_order(tf.constant(subset, tf.int64), n, seed, epoch).numpy() if shuffle else subset
            for step in range(steps):
                if repeat:  # the pipeline's order repeated without end, cut into full batches (indexed, not
                    # materialised: steps_per_epoch may ask for far more batches than the data has)
                    part = order[np.arange(step * batch_size, (step + 1) * batch_size) % len(order)]
                else:
                    part = order[step * batch_size:(step + 1) * batch_size]
                    if len(part) < batch_size and drop_remainder:
                        break
                yield structured({name: array[part] for name, array in arrays.items()})

    return batches(), steps


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
            dataset = _decoder(examples, tensors)(subset)
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


def backend_batch(values):
    """A batch from a ``tf.data`` pipeline as the Keras backend takes it in a direct call
    (``predict_on_batch``): as it is for TensorFlow, NumPy arrays for another backend (JAX)."""
    import keras

    if keras.backend.backend() == "tensorflow":
        return values
    import tensorflow as tf

    return tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, values)


CHUNK_BATCHES = 16
CHUNK_BYTES = 64 << 20


def for_keras(dataset, batch_size: int):
    """The training pipeline as Keras' backend takes it best: the ``tf.data.Dataset`` itself for
    TensorFlow; for another backend (JAX), a generator of the *same* batches, in the same order.

    Keras iterates a ``tf.data`` pipeline from Python on a non-TensorFlow backend, one ``get_next``
    per batch, while the pipeline's own threads compete with the backend's for the CPU. So the
    pipeline's batches are fetched in chunks (up to ``CHUNK_BATCHES`` batches padded to the batch size,
    with their true sizes, at most ``CHUNK_BYTES`` per chunk) and split back in NumPy: every batch is
    the pipeline's, unchanged (tested), at a fraction of the per-batch cost."""
    import keras

    if keras.backend.backend() == "tensorflow":
        return dataset
    import tensorflow as tf

    specs = tf.nest.flatten(dataset.element_spec)
    if not all(isinstance(s, tf.TensorSpec) for s in specs):
        return dataset
    per_batch = 0
    for spec in specs:
        if spec.dtype == tf.string or any(d is None for d in spec.shape[1:]):
            return dataset  # no fixed size to pad to: batch by batch
        per_batch += batch_size * int(np.prod(spec.shape[1:], dtype=np.int64)) * spec.dtype.size
    chunk = max(1, min(CHUNK_BATCHES, CHUNK_BYTES // max(per_batch, 1)))
    if chunk == 1:
        return dataset

    @_plain_fn
    def with_size(*element):
        element = element if len(element) > 1 else element[0]
        return element, tf.shape(tf.nest.flatten(element)[0])[0]

    chunks = dataset.map(with_size).padded_batch(chunk)
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1  # the backend's computation keeps the CPU
    chunks = chunks.with_options(options).prefetch(1)

    def batches():
        for values, sizes in chunks.as_numpy_iterator():
            for i, n in enumerate(sizes):
                yield tf.nest.map_structure(lambda a: a[i, :n], values)

    return batches()
