"""`graphspec import` of ResNet-50's .keras file against Keras loading the same file; the 13 applications.

    python benchmarks/bench_import.py                  # ResNet-50 timing, 5 rounds
    python benchmarks/bench_import.py --apps           # also the 13 keras.applications round trips

keras.applications.ResNet50(weights=None) is saved to a temporary .keras file. Each round, in one process (Keras
already imported, so both see the same machine), times `keras.saving.load_model(path, compile=False)` and
`import_model(path)` (archive checks, config.json read as JSON, conversion, the pure-Python check that fills
`expect:`), interleaved; the medians and their ratio are printed. The bar: import <= 1.5 x Keras' load.
`--apps` imports each of the 13 applications of issue 8 at its smallest input, checks, builds and compares
(parameter counts, layer names, max abs output difference with the weights copied), as the slow test does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

APPLICATIONS = {"ResNet50": 32, "ResNet50V2": 32, "MobileNetV2": 32, "MobileNetV3Small": 32, "DenseNet121": 32,
                "InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71, "EfficientNetB0": 32,
                "EfficientNetV2B0": 32, "ConvNeXtTiny": 32, "NASNetMobile": 32, "VGG16": 32}


def bench_resnet50(rounds: int) -> float:
    import keras

    from graphspec.importer import import_model

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "resnet50.keras"
        keras.applications.ResNet50(weights=None).save(path)
        keras_times, import_times = [], []
        lines = 0
        for _ in range(rounds):
            start = time.perf_counter()
            keras.saving.load_model(path, compile=False)
            keras_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = import_model(str(path))
            import_times.append(time.perf_counter() - start)
            lines = len(result.text.splitlines())
        folded = len(import_model(str(path), fold=True).text.splitlines())
    k, i = statistics.median(keras_times), statistics.median(import_times)
    print(f"ResNet-50 .keras: Keras load_model {k * 1000:.0f} ms, graphspec import {i * 1000:.0f} ms, "
          f"ratio {i / k:.2f}x (bar: <= 1.5x); spec {lines} lines, {folded} with --fold (bar: <= 80)")
    return i / k if folded <= 80 else float("inf")


def bench_apps() -> bool:
    import numpy as np

    from graphspec.emit import emit
    from graphspec.importer import import_model
    from graphspec.pipeline import check_text
    from graphspec.plugins import using

    ok = True
    for name, size in APPLICATIONS.items():
        start = time.perf_counter()
        result = import_model(f"keras.applications.{name}", kwargs={"input_shape": [size, size, 3]})
        checked = check_text(result.text, file=f"{name}.yaml")
        with using(checked.graph.plugins):
            rebuilt = emit(checked, compile=False)
        model = result.model
        rebuilt.set_weights(model.get_weights())
        x = np.random.RandomState(0).rand(2, size, size, 3).astype("float32")
        diff = float(np.max(np.abs(np.asarray(model(x)) - np.asarray(rebuilt(x)))))
        same = ([layer.name for layer in model.layers] == [layer.name for layer in rebuilt.layers]
                and model.count_params() == rebuilt.count_params() and diff == 0.0)
        ok &= same
        print(f"{name:18} params {model.count_params():>10,}  names equal "
              f"{[la.name for la in model.layers] == [la.name for la in rebuilt.layers]}  max|diff| {diff}  "
              f"{len(result.text.splitlines())} lines  {time.perf_counter() - start:.1f} s")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--apps", action="store_true")
    options = parser.parse_args()
    from graphspec.backend import import_tensorflow

    import_tensorflow()
    ratio = bench_resnet50(options.rounds)
    ok = bench_apps() if options.apps else True
    sys.exit(0 if ratio <= 1.5 and ok else 1)


if __name__ == "__main__":
    main()
