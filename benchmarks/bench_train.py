"""Benchmarks of ``graphspec train`` against the same model written by hand and trained with ``model.fit``.

    python benchmarks/bench_train.py            # everything (a few minutes on 2 CPU cores)
    python benchmarks/bench_train.py --quick    # fewer repeats
    python benchmarks/bench_train.py --json out.json
    python benchmarks/bench_train.py --backend jax --throughput-only   # the same under KERAS_BACKEND=jax

Bars (from the training issue):
  * throughput of graphspec train / hand-written model.fit on the same arrays and batch size >= 0.97,
    for the digits CNN and a ResNet-style spec (measured side by side in one process, alternating;
    the steady state: from the second epoch's start (the first traces the step function) to the last
    epoch's start, so every per-epoch write of graphspec's is inside; the end of the run, where
    graphspec writes best.keras once, is a one-off cost like start-up). The ratio is of the pooled
    throughput: all steady-state epochs of all repeats, examples over total time (the mean epoch, so
    a write graphspec makes every few epochs counts in full); the repeats' own ratios and the ratio of
    median epochs are printed beside it. The digits CNN's epoch is ~0.2 s, so it runs 16 epochs a run
    and two more repeats: single short runs on a shared machine spread by +-15%, more than the gap being
    measured. Which run of a pair goes first alternates;
  * start-up before the first batch, beyond the TensorFlow import, <= 1 s;
  * peak memory (max RSS) training from an NPZ file <= 1.5x the hand-written run.

graphspec runs as ``graphspec train`` does by default, writing its run directory (checkpoint,
best model, history and TensorBoard scalars every epoch); the hand-written run writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
DIGITS_SPEC = ROOT / "specs" / "digits_cnn.yaml"

RESNET_SPEC = """\
graphspec: 1
name: resnet_small
description: ResNet-style (two residual blocks) on 16x16x3 images
inputs:
  image: {shape: [16, 16, 3]}
nodes:
  stem:    {type: Conv2D, filters: 32, kernel_size: 3, padding: same, use_bias: false}
  stem_bn: {type: BatchNormalization}
  stem_r:  {type: ReLU}
  b1_c1:   {type: Conv2D, filters: 32, kernel_size: 3, padding: same, use_bias: false}
  b1_n1:   {type: BatchNormalization}
  b1_r1:   {type: ReLU}
  b1_c2:   {type: Conv2D, filters: 32, kernel_size: 3, padding: same, use_bias: false}
  b1_n2:   {type: BatchNormalization}
  b1_add:  {type: Add, input: [b1_n2, stem_r]}
  b1_out:  {type: ReLU}
  b2_c1:   {type: Conv2D, filters: 64, kernel_size: 3, strides: 2, padding: same, use_bias: false}
  b2_n1:   {type: BatchNormalization}
  b2_r1:   {type: ReLU}
  b2_c2:   {type: Conv2D, filters: 64, kernel_size: 3, padding: same, use_bias: false}
  b2_n2:   {type: BatchNormalization}
  b2_skip: {type: Conv2D, filters: 64, kernel_size: 1, strides: 2, use_bias: false, input: b1_out}
  b2_add:  {type: Add, input: [b2_n2, b2_skip]}
  b2_out:  {type: ReLU}
  pool:    {type: GlobalAveragePooling2D}
  label:   {type: Dense, units: 10, activation: softmax}
outputs: [label]
compile:
  optimizer: adam
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
train:
  data: {npz: data.npz}
  batch_size: 64
  epochs: 4
  seed: 1
  verbose: 0
