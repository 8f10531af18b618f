"""Importing TensorFlow without its C++ start-up chatter, for the CLI and the Python API alike.

TensorFlow 2.21 writes start-up logs straight to file descriptor 2 before absl's logging
is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` does not hide them: the oneDNN note, "Could not
find cuda drivers", the CPU-instructions banner and, on the first device query of a
machine without a GPU, ``failed call to cuInit: ... UNKNOWN ERROR (303)``. None of it is
for graphspec's users, and its real errors reach Python as exceptions. So stderr is parked
on /dev/null while TensorFlow is imported and its physical devices are listed (which is
when CUDA is probed), and nothing else.

``TF_CPP_MIN_LOG_LEVEL=0`` shows everything (the way to debug a GPU set-up); any other
value, or none, hides the start-up lines. Logical device configuration (used for
multi-CPU distribution) stays possible afterwards: listing physical devices does not
initialise the runtime context.
"""

from __future__ import annotations

import gc
import os
import sys

SHOW_STARTUP_LOGS = "0"
"""The ``TF_CPP_MIN_LOG_LEVEL`` value that lets TensorFlow's start-up logs through."""


INSTALL_HINT = "pip install 'graphspec[tensorflow]'   (with NVIDIA GPUs: pip install 'graphspec[gpu]')"
"""What to install when TensorFlow or Keras is missing (the front end, ``pip install graphspec``, has neither)."""


def _missing(error: ImportError):
    """A user error naming what to install, when ``error`` is TensorFlow or Keras not being installed."""
    from graphspec.errors import Diagnostic, GraphspecError

    name = (getattr(error, "name", None) or "").split(".")[0]
    if name not in ("tensorflow", "keras"):
        return None

    class BackendMissing(GraphspecError):
        stage = "setup"

    return BackendMissing([Diagnostic(
        code="tensorflow-not-installed",
        message=f"this command builds or runs a Keras model and needs TensorFlow and Keras; '{name}' is not installed",
        hint=INSTALL_HINT)])


def import_tensorflow():
    """Import TensorFlow (once per process) without its start-up logs; returns the module.

    Without TensorFlow or Keras installed (the front-end install), raises a :class:`GraphspecError`
    whose hint says what to install."""
    try:
        return _import_tensorflow()
    except ImportError as error:
        missing = _missing(error)
        if missing is None:
            raise
        raise missing from None


_SHORT_PROCESS_GC_THRESHOLD = 100_000
"""Container allocations between two young-generation collections in the executable, until TensorFlow."""

_python_gc_threshold: tuple[int, ...] | None = None


def collect_garbage_as_a_short_process() -> None:
    """Collect cyclic garbage rarely, for the executable's start-up and its front-end commands.

    A fresh ``check`` allocates some 80,000 objects while it imports Pydantic, Typer and the spec schema
    and builds its validators, nearly all alive until the process ends; Python's collector, at its
    default threshold (700), runs about 80 times over them, ~15 ms of a ~220 ms process. At 100,000
    allocations per young collection it runs about once, and garbage that only the collector can free
    stays bounded (mypy raises its threshold the same way). A program that merely imports graphspec
    keeps Python's settings; :func:`import_tensorflow` restores them, so building and training run as
    Keras expects.
    """
    global _python_gc_threshold
    if _python_gc_threshold is None:
        _python_gc_threshold = gc.get_threshold()
        gc.set_threshold(_SHORT_PROCESS_GC_THRESHOLD, *_python_gc_threshold[1:])


def collect_garbage_as_python_does() -> None:
    """Python's own collector settings again (after :func:`collect_garbage_as_a_short_process`): for
    TensorFlow, and for a process that turns out to live long (the language server)."""
    global _python_gc_threshold
    if _python_gc_threshold is not None:
        gc.set_threshold(*_python_gc_threshold)
        _python_gc_threshold = None


def _import_tensorflow():
    collect_garbage_as_python_does()
    if "tensorflow" in sys.modules and sys.modules["tensorflow"] is not None:
        import keras  # noqa: F401  (a missing Keras is reported here, not deep inside a command)

        return sys.modules["tensorflow"]
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == SHOW_STARTUP_LOGS:
        import tensorflow
        import keras  # noqa: F401

        return tensorflow
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
        import tensorflow
        import keras  # noqa: F401

        tensorflow.config.list_physical_devices()
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
    return tensorflow
