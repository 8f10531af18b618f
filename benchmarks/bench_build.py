"""Build benchmark: ResNet-50 built by graphspec vs the same model written by hand with the functional API.

    python benchmarks/bench_build.py              # 11 alternating repetitions of each variant
    python benchmarks/bench_build.py --repeat 9 --profile

Both sides run in one process, after Keras is imported and warmed up once, alternating
(graphspec, hand-written, hand-written, graphspec, ...) so that drift in machine load hits
both alike. Each measurement starts from ``keras.backend.clear_session()`` and a garbage
collection (not timed). Two comparisons:

* **full**: what ``graphspec build`` does before saving — load, validate, resolve, infer
  (``check_file``), build the model, check ``expect:``, compile — against the hand-written
  model built and compiled with the same optimizer, loss and metrics;
* **model only**: ``emit(checked, compile=False)`` from an already checked spec, against the
  hand-written model without compile.

Bar: graphspec within 10% of hand-written, judged on the ratio of the minimum times (the
least disturbed run of each; the machine is shared). The ratio of medians and of the
minimum process CPU times (``time.process_time``: all threads) are printed beside it.
The spec is ``specs/resnet50.yaml``; without it, an equivalent spec is generated from the
same architecture. The two models are checked to be identical (layer names, classes,
parameter count) before timing.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "specs" / "resnet50.yaml"
STACKS = (("conv2", 64, 3, 1), ("conv3", 128, 4, 2), ("conv4", 256, 6, 2), ("conv5", 512, 3, 2))


# ---------------------------------------------------------------------------------------------
# The hand-written model (as in keras/src/applications/resnet.py, ResNet50, include_top=True)
# ---------------------------------------------------------------------------------------------

def hand_written_resnet50(keras, compile: bool):
    layers = keras.layers

    def block(x, filters, stride, shortcut_conv, name):
        if shortcut_conv:
            shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=name + "_0_conv")(x)
            shortcut = layers.BatchNormalization(axis=3, epsilon=1.001e-5, name=name + "_0_bn")(shortcut)
        else:
            shortcut = x
        x = layers.Conv2D(filters, 1, strides=stride, name=name + "_1_conv")(x)
        x = layers.BatchNormalization(axis=3, epsilon=1.001e-5, name=name + "_1_bn")(x)
        x = layers.Activation("relu", name=name + "_1_relu")(x)
        x = layers.Conv2D(filters, 3, padding="same", name=name + "_2_conv")(x)
        x = layers.BatchNormalization(axis=3, epsilon=1.001e-5, name=name + "_2_bn")(x)
        x = layers.Activation("relu", name=name + "_2_relu")(x)
        x = layers.Conv2D(4 * filters, 1, name=name + "_3_conv")(x)
        x = layers.BatchNormalization(axis=3, epsilon=1.001e-5, name=name + "_3_bn")(x)
        x = layers.Add(name=name + "_add")([shortcut, x])
        return layers.Activation("relu", name=name + "_out")(x)

    image = keras.Input(shape=(224, 224, 3), name="image")
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(image)
    x = layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=1.001e-5, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stack, filters, blocks, stride in STACKS:
        x = block(x, filters, stride, True, f"{stack}_block1")
        for i in range(2, blocks + 1):
            x = block(x, filters, 1, False, f"{stack}_block{i}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dense(1000, activation="softmax", name="predictions")(x)
    model = keras.Model(image, x, name="resnet50")
    if compile:
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def generated_spec() -> str:
    """The same architecture as a spec, for checkouts without specs/resnet50.yaml."""
    bn = "{type: BatchNormalization, axis: 3, epsilon: 1.001e-5}"
    lines = ["graphspec: 1", "name: resnet50", "inputs:", "  image: {shape: [224, 224, 3]}", "nodes:",
             "  conv1_pad: {type: ZeroPadding2D, padding: [[3, 3], [3, 3]]}",
             "  conv1_conv: {type: Conv2D, filters: 64, kernel_size: 7, strides: 2}",
             f"  conv1_bn: {bn}", "  conv1_relu: {type: Activation, activation: relu}",
             "  pool1_pad: {type: ZeroPadding2D, padding: [[1, 1], [1, 1]]}",
             "  pool1_pool: {type: MaxPooling2D, pool_size: 3, strides: 2}"]
    previous = "pool1_pool"
    for stack, filters, blocks, stride in STACKS:
        for i in range(1, blocks + 1):
            name, s = f"{stack}_block{i}", (stride if i == 1 else 1)
            strides = f", strides: {s}" if s != 1 else ""
            if i == 1:
                lines += [f"  {name}_0_conv: {{type: Conv2D, filters: {4 * filters}, kernel_size: 1{strides}, "
                          f"input: {previous}}}", f"  {name}_0_bn: {bn}"]
                shortcut = f"{name}_0_bn"
            else:
                shortcut = previous
            lines += [f"  {name}_1_conv: {{type: Conv2D, filters: {filters}, kernel_size: 1{strides}, input: {previous}}}",
                      f"  {name}_1_bn: {bn}", f"  {name}_1_relu: {{type: Activation, activation: relu}}",
                      f"  {name}_2_conv: {{type: Conv2D, filters: {filters}, kernel_size: 3, padding: same}}",
                      f"  {name}_2_bn: {bn}", f"  {name}_2_relu: {{type: Activation, activation: relu}}",
                      f"  {name}_3_conv: {{type: Conv2D, filters: {4 * filters}, kernel_size: 1}}",
                      f"  {name}_3_bn: {bn}",
                      f"  {name}_add: {{type: Add, input: [{shortcut}, {name}_3_bn]}}",
                      f"  {name}_out: {{type: Activation, activation: relu}}"]
            previous = f"{name}_out"
    lines += ["  avg_pool: {type: GlobalAveragePooling2D}",
              "  predictions: {type: Dense, units: 1000, activation: softmax}",
              "outputs: [predictions]", "compile:", "  optimizer: {type: SGD, learning_rate: 0.1, momentum: 0.9}",
              "  loss: sparse_categorical_crossentropy", "  metrics: [accuracy]", "expect:", "  params: 25636712"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------

def fresh(keras) -> None:
    keras.backend.clear_session()
    gc.collect()


def timed(function):
    start, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - start, time.process_time() - cpu, result


def same_architecture(a, b) -> None:
    left = [(layer.name, type(layer).__name__) for layer in a.layers]
    right = [(layer.name, type(layer).__name__) for layer in b.layers]
    assert left == right, "the hand-written model differs from the spec's"
    assert a.count_params() == b.count_params(), (a.count_params(), b.count_params())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ResNet-50: graphspec vs hand-written functional API")
    parser.add_argument("--repeat", type=int, default=11, help="measurements per variant (default 11)")
    parser.add_argument("--profile", action="store_true", help="cProfile one graphspec build (full)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    import keras  # noqa: F401  (imported once, outside every measurement)

    import_seconds = time.perf_counter() - start
    from graphspec.emit import emit
    from graphspec.pipeline import check_file

    spec = SPEC
    if not spec.exists():
        spec = Path(tempfile.mkdtemp()) / "resnet50.yaml"
        spec.write_text(generated_spec())

    def graphspec_full():
        return emit(check_file(spec), compile=True)

    checked = check_file(spec)

    def graphspec_model():
        return emit(checked, compile=False)

    variants = {
        "full": (graphspec_full, lambda: hand_written_resnet50(keras, compile=True)),
        "model only": (graphspec_model, lambda: hand_written_resnet50(keras, compile=False)),
    }

    # Warm-up (first-call costs of TensorFlow and Keras), and the equivalence check.
    fresh(keras)
    ours = graphspec_full()
    fresh(keras)
    theirs = hand_written_resnet50(keras, compile=True)
    same_architecture(ours, theirs)
    params = ours.count_params()
    del ours, theirs
    check_seconds = min(timed(lambda: check_file(spec))[0] for _ in range(5))

    times: dict[str, dict[str, list[float]]] = {v: {"graphspec": [], "hand-written": []} for v in variants}
    cpu_times: dict[str, dict[str, list[float]]] = {v: {"graphspec": [], "hand-written": []} for v in variants}
    for i in range(args.repeat):
        for variant, (ours_fn, theirs_fn) in variants.items():
            order = [("graphspec", ours_fn), ("hand-written", theirs_fn)]
            if i % 2:
                order.reverse()
            for who, function in order:
                fresh(keras)
                seconds, cpu, model = timed(function)
                times[variant][who].append(seconds)
                cpu_times[variant][who].append(cpu)
                del model

    import tensorflow as tf

    print(f"ResNet-50 build benchmark: {spec.relative_to(REPO) if spec.is_relative_to(REPO) else spec} "
          f"({params:,} parameters), {args.repeat} alternating repetitions per variant, one process")
    print(f"python {sys.version.split()[0]}, keras {keras.__version__}, tensorflow {tf.__version__}, "
          f"{os.cpu_count()} CPUs, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"keras import {import_seconds:.1f} s (not counted); graphspec check of the spec alone "
          f"{check_seconds * 1000:.0f} ms\n")
    print("| variant | graphspec min s (median) | hand-written min s (median) | ratio of mins | ratio of medians "
          "| ratio of min CPU s | bar (ratio of mins) | result |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    failed = False
    for variant in variants:
        ours_t, theirs_t = times[variant]["graphspec"], times[variant]["hand-written"]
        ratio = min(ours_t) / min(theirs_t)
        ratio_median = statistics.median(ours_t) / statistics.median(theirs_t)
        ratio_cpu = min(cpu_times[variant]["graphspec"]) / min(cpu_times[variant]["hand-written"])
        ok = ratio <= 1.10
        failed |= not ok
        print(f"| {variant} | {min(ours_t):.3f} ({statistics.median(ours_t):.3f}) | "
              f"{min(theirs_t):.3f} ({statistics.median(theirs_t):.3f}) | {ratio:.3f} | {ratio_median:.3f} | "
              f"{ratio_cpu:.3f} | <= 1.10 | {'pass' if ok else '**FAIL**'} |")
    print("\nall runs (s):")
    for variant in variants:
        for who, values in times[variant].items():
            print(f"  {variant:<10} {who:<12} " + " ".join(f"{v:.3f}" for v in values))

    if args.profile:
        import cProfile
        import io
        import pstats

        fresh(keras)
        profiler = cProfile.Profile()
        profiler.enable()
        graphspec_full()
        profiler.disable()
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(25)
        print("\ncProfile of one graphspec build (full), top 25 by cumulative time:\n")
        print("\n".join(line for line in stream.getvalue().splitlines() if line.strip()))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
