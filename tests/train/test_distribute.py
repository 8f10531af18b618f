"""Distribution: mirrored over 2 logical CPU devices; multi-worker with 2 local processes (TF_CONFIG)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
DIGITS = HERE.parent.parent / "specs" / "digits_cnn.yaml"
SMALL = ["train.epochs=2", "train.data={builtin: digits, map: {digit: label}, limit: 320}", "train.batch_size=16",
         "train.callbacks={tensorboard: false}"]


def _env(**extra):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **extra)


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus(tmp_path):
    sets = [a for s in SMALL + ["train.strategy=mirrored", "train.cpu_devices=2"] for a in ("--set", s)]
    done = subprocess.run([sys.executable, "-m", "graphspec.cli", "train", str(DIGITS), "--runs", str(tmp_path),
                           "--name", "m", "-v", "0", *sets], env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "digits_cnn" / "m"
    info = json.loads((run / "run.json").read_text())
    assert info["strategy"] == "mirrored" and info["replicas"] == 2
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 2 and history[1]["loss"] < history[0]["loss"]
    assert (run / "model.keras").is_file()


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_two_processes_reach_the_same_weights(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workers = []
    for index in range(2):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(subprocess.Popen(
            [sys.executable, str(HERE / "mw_worker.py"), str(DIGITS), str(tmp_path / f"runs{index}"),
             str(tmp_path / f"w{index}.npz"), *SMALL],
            env=_env(TF_CONFIG=config), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [w.communicate(timeout=400)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    with np.load(tmp_path / "w0.npz") as a, np.load(tmp_path / "w1.npz") as b:
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])
    # only the chief (worker 0) writes a run directory
    assert (tmp_path / "runs0" / "digits_cnn" / "mw" / "model.keras").is_file()
    assert not (tmp_path / "runs1").exists()
    run = json.loads((tmp_path / "runs0" / "digits_cnn" / "mw" / "run.json").read_text())
    assert run["strategy"] == "multi-worker" and run["replicas"] == 2