"""


def hand_digits(keras):
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Rescaling(0.0625)(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Dropout(0.25)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    x = keras.layers.Dropout(0.4)(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="digit")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.002), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def hand_resnet(keras):
    layers = keras.layers
    inputs = keras.Input((16, 16, 3), name="image")
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(32, 3, padding="same", use_bias=False)(inputs)))
    y = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(32, 3, padding="same", use_bias=False)(x)))
    y = layers.BatchNormalization()(layers.Conv2D(32, 3, padding="same", use_bias=False)(y))
    x = layers.ReLU()(layers.Add()([y, x]))
    y = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(64, 3, strides=2, padding="same", use_bias=False)(x)))
    y = layers.BatchNormalization()(layers.Conv2D(64, 3, padding="same", use_bias=False)(y))
    skip = layers.Conv2D(64, 1, strides=2, use_bias=False)(x)
    x = layers.ReLU()(layers.Add()([y, skip]))
    outputs = layers.Dense(10, activation="softmax")(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def epoch_timer(keras, times: list, cpu: list | None = None):
    """Wall-clock times (and, into ``cpu``, the process's CPU times: all its threads) at each epoch's start
    and at the end. CPU time is the steadier measure on a shared machine, where other processes' load
    stretches wall-clock epochs at random."""
    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            times.append(time.perf_counter())
            if cpu is not None:
                cpu.append(time.process_time())

        def on_train_end(self, logs=None):
            times.append(time.perf_counter())
            if cpu is not None:
                cpu.append(time.process_time())

    return Timer()


def steady_spans(times: list[float]) -> list[float]:
    """The steady-state epochs' durations (see :func:`throughput`)."""
    begins = times[:-1]  # the last entry is on_train_end
    return [b - a for a, b in zip(begins[1:], begins[2:])]


def throughput(times: list[float], examples_per_epoch: int) -> float:
    """Examples per second in the steady state: from the start of the second epoch (the first traces the
    step function) to the start of the last. Each span runs from one epoch's start to the next's, so it
    holds all of an epoch's work, graphspec's per-epoch writes included (history, checkpoint, TensorBoard
    scalars, best weights). The last epoch is left out because what follows it is the end of the run
    (graphspec writes ``best.keras`` then, once, as a script would save its model after ``fit``); like
    start-up, a one-off cost, not throughput."""
    durations = steady_spans(times)
    return examples_per_epoch * len(durations) / sum(durations)


def bench_throughput(name: str, spec_path: Path, arrays: dict, make_hand, batch_size: int, epochs: int,
                     repeats: int, workdir: Path) -> dict:
    import keras
    import numpy as np

    from graphspec.train.loop import train

    x, y = arrays["x"], arrays["y"]
    n = len(x)
    hand, ours, hand_cpu, ours_cpu = [], [], [], []
    spans: dict[str, list[float]] = {"hand": [], "graphspec": [], "hand_cpu": [], "graphspec_cpu": []}
    def run_hand() -> None:
        keras.utils.set_random_seed(1)
        model = make_hand(keras)
        times: list = []
        cpu: list = []
        model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0,
                  callbacks=[epoch_timer(keras, times, cpu)])
        hand.append(throughput(times, n))
        hand_cpu.append(throughput(cpu, n))
        spans["hand"] += steady_spans(times)
        spans["hand_cpu"] += steady_spans(cpu)

    def run_graphspec() -> None:
        times: list = []
        cpu: list = []
        train(spec_path, runs_root=workdir / "runs", verbose=0, handle_signals=False,
              overrides=[(("train", "epochs"), epochs), (("train", "batch_size"), batch_size),
                         (("train", "validation"), None), (("train", "callbacks"), {})],
              callbacks=[epoch_timer(keras, times, cpu)])
        ours.append(throughput(times, n))
        ours_cpu.append(throughput(cpu, n))
        spans["graphspec"] += steady_spans(times)
        spans["graphspec_cpu"] += steady_spans(cpu)

    for repeat in range(repeats):
        # Which run goes first alternates, so that neither is always the one that follows the other.
        for run in ((run_hand, run_graphspec) if repeat % 2 == 0 else (run_graphspec, run_hand)):
            run()
        print(f"  {name} repeat {repeat + 1}: hand {hand[-1]:,.0f} ex/s, graphspec {ours[-1]:,.0f} ex/s "
              f"(per CPU-second: {hand_cpu[-1]:,.0f}, {ours_cpu[-1]:,.0f})", flush=True)

    def pooled(key: str) -> float:  # examples per second over every steady-state epoch of every repeat
        return n * len(spans[key]) / sum(spans[key])

    result = {"examples": n, "batch_size": batch_size, "epochs": epochs, "repeats": repeats,
              "hand_ex_per_s": pooled("hand"), "graphspec_ex_per_s": pooled("graphspec"),
              "hand_all": hand, "graphspec_all": ours,
              "hand_ex_per_cpu_s": pooled("hand_cpu"), "graphspec_ex_per_cpu_s": pooled("graphspec_cpu"),
              "ratios_all": [o / h for o, h in zip(ours, hand)],
              "median_epoch_s": {"hand": statistics.median(spans["hand"]),
                                 "graphspec": statistics.median(spans["graphspec"])}}
    result["ratio"] = result["graphspec_ex_per_s"] / result["hand_ex_per_s"]
    result["cpu_ratio"] = result["graphspec_ex_per_cpu_s"] / result["hand_ex_per_cpu_s"]
    result["median_epoch_ratio"] = result["median_epoch_s"]["hand"] / result["median_epoch_s"]["graphspec"]
    del np
    return result


