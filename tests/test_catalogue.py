"""The Keras catalogue: no drift from the installed Keras, reserved keys, the deny-list."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from graphspec.catalogue import CATALOGUE_PATH, catalogue
from graphspec.catalogue.generate import DENIED_LAYERS, FILE_ARGUMENTS
from graphspec.errors import SchemaError
from graphspec.pipeline import check_text
from graphspec.schema import RESERVED_NODE_KEYS

CAT = catalogue()
LAYER_ENTRIES = {name: entry for name, entry in CAT.data["layers"].items() if "args" in entry}
DENIED = sorted(name for name, entry in CAT.data["layers"].items() if CAT.denied_reason(name))

# Constructor arguments that hand Keras code or a path to open: only denied layers may have them.
CODE_OR_FILE_ARGUMENTS = {"function", "module", "filepath", "call_fn", "init_fn", "call_endpoint",
                          "call_training_endpoint", "arguments"}


@pytest.mark.slow
def test_checked_in_catalogue_matches_the_installed_keras():
    from graphspec.catalogue.generate import build_catalogue, render

    for path, fresh in render(build_catalogue()).items():
        checked_in = path.read_text()
        if fresh != checked_in:
            import difflib

            diff = "".join(list(difflib.unified_diff(checked_in.splitlines(True), fresh.splitlines(True),
                                                     f"{path.name} (checked in)", f"{path.name} (installed Keras)"))[:80])
            pytest.fail("the catalogue drifted from the installed Keras; run python -m graphspec.catalogue.generate\n"
                        + diff)


def test_a_check_without_op_nodes_reads_no_ops_catalogue():
    """keras_ops.json is half the catalogue; only specs with op: nodes read it."""
    probe = ("import sys\n"
             "from graphspec.pipeline import check_file\n"
             "from graphspec import catalogue\n"
             "check_file(sys.argv[1])\n"
             "before = catalogue.keras_ops.cache_info().currsize\n"
             "check_file(sys.argv[2])\n"
             "print(before, catalogue.keras_ops.cache_info().currsize)\n")
    specs = Path(__file__).resolve().parents[1] / "specs"
    with_ops = next(p for p in sorted(specs.glob("*.yaml")) if re.search(r"[{ ,]op: ", p.read_text(encoding="utf-8")))
    done = subprocess.run([sys.executable, "-c", probe, str(specs / "seed000_multimodal.yaml"), str(with_ops)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "1"]


def test_catalogue_is_sane():
    assert len(LAYER_ENTRIES) > 100
    for name in ("Dense", "Conv2D", "LSTM", "MultiHeadAttention", "Concatenate", "BatchNormalization"):
        assert name in CAT.layer_names
    for alias, entry in CAT.data["layers"].items():
        if "alias_of" in entry:
            assert entry["alias_of"] in LAYER_ENTRIES, alias
    assert "name" not in CAT.data["base_layer_args"]  # a node's name is its key


@pytest.mark.parametrize("key", RESERVED_NODE_KEYS)
def test_reserved_node_keys_collide_with_no_constructor_argument(key):
    clashes = [name for name, entry in LAYER_ENTRIES.items() if key in entry["args"]]
    assert clashes == [], f"'{key}' is reserved in a node but is a constructor argument of {clashes}"
    assert key not in CAT.data["base_layer_args"]


def test_reserved_keys_cover_the_node_forms():
    assert {"type", "input"} <= set(RESERVED_NODE_KEYS)


def test_deny_list_is_applied_to_the_catalogue():
    present = {name for name in DENIED_LAYERS if name in LAYER_ENTRIES}
    assert present == set(DENIED)
    for name in ("Lambda", "TFSMLayer", "TorchModuleWrapper"):
        assert name in DENIED
    for name in DENIED:
        assert name not in CAT.layer_names


def test_only_denied_layers_take_code_or_file_arguments():
    risky = {name: sorted(CODE_OR_FILE_ARGUMENTS & set(entry["args"])) for name, entry in LAYER_ENTRIES.items()
             if CODE_OR_FILE_ARGUMENTS & set(entry["args"]) and "denied" not in entry}
    assert risky == {}, f"layers that take code or a path but are not denied: {risky}"


def test_file_arguments_are_marked_list_only():
    for layer, arguments in FILE_ARGUMENTS.items():
        assert LAYER_ENTRIES[layer]["list_only_args"] == arguments


HEADER = "graphspec: 1\nname: m\ninputs:\n  x: {shape: [8]}\n"


@pytest.mark.parametrize("layer", DENIED)
def test_every_denied_layer_is_refused_by_check_with_its_reason(layer):
    reason = CAT.denied_reason(layer)
    texts = {
        "node": HEADER + f"nodes:\n  d: {{type: {layer}}}\noutputs: [d]\n",
        "shared": HEADER + f"layers:\n  s: {{type: {layer}}}\nnodes:\n  d: {{shared: s, input: x}}\noutputs: [d]\n",
        "sequential": HEADER + f"nodes:\n  d: {{sequential: [{{type: {layer}}}]}}\noutputs: [d]\n",
        "wrapped": HEADER + f"nodes:\n  d: {{type: TimeDistributed, layer: {{type: {layer}}}}}\noutputs: [d]\n",
    }
    lines = {"node": 6, "shared": 6, "sequential": 6, "wrapped": 6}
    for where, text in texts.items():
        with pytest.raises(SchemaError) as info:
            check_text(text, file="d.yaml")
        denied = [d for d in info.value.diagnostics if d.code == "denied-layer-type"]
        assert len(denied) == 1, (where, info.value.diagnostics)
        d = denied[0]
        assert f"'{layer}'" in d.message and reason in d.message, (where, d.message)
        assert d.line == lines[where] and d.col is not None and d.path[-1] == "type", (where, d)


@pytest.mark.parametrize("layer, argument", [(layer, arg) for layer, args in FILE_ARGUMENTS.items() for arg in args])
def test_file_arguments_must_be_inline_lists(layer, argument):
    dtype = "int64" if layer == "IntegerLookup" else "string"
    base = f"graphspec: 1\nname: m\ninputs:\n  x: {{shape: [1], dtype: {dtype}}}\nnodes:\n"
    with pytest.raises(SchemaError) as info:
        check_text(base + f"  d: {{type: {layer}, {argument}: vocab.txt}}\noutputs: [d]\n")
    assert [d.code for d in info.value.diagnostics] == ["file-argument"]
    vocabulary = "[1, 2, 3]" if layer == "IntegerLookup" else "[a, b, c]"
    check_text(base + f"  d: {{type: {layer}, {argument}: {vocabulary}}}\noutputs: [d]\n")


# --------------------------------------------------------------------------------------------
# Every allow-listed name can be instantiated in each form a spec may give it
# --------------------------------------------------------------------------------------------

SAMPLE_ARGUMENTS = {
    ("optimizers", "LossScaleOptimizer"): {"inner_optimizer": {"type": "Adam", "learning_rate": 0.001}},
    ("schedules", "CosineDecay"): {"initial_learning_rate": 0.1, "decay_steps": 10},
    ("schedules", "CosineDecayRestarts"): {"initial_learning_rate": 0.1, "first_decay_steps": 10},
    ("schedules", "ExponentialDecay"): {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.9},
    ("schedules", "InverseTimeDecay"): {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.9},
    ("schedules", "PiecewiseConstantDecay"): {"boundaries": [10], "values": [0.1, 0.01]},
    ("schedules", "PolynomialDecay"): {"initial_learning_rate": 0.1, "decay_steps": 10},
    ("metrics", "IoU"): {"num_classes": 2, "target_class_ids": [0]},
    ("metrics", "MeanIoU"): {"num_classes": 2},
    ("metrics", "OneHotIoU"): {"num_classes": 2, "target_class_ids": [0]},
    ("metrics", "OneHotMeanIoU"): {"num_classes": 2},
    ("metrics", "PrecisionAtRecall"): {"recall": 0.5},
    ("metrics", "RecallAtPrecision"): {"precision": 0.5},
    ("metrics", "SensitivityAtSpecificity"): {"specificity": 0.5},
    ("metrics", "SpecificityAtSensitivity"): {"sensitivity": 0.5},
}
"""Values for the required constructor arguments of allow-listed classes (a new one must be added here)."""

OBJECT_NAMESPACES = ("initializers", "regularizers", "constraints", "optimizers", "schedules", "losses", "metrics")


def spec_forms(namespace: str) -> list:
    """Every way a spec may name an object of the namespace: each name alone where the spec accepts
    it (no required arguments), and each class as a mapping with sample values for its required arguments."""
    forms: list = []
    for name in CAT.object_names(namespace):
        if not CAT.required_arguments(namespace, name):
            forms.append(name)
    for class_name, entry in CAT.namespace(namespace)["classes"].items():
        required = [arg for arg, meta in entry["args"].items() if meta.get("required")]
        sample = SAMPLE_ARGUMENTS.get((namespace, class_name), {})
        assert set(required) <= set(sample), f"add sample values for {namespace} {class_name}{required} above"
        forms.append({"type": class_name, **sample})
    return forms


def _targets(form):
    """(y_true, y_pred) a loss or metric computes on: one-hot targets and probabilities, or for CTC
    integer label sequences and per-step probabilities."""
    import numpy as np

    name = form if isinstance(form, str) else form["type"]
    if name.lower() == "ctc":
        return np.array([[1, 2], [2, 1]], "int32"), np.full((2, 4, 4), 0.25, "float32")
    if any(word in name.lower() for word in ("sparse", "circle", "generalized")):  # integer class labels
        return np.array([1, 0], "int32"), np.array([[0.2, 0.7, 0.1], [0.6, 0.3, 0.1]], "float32")
    return np.array([[0, 1, 0], [1, 0, 0]], "float32"), np.array([[0.2, 0.7, 0.1], [0.6, 0.3, 0.1]], "float32")


def _accepted_by_check(namespace: str, form) -> list:
    from graphspec.errors import DiagnosticSink
    from graphspec.schema.semantics import SemanticChecker

    sink = DiagnosticSink()
    SemanticChecker(sink).check_object(form, namespace, ("x",), namespace)
    return sink.sorted()


@pytest.mark.slow
@pytest.mark.parametrize("namespace", OBJECT_NAMESPACES)
def test_every_allowed_object_is_instantiated_as_the_spec_gives_it(namespace):
    """Names check accepts must build (bias_initializer: Constant, l1_l2, Lamb, ... once failed in Keras)."""
    import numpy as np

    keras = pytest.importorskip("keras")
    from keras.src.trainers import compile_utils

    from graphspec.emit import make_object

    failures = []
    for form in spec_forms(namespace):
        problems = _accepted_by_check(namespace, form)
        if problems:
            failures.append((form, "refused by check", [d.message for d in problems]))
            continue
        try:
            obj = make_object(namespace, form)
            if namespace in ("initializers", "regularizers", "constraints"):
                # As a layer argument: the layer resolves it with keras.<namespace>.get
                layer = keras.layers.Dense(4, **{f"kernel_{namespace[:-1]}": obj})
                layer.build((None, 4))
                if namespace != "initializers":
                    getattr(layer, f"kernel_{namespace[:-1]}")(layer.kernel)
            elif namespace == "optimizers":
                optimizer = keras.optimizers.get(obj)
                variable = keras.Variable(np.ones(3, "float32"))
                optimizer.apply([np.ones(3, "float32")], [variable])
            elif namespace == "schedules":
                float(obj(1))
            elif namespace == "losses":
                y_true, y_pred = _targets(form)
                loss = compile_utils.get_loss(obj, y_true, y_pred)
                float(np.mean(loss(y_true, y_pred)))
            else:
                y_true, y_pred = _targets(form)
                metric = compile_utils.get_metric(obj, y_true, y_pred)
                metric.update_state(y_true, y_pred)
                metric.result()
        except Exception as exc:  # noqa: BLE001 - every failure is collected and shown
            failures.append((form, type(exc).__name__, str(exc)[:200]))
    assert not failures, "\n".join(map(str, failures))


@pytest.mark.slow
def test_every_allowed_activation_keeps_the_shape_keras_reports():
    """An activation argument must not change the shape Keras' symbolic tensor says (glu halves the last axis)."""
    import numpy as np

    keras = pytest.importorskip("keras")
    wrong = []
    for name in CAT.activations:
        assert not _accepted_by_check("activations", name)
        layer = keras.layers.Dense(4, activation=name)
        symbolic = layer(keras.Input((6,))).shape
        if tuple(layer(np.ones((2, 6), "float32")).shape[1:]) != tuple(symbolic[1:]):
            wrong.append(name)
    assert not wrong, f"activations whose run-time shape differs from Keras' symbolic shape: {wrong}"


