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

import os
import sys

SHOW_STARTUP_LOGS = "0"
"""The ``TF_CPP_MIN_LOG_LEVEL`` value that lets TensorFlow's start-up logs through."""


def import_tensorflow():
    """Import TensorFlow (once per process) without its start-up logs; returns the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == SHOW_STARTUP_LOGS:
        import tensorflow

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

        tensorflow.config.list_physical_devices()
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
    return tensorflow