_STARTUP = textwrap.dedent("""
    import os, sys, time, json
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    t0 = time.perf_counter()
    import tensorflow, keras
    t1 = time.perf_counter()
    first = []
    class First(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if not first:
                first.append(time.perf_counter())
            self.model.stop_training = True
    mode = sys.argv[1]
    if mode == "graphspec":
        from graphspec.train.loop import train
        train(sys.argv[2], runs_root=sys.argv[3], verbose=0, handle_signals=False, callbacks=[First()],
              overrides=[(("train", "epochs"), 1)])
    else:
        sys.path.insert(0, sys.argv[4])
        import numpy as np
        from bench_train import hand_digits
        z = np.load(sys.argv[5])
        keras.utils.set_random_seed(7)
        model = hand_digits(keras)
        model.fit(z["image"].astype("float32"), z["label"], batch_size=32, epochs=1, validation_split=0.2,
                  verbose=0, callbacks=[First()])
    print(json.dumps({"tf_import_s": t1 - t0, "to_first_batch_s": first[0] - t1}))
""")


def bench_startup(workdir: Path, repeats: int) -> dict:
    script = workdir / "startup.py"
    script.write_text(_STARTUP)
    digits = ROOT / "graphspec" / "data" / "digits.npz"
    results: dict = {"graphspec": [], "hand": []}
    for _ in range(repeats):
        for mode in ("hand", "graphspec"):
            out = subprocess.run([sys.executable, str(script), mode, str(DIGITS_SPEC), str(workdir / "runs-startup"),
                                  str(Path(__file__).parent), str(digits)], capture_output=True, text=True, check=True)
            results[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    summary = {mode: {"tf_import_s": statistics.median(r["tf_import_s"] for r in rows),
                      "to_first_batch_s": statistics.median(r["to_first_batch_s"] for r in rows)}
               for mode, rows in results.items()}
    summary["graphspec_overhead_beyond_tf_import_s"] = summary["graphspec"]["to_first_batch_s"]
    summary["graphspec_minus_hand_s"] = summary["graphspec"]["to_first_batch_s"] - summary["hand"]["to_first_batch_s"]
    return summary


_MEMORY = textwrap.dedent("""
    import os, sys, resource, json
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np, keras
    mode, spec, data, runs = sys.argv[1:5]
    if mode == "graphspec":
        from graphspec.train.loop import train
        train(spec, runs_root=runs, verbose=0, handle_signals=False)
    else:
        z = np.load(data)
        x, y = z["x"], z["y"]
        keras.utils.set_random_seed(1)
        inputs = keras.Input((28, 28, 1))
        h = keras.layers.Flatten()(inputs)
        out = keras.layers.Dense(10, activation="softmax")(keras.layers.Dense(32, activation="relu")(h))
        model = keras.Model(inputs, out)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, batch_size=128, epochs=1, shuffle=True, verbose=0)
    print(json.dumps({"max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")

MEMORY_SPEC = """\
graphspec: 1
name: mem
inputs: {x: {shape: [28, 28, 1]}}
nodes:
  flat: {type: Flatten}
  hidden: {type: Dense, units: 32, activation: relu}
  y: {type: Dense, units: 10, activation: softmax}
outputs: [y]
compile: {optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}
train: {data: {npz: big.npz}, batch_size: 128, epochs: 1, seed: 1, verbose: 0}
"""


def bench_memory(workdir: Path, examples: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(workdir / "big.npz", x=rng.random((examples, 28, 28, 1), dtype=np.float32),
             y=rng.integers(0, 10, examples))
    (workdir / "mem.yaml").write_text(MEMORY_SPEC)
    script = workdir / "memory.py"
    script.write_text(_MEMORY)
    result = {"examples": examples, "npz_mb": (workdir / "big.npz").stat().st_size / 2**20}
    for mode in ("hand", "graphspec"):
        out = subprocess.run([sys.executable, str(script), mode, str(workdir / "mem.yaml"), str(workdir / "big.npz"),
                              str(workdir / "runs-mem")], capture_output=True, text=True, check=True)
        result[f"{mode}_max_rss_mb"] = json.loads(out.stdout.strip().splitlines()[-1])["max_rss_mb"]
    result["ratio"] = result["graphspec_max_rss_mb"] / result["hand_max_rss_mb"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--backend", choices=("tensorflow", "jax"), default=None,
                        help="the Keras backend of both runs (default: KERAS_BACKEND, else tensorflow); "
                        "the data pipeline is tf.data on either")
    parser.add_argument("--throughput-only", action="store_true", help="skip the start-up and memory benchmarks")
    args = parser.parse_args()
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend  # before Keras is imported: it fixes its backend then
    repeats = 2 if args.quick else 3
    import numpy as np

    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with np.load(ROOT / "graphspec" / "data" / "digits.npz") as z:
            digits = {"x": z["image"].astype(np.float32), "y": z["label"].astype(np.int64)}
        print("throughput: digits CNN", flush=True)
        results["digits_cnn"] = bench_throughput("digits_cnn", DIGITS_SPEC, digits, hand_digits, 32, 16, repeats + 2, work)
        rng = np.random.default_rng(0)
        resnet = {"x": rng.random((4096, 16, 16, 3), dtype=np.float32), "y": rng.integers(0, 10, 4096)}
        (work / "resnet").mkdir()
        np.savez(work / "resnet" / "data.npz", image=resnet["x"], label=resnet["y"])
        (work / "resnet" / "resnet.yaml").write_text(RESNET_SPEC.replace("{npz: data.npz}",
                                                                         "{npz: data.npz, map: {label: label}}"))
        print("throughput: ResNet-style", flush=True)
        results["resnet_small"] = bench_throughput("resnet_small", work / "resnet" / "resnet.yaml", resnet,
                                                   hand_resnet, 64, 5, repeats, work)
        if not args.throughput_only:
            print("start-up before the first batch", flush=True)
            results["startup"] = bench_startup(work, repeats)
            print("peak memory on NPZ data", flush=True)
            results["memory"] = bench_memory(work, 100_000)
    import platform

    import keras
    import tensorflow as tf

    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__,
                          "keras": keras.__version__, "backend": keras.backend.backend(),
                          "load_average": os.getloadavg()}
    if keras.backend.backend() == "jax":
        import jax

        results["machine"]["jax"] = jax.__version__
    print()
    for name in ("digits_cnn", "resnet_small"):
        r = results[name]
        print(f"{name:14s} hand {r['hand_ex_per_s']:9,.0f} ex/s  graphspec {r['graphspec_ex_per_s']:9,.0f} ex/s  "
              f"ratio {r['ratio']:.3f}  (bar >= 0.97); per CPU-second ratio {r['cpu_ratio']:.3f}; "
              f"repeats {', '.join(f'{q:.2f}' for q in r['ratios_all'])}; median epochs {r['median_epoch_ratio']:.3f}")
    print(f"backend        {keras.backend.backend()}; load average {os.getloadavg()[0]:.1f}")
    if args.throughput_only:
        if args.json:
            args.json.write_text(json.dumps(results, indent=1) + "\n")
        return
    s = results["startup"]
    print(f"start-up       graphspec {s['graphspec']['to_first_batch_s']:.2f} s to the first batch after the TF import "
          f"(hand-written {s['hand']['to_first_batch_s']:.2f} s; TF import {s['graphspec']['tf_import_s']:.2f} s)"
          "  (bar <= 1 s)")
    m = results["memory"]
    print(f"peak memory    hand {m['hand_max_rss_mb']:.0f} MiB  graphspec {m['graphspec_max_rss_mb']:.0f} MiB  "
          f"ratio {m['ratio']:.2f}  ({m['examples']:,} examples, {m['npz_mb']:.0f} MiB NPZ; bar <= 1.5)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