@pytest.mark.parametrize("namespace, name, code", [
    ("activations", "glu", "denied-object"),
    ("initializers", "STFT", "denied-object"),
    ("initializers", "stft", "denied-object"),
    ("metrics", "mean_io_u", "missing-argument"),
    ("schedules", "ExponentialDecay", "missing-argument"),
    ("optimizers", {"type": "LossScaleOptimizer"}, "missing-argument"),
    ("optimizers", {"type": "LossScaleOptimizer", "inner_optimizer": {"type": "LossScaleOptimizer"}}, "bad-object"),
    ("optimizers", {"type": "LossScaleOptimizer", "inner_optimizer": {"type": "Adamm"}}, "unknown-object"),
])
def test_names_that_cannot_work_are_refused_by_check(namespace, name, code):
    assert [d.code for d in _accepted_by_check(namespace, name)] == [code]


def test_glu_activation_is_refused_at_its_line_with_a_hint():
    with pytest.raises(SchemaError) as info:
        check_text(HEADER + "nodes:\n  d: {type: Dense, units: 4, activation: glu}\noutputs: [d]\n", file="d.yaml")
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "denied-object" and (diagnostic.line, diagnostic.col) == (6, 42)
    assert "Multiply" in diagnostic.hint


def test_layer_names_are_computed_once():
    # "did you mean" reads the list for every unknown layer type: 30,000 misspelt types in one
    # spec spent a second rebuilding it (benchmarks/bench_fuzz.py --large).
    assert catalogue().layer_names is catalogue().layer_names
