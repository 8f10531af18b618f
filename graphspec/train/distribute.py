"""Distribution strategies: ``default``, ``mirrored`` (local GPUs or logical CPUs), ``multi-worker``.

The strategy is created before any model or tensor; the model is built and
compiled inside its scope. ``train.batch_size`` is per replica: the global batch
is ``batch_size * replicas``. Under ``multi-worker`` only the chief (task
``chief``, or ``worker`` 0 when the cluster has no chief) writes the run
directory; the other workers train with it and write nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from graphspec.errors import Diagnostic, TrainError


@dataclass
class Distribution:
    strategy: Any
    """The ``tf.distribute.Strategy`` (the default one when none was asked for)."""
    replicas: int
    is_chief: bool
    kind: str
    task: str = ""

    def scope(self):
        return self.strategy.scope()


def _task() -> tuple[str, int, dict]:
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        raise TrainError([Diagnostic(code="no-cluster", message="strategy: multi-worker needs the TF_CONFIG "
                                     "environment variable (the cluster and this worker's task)",
                                     hint='e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                                     '"task": {"type": "worker", "index": 0}}\'')])
    try:
        config = json.loads(raw)
        task = config["task"]
        cluster = config["cluster"]
        return str(task["type"]), int(task["index"]), cluster
    except (ValueError, KeyError, TypeError) as exc:
        raise TrainError([Diagnostic(code="no-cluster", message=f"TF_CONFIG is not valid: {exc}",
                                     hint="it is JSON with 'cluster' and 'task' {type, index}")]) from None


def configure_cpu_devices(count: int | None) -> None:
    """Split the CPU into ``count`` logical devices (before TensorFlow initializes its devices)."""
    if not count or count < 2:
        return
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    existing = tf.config.get_logical_device_configuration(cpu)
    if existing and len(existing) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as exc:  # devices already initialized in this process
        raise TrainError([Diagnostic(code="strategy-error",
                                     message=f"cannot split the CPU into {count} logical devices: {exc}",
                                     hint="set cpu_devices before TensorFlow runs anything (a fresh process)")]) from None


def make_distribution(kind: str, cpu_devices: int | None = None) -> Distribution:
    import tensorflow as tf

    if kind == "mirrored":
        configure_cpu_devices(cpu_devices)
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(
            devices=devices,
            cross_device_ops=None if gpus else tf.distribute.ReductionToOneDevice(),
        )
        return Distribution(strategy, strategy.num_replicas_in_sync, True, kind)
    if kind == "multi-worker":
        task_type, index, cluster = _task()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        is_chief = task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in cluster)
        return Distribution(strategy, strategy.num_replicas_in_sync, is_chief, kind, f"{task_type}:{index}")
    strategy = tf.distribute.get_strategy()
    return Distribution(strategy, 1, True, "default")


def distribute_options(dataset):
    """Shard a training pipeline by data across workers (the files are not split)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def prepare_model(model, distribution: Distribution, sample_batch) -> None:
    """Build the model's metrics and loss state from a local batch before ``fit``.

    Keras 3.15's ``fit`` under ``MultiWorkerMirroredStrategy`` first pulls a distributed batch and
    reduces it across replicas to build the compiled metrics, which fails for that strategy
    ("Attempt to convert a value (PerReplica...) to a Tensor"). Building from a local batch inside the
    strategy's scope does the same work; Keras' own step is then skipped for this model only.

    The same Keras reduces each step's logs across workers with ``strategy.reduce("MEAN", v, axis=0)``,
    which fails on scalar logs ("Invalid reduction dimension 0 for input with 0 dimensions",
    tensorflow/tensorflow#72388). The logs are results of metrics whose variables are already
    aggregated across replicas, so every worker holds the same value: giving them shape ``[1]``
    makes that mean the identity.
    """
    if distribution.kind != "multi-worker":
        return
    import tensorflow as tf

    with distribution.scope():
        model._symbolic_build(data_batch=sample_batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None

    def shaped(step):
        def wrapper(data):
            logs = step(data)
            return {k: tf.reshape(v, [1]) if getattr(v, "shape", None) == () else v for k, v in logs.items()}
        return wrapper

    model.train_step = shaped(model.train_step)
    model.test_step = shaped(model.test_step)
