"""Fuzzing the front end: mutated gallery specs and fixtures through ``check`` (pure Python).

Every case is a gallery spec (``specs/``) or a test fixture (``tests/fixtures/``), mutated
either as *text* (characters flipped, YAML punctuation inserted, lines deleted or duplicated,
long runs, control and bidirectional characters, huge numbers, deep nesting) or as *data*
(loaded, then references renamed, keys deleted, layer types swapped for other catalogue
layers, numbers made negative, huge, fractional or strings, unknown keys added, nodes
duplicated, cycles made, odd file paths, ...; then dumped back to YAML). Each case runs
through :func:`graphspec.pipeline.check_text` and must

* raise nothing but :class:`~graphspec.errors.GraphspecError`,
* locate every diagnostic (a line and a column), errors and warnings alike,
* take at most :data:`CASE_SECONDS`.

Case ``i`` depends only on ``(SEED, i)``: a failure names its case, and
``python tests/test_fuzz.py --case I`` prints its spec and runs it again. CI runs
:data:`CASES` cases within :data:`BUDGET_SECONDS` (environment: ``GRAPHSPEC_FUZZ_CASES``,
``GRAPHSPEC_FUZZ_SECONDS``, ``GRAPHSPEC_FUZZ_SEED``); ``benchmarks/bench_fuzz.py`` runs the
same cases by the hundred thousand.
"""

from __future__ import annotations

import copy
import math
import os
import random
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from graphspec.errors import GraphspecError

REPO = Path(__file__).resolve().parents[1]
SEED = int(os.environ.get("GRAPHSPEC_FUZZ_SEED", "20261201"))
CASES = int(os.environ.get("GRAPHSPEC_FUZZ_CASES", "30000"))
BUDGET_SECONDS = float(os.environ.get("GRAPHSPEC_FUZZ_SECONDS", "110"))
"""Wall-clock budget of the in-suite run; it stops early (and says so) on a much slower machine."""
CASE_SECONDS = 1.0
"""No case may take longer than this."""
MIN_CASES = 2_000
"""The in-suite run fails if the budget allowed fewer cases than this (it would prove little)."""

_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


# ---------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Seed:
    name: str
    """Path relative to the repository, e.g. ``specs/digits_cnn.yaml``."""
    text: str
    data: Any
    """The spec as plain data (None when the file does not load)."""
    directory: Path


def corpus() -> list[Seed]:
    from graphspec.loader import loads

    files = sorted((REPO / "specs").glob("*.yaml")) + sorted((REPO / "tests" / "fixtures").rglob("*.yaml"))
    seeds = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        try:
            data = loads(text).data
        except GraphspecError:
            data = None
        seeds.append(Seed(str(path.relative_to(REPO)), text, data, path.parent))
    assert len(seeds) >= 40, "the gallery and the fixtures are the fuzzer's seeds"
    return seeds


def _layer_names() -> list[str]:
    from graphspec.catalogue import catalogue

    return list(catalogue().layer_names)


# ---------------------------------------------------------------------------------------------
# Text mutations
# ---------------------------------------------------------------------------------------------

PUNCTUATION = ["[", "]", "{", "}", ":", ": ", ",", "- ", "? ", "#", " #", "&a ", "*a", "!", "!!str ", "!!int ",
               "!!python/object/apply:os.system ", "!local ", "|", ">", "|-\n", "'", '"', "%", "@", "`", "\t",
               "\n", "\n  ", "---\n", "...\n", "\\", "\ufeff", "<<: ", "~", "null", "[1]", "input: ", "type: "]
ODD_CHARACTERS = ["\x00", "\x07", "\x1b", "\x1b[31m", "\x7f", "\x85", "\u2028", "\u202e", "\u2066", "\u200f",
                  "\u061c", "\ufeff", "\ud800", "\uffff", "\U0001f600", "é", "\u0301", "\r", "\r\n", "\x0b"]
NUMBERS = ["0", "-1", "-0", "1e999", "-1e999", "9" * 25, "1" * 19, "9223372036854775807", "9223372036854775808",
           "2147483648", "0x7fffffffffffffff", "0o777777777777777777777", ".nan", ".inf", "-.inf", "1e-320",
           "0.5", "1.5", "3.0", "1e3", "012", "+7", "1_000", "0b101", "4096", "65536", "100000000"]


def _flip(rng: random.Random, text: str) -> str:
    if not text:
        return rng.choice(PUNCTUATION)
    i = rng.randrange(len(text))
    pool = rng.choice([PUNCTUATION, ODD_CHARACTERS, list("abcxyzXYZ0123456789_ ")])
    return text[:i] + rng.choice(pool) + text[i + 1:]


def _insert(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text) + 1)
    return text[:i] + rng.choice(PUNCTUATION + ODD_CHARACTERS) + text[i:]


def _delete(rng: random.Random, text: str) -> str:
    if not text:
        return text
    i = rng.randrange(len(text))
    return text[:i] + text[i + rng.choice([1, 1, 2, 5, 20, 200]):]


def _lines(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    i = rng.randrange(len(lines))
    action = rng.randrange(5)
    if action == 0:
        lines.insert(rng.randrange(len(lines) + 1), lines[i])  # duplicate a line
    elif action == 1:
        del lines[i]
    elif action == 2:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif action == 3:
        lines[i] = " " * rng.choice([1, 2, 3, 4, 8]) + lines[i]  # indent
    else:
        lines[i] = lines[i].lstrip(" ")  # dedent
    return "\n".join(lines)


def _run(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text) + 1)
    unit = rng.choice(["a", "a_", "9", " ", "[", "{", "]", "x[1]", "- ", "{a: ", "'", "\\", "#", "\n", "é",
                       "\u202e", "lstm[1]"])
    return text[:i] + unit * rng.choice([10, 100, 1_000, 10_000, 30_000]) + text[i:]


def _number(rng: random.Random, text: str) -> str:
    digits = [i for i, c in enumerate(text) if c.isdigit()]
    if not digits:
        return _insert(rng, text)
    i = rng.choice(digits)
    j = i
    while j < len(text) and (text[j].isdigit() or text[j] in ".e-"):
        j += 1
    return text[:i] + rng.choice(NUMBERS) + text[j:]


def _nesting(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text) + 1)
    depth = rng.choice([30, 62, 63, 64, 65, 70, 999, 1001, 5_000, 100_000])
    opener, closer = rng.choice([("[", "]"), ("{a: ", "}"), ("- ", ""), ("[ ", " ]"), ('["]", ', "]")])
    closed = rng.random() < 0.5
    return text[:i] + opener * depth + "x" + (closer * depth if closed else "") + text[i:]


def _truncate(rng: random.Random, text: str) -> str:
    return text[:rng.randrange(len(text) + 1)]


TEXT_MUTATIONS: list[Callable[[random.Random, str], str]] = [
    _flip, _flip, _insert, _insert, _delete, _lines, _lines, _run, _number, _number, _nesting, _truncate,
]


# ---------------------------------------------------------------------------------------------
# Structure mutations (on the spec as plain data)
# ---------------------------------------------------------------------------------------------

def _containers(data: Any) -> list[tuple[Any, Any]]:
    """Every (container, key-or-index) pair in ``data``, iteratively."""
    found = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                found.append((item, key))
                stack.append(value)
        elif isinstance(item, list):
            for index, value in enumerate(item):
                found.append((item, index))
                stack.append(value)
    return found


def _names(data: Any) -> list[str]:
    names = []
    if isinstance(data, dict):
        for section in ("inputs", "nodes", "layers"):
            if isinstance(data.get(section), dict):
                names.extend(str(k) for k in data[section])
    return names or ["x"]


def _odd_value(rng: random.Random, data: Any, old: Any) -> Any:
    choices: list[Any] = [None, True, False, "", "x", -1, 0, 2**62, -(2**62), 10**18, 1.5, -0.5, 1e300, float("nan"),
                          [], {}, [1, 2], {"a": 1}, "relu", "same", "float16", "string", "../up.keras",
                          "/etc/passwd", "a\x00b", "x" * 300, "\u202eevil", rng.choice(_names(data)),
                          rng.choice(_names(data)) + "[1]", rng.choice(_names(data)) + "[99]", [[[[[1]]]]]]
    if isinstance(old, bool):
        choices += [not old, "true", 1]
    elif isinstance(old, int):
        choices += [-old, old * 1000, old + 0.5, str(old), [old], 0, 2**31, 2**40]
    elif isinstance(old, float):
        choices += [-old, int(old) if math.isfinite(old) else 0, str(old), 1e-30, 1e30]
    elif isinstance(old, str):
        choices += [old.upper(), old + "x", old[:-1], old * 3, [old], {"type": old}]
    elif isinstance(old, list):
        choices += [old * 2, old[:1], old[::-1], old + old[-1:] if old else [0]]
    elif isinstance(old, dict):
        choices += [list(old), dict(list(old.items())[:1])]
    return copy.deepcopy(rng.choice(choices))


def _m_value(rng: random.Random, data: Any) -> None:
    spots = _containers(data)
    if spots:
        container, key = rng.choice(spots)
        container[key] = _odd_value(rng, data, container[key])


def _m_delete(rng: random.Random, data: Any) -> None:
    spots = _containers(data)
    if spots:
        container, key = rng.choice(spots)
        del container[key]


def _m_unknown_key(rng: random.Random, data: Any) -> None:
    dicts = [data] + [c[k] for c, k in _containers(data) if isinstance(c[k], dict)]
    target = rng.choice(dicts)
    if isinstance(target, dict):
        key = rng.choice(["unitz", "inputs", "input", "type", "shared", "sequential", "model", "call", "layers",
                          "monitr", "BestModelSpec", "name", "dtype", "trainable", "extra", "0", "graphspec",
                          "weights", "build_config", "config", "class_name", "module", "registered_name"])
        target[key] = _odd_value(rng, data, None)


def _nodes(data: Any) -> dict | None:
    return data.get("nodes") if isinstance(data, dict) and isinstance(data.get("nodes"), dict) else None


def _m_layer_type(rng: random.Random, data: Any) -> None:
    nodes = _nodes(data)
    if nodes:
        node = nodes[rng.choice(list(nodes))]
        if isinstance(node, dict):
            node["type"] = rng.choice(_LAYERS) if rng.random() < 0.9 else rng.choice(["Lambda", "conv2d", "Dense "])


def _m_reference(rng: random.Random, data: Any) -> None:
    nodes = _nodes(data)
    if not nodes:
        return
    name = rng.choice(list(nodes))
    node = nodes[name]
    if not isinstance(node, dict):
        return
    names = _names(data)
    choice = rng.randrange(6)
    if choice == 0:
        node["input"] = name + rng.choice(["x", "_", ""])[:1]  # a misspelling, or itself: a self-loop
    elif choice == 1:
        node["input"] = rng.choice(names)  # maybe a later node: a cycle
    elif choice == 2:
        node["input"] = [rng.choice(names) for _ in range(rng.randint(0, 4))]
    elif choice == 3:
        node["input"] = {rng.choice(["inputs", "query", "value", "key", "mask", "x"]): rng.choice(names)
                         for _ in range(rng.randint(1, 3))}
    elif choice == 4:
        node["input"] = rng.choice(names) + f"[{rng.choice([0, 1, 2, 7, 10**6])}]"
    else:
        node.pop("input", None)


def _m_cycle(rng: random.Random, data: Any) -> None:
    nodes = _nodes(data)
    if nodes and len(nodes) >= 2:
        first, last = list(nodes)[0], list(nodes)[-1]
        if isinstance(nodes[first], dict):
            nodes[first]["input"] = last


def _m_duplicate_node(rng: random.Random, data: Any) -> None:
    nodes = _nodes(data)
    if nodes:
        name = rng.choice(list(nodes))
        new = rng.choice([name + "_copy", rng.choice(_names(data)), "x"])
        position = rng.randrange(len(nodes) + 1)
        items = list(nodes.items())
        items.insert(position, (new, copy.deepcopy(nodes[name])))
        data["nodes"] = dict(items)


def _m_outputs(rng: random.Random, data: Any) -> None:
    if isinstance(data, dict):
        names = _names(data)
        data["outputs"] = rng.choice([
            [rng.choice(names)], [rng.choice(names) + "[1]"], {"out": rng.choice(names), "o2": "nope"}, [], {},
            names, "x", [rng.choice(names)] * 2, None])


def _m_paths(rng: random.Random, data: Any) -> None:
    nodes = _nodes(data)
    path = rng.choice(["../x.keras", "/abs.keras", "~/m.keras", "a\x00.keras", "d" * 300 + ".keras", "x.h5",
                       "encoder.keras", "sub/../encoder.keras", "", ".", "é" * 130 + ".keras", "missing.keras"])
    if nodes and rng.random() < 0.5:
        nodes[rng.choice(list(nodes))] = {"model": path}
    elif isinstance(data, dict):
        key = rng.choice(["npz", "csv", "images"])
        data["train"] = {"data": {key: path.replace(".keras", "." + key)}, "epochs": rng.choice([1, 0, -1])}


def _m_sections(rng: random.Random, data: Any) -> None:
    """Whole sections replaced, swapped or emptied."""
    if isinstance(data, dict) and data:
        keys = list(data)
        a, b = rng.choice(keys), rng.choice(keys)
        choice = rng.randrange(3)
        if choice == 0:
            data[a], data[b] = data[b], data[a]
        elif choice == 1:
            data[a] = rng.choice([{}, [], None, "x", 1])
        else:
            data[a] = copy.deepcopy(data[b])


def _argument_value(rng: random.Random, meta: dict, data: Any) -> Any:
    """A plausible or odd value for a layer argument, often shaped like its default."""
    default = meta.get("default")
    plausible: list[Any] = [1, 2, 3, 8, 64, -1, 0, 0.5, [2, 2], [1, 1, 1], [3], [-1], [2, 3, 4], "same", "valid",
                            "causal", "relu", "channels_first", "channels_last", True, False, None, "zeros",
                            {"type": "L2", "l2": 0.01}, {"type": "GlorotUniform", "seed": 1}, [[1, 2], [3, 4]],
                            "...ab", "ab,bc->ac", "abc,cd->abd", [None, 4], [4, None], 10**9, [10**9, 10**9]]
    if default is not None and rng.random() < 0.4:
        return _odd_value(rng, data, default)
    return copy.deepcopy(rng.choice(plausible))


def _m_arguments(rng: random.Random, data: Any) -> None:
    """A node becomes another catalogue layer with some of its arguments set (reaches the shape rules)."""
    from graphspec.catalogue import catalogue

    nodes = _nodes(data)
    if not nodes:
        return
    name = rng.choice(list(nodes))
    layer_type = rng.choice(_LAYERS)
    entry = catalogue().layer(layer_type) or {}
    args = entry.get("args", {})
    node: dict[str, Any] = {"type": layer_type}
    if isinstance(nodes[name], dict) and "input" in nodes[name]:
        node["input"] = nodes[name]["input"]
    for arg, meta in args.items():
        if meta.get("required") or rng.random() < 0.3:
            node[arg] = _argument_value(rng, meta, data)
    nodes[name] = node


def _m_shapes(rng: random.Random, data: Any) -> None:
    """Input shapes and dtypes changed (every rule downstream sees other ranks and sizes)."""
    inputs = data.get("inputs") if isinstance(data, dict) else None
    if isinstance(inputs, dict) and inputs:
        spec = inputs[rng.choice(list(inputs))]
        if isinstance(spec, dict):
            if rng.random() < 0.7:
                spec["shape"] = rng.choice([[], [1], [8], [None], [3, 3], [28, 28, 1], [10, None], [5, 7, 9, 3],
                                            [0], [1, 1, 1, 1, 1, 1], [2**31], [None, None, 3], [4, 4, 4, 4]])
            else:
                spec["dtype"] = rng.choice(["int32", "string", "bool", "float16", "complex64", "int8", "uint8"])


_DECLARATION_KEYS = ("type", "default", "doc", "choices", "min", "max")


def _m_language_1_1(rng: random.Random, data: Any) -> None:
    """A parameter declaration (``params:``, a block's ``params:``) gets one of its keys set to an odd value,
    or a node odd ``repeat:``/``when:`` keys: the expand stage's own validation (a mapping for ``min:`` was a
    traceback there, found in review)."""
    if not isinstance(data, dict):
        return
    nodes = _nodes(data)
    if nodes and rng.random() < 0.3:
        name = rng.choice(list(nodes))
        if isinstance(nodes[name], dict):
            key = rng.choice(["repeat", "when"])
            odd = _odd_value(rng, data, nodes[name].get(key, 2))
            nodes[name][key] = {"count": odd, "name": _odd_value(rng, data, "x")} if rng.random() < 0.5 else odd
        return
    spots = [data["params"]] if isinstance(data.get("params"), dict) else []
    if isinstance(data.get("blocks"), dict):
        spots += [b["params"] for b in data["blocks"].values() if isinstance(b, dict) and isinstance(b.get("params"), dict)]
    if not spots:
        data["params"] = {}
        spots = [data["params"]]
    declarations = rng.choice(spots)
    if not declarations:
        declarations["p"] = {"type": "int", "default": 1}
    name = rng.choice(list(declarations))
    if not isinstance(declarations[name], dict):
        declarations[name] = {"type": "int", "default": declarations[name]}
    key = rng.choice(_DECLARATION_KEYS)
    declarations[name][key] = _odd_value(rng, data, declarations[name].get(key, 1))


STRUCTURE_MUTATIONS: list[Callable[[random.Random, Any], None]] = [
    _m_value, _m_value, _m_value, _m_delete, _m_unknown_key, _m_layer_type, _m_layer_type, _m_reference,
    _m_reference, _m_cycle, _m_duplicate_node, _m_outputs, _m_paths, _m_sections, _m_arguments, _m_arguments,
    _m_arguments, _m_shapes, _m_shapes, _m_language_1_1, _m_language_1_1,
]
_LAYERS: list[str] = []


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------

@dataclass
class Case:
    index: int
    seed: str
    """The corpus file the case was made from."""
    mutations: list[str]
    text: str
    directory: Path


def make_case(index: int, seeds: list[Seed], seed: int = SEED) -> Case:
    """Case ``index``: the same for the same ``seed`` on every machine and every run."""
    if not _LAYERS:
        _LAYERS.extend(_layer_names())
    rng = random.Random(f"{seed}:{index}")
    base = rng.choice(seeds)
    mutations: list[str] = []
    if base.data is not None and rng.random() < 0.5:
        data = copy.deepcopy(base.data)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            mutation = rng.choice(STRUCTURE_MUTATIONS)
            mutation(rng, data)
            mutations.append(mutation.__name__)
        try:
            text = yaml.dump(data, Dumper=_DUMPER, sort_keys=False, allow_unicode=rng.random() < 0.5,
                             default_flow_style=rng.choice([None, False]), width=rng.choice([80, 10**6]))
        except yaml.YAMLError:
            text = repr(data)
        if rng.random() < 0.2:  # and sometimes a text mutation on top
            mutation = rng.choice(TEXT_MUTATIONS)
            text = mutation(rng, text)
            mutations.append(mutation.__name__)
    else:
        text = base.text
        for _ in range(rng.choice([1, 1, 2, 3])):
            mutation = rng.choice(TEXT_MUTATIONS)
            text = mutation(rng, text)
            mutations.append(mutation.__name__)
    return Case(index, base.name, mutations, text, base.directory)


@dataclass
class Outcome:
    index: int
    seconds: float
    stage: str
    """``ok`` or the stage of the error (``load``, ``schema``, ``resolve``, ``infer``)."""
    problem: str | None = None
    """An escaped exception or an unlocated diagnostic, described; None when the case is fine."""


def run_case(case: Case) -> Outcome:
    from graphspec.pipeline import check_text

    started = time.perf_counter()
    problem = None
    try:
        checked = check_text(case.text, file="spec.yaml", directory=case.directory)
        stage = "ok"
        diagnostics = checked.warnings
    except GraphspecError as error:
        stage = error.stage
        diagnostics = error.diagnostics
        if not diagnostics:
            problem = f"{type(error).__name__} without diagnostics"
    except BaseException as error:  # noqa: BLE001 - anything else is a bug the fuzzer reports
        if isinstance(error, KeyboardInterrupt):
            raise
        stage = "crash"
        diagnostics = []
        frames = traceback.extract_tb(error.__traceback__)
        where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames)
                      if "graphspec" in f.filename), "?")
        problem = f"{type(error).__name__} at {where}: {str(error)[:200]}"
    seconds = time.perf_counter() - started
    for diagnostic in diagnostics:
        if problem is None and (diagnostic.line is None or diagnostic.col is None):
            problem = f"unlocated diagnostic [{diagnostic.code}] {diagnostic.message[:200]}"
    return Outcome(case.index, seconds, stage, problem)


def describe(case: Case, outcome: Outcome) -> str:
    return (f"case {case.index} ({case.seed}; {', '.join(case.mutations)}): {outcome.problem or ''}"
            f"{f' took {outcome.seconds:.2f} s' if outcome.seconds > CASE_SECONDS else ''}")


# ---------------------------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------------------------

def test_fuzz_the_front_end():
    seeds = corpus()
    run_case(make_case(0, seeds))  # imports and caches warm, outside the measured cases
    started = time.perf_counter()
    failures: list[str] = []
    slow: list[str] = []
    stages: dict[str, int] = {}
    longest = 0.0
    ran = 0
    for index in range(CASES):
        if time.perf_counter() - started > BUDGET_SECONDS:
            break
        case = make_case(index, seeds)
        outcome = run_case(case)
        ran += 1
        stages[outcome.stage] = stages.get(outcome.stage, 0) + 1
        longest = max(longest, outcome.seconds)
        if outcome.problem:
            failures.append(describe(case, outcome))
        if outcome.seconds > CASE_SECONDS:
            # A pause of the machine (another job, a garbage collection) is not a slow case: only
            # one that is slow again when rerun at once is reported.
            outcome = min(outcome, run_case(case), key=lambda o: o.seconds)
            if outcome.seconds > CASE_SECONDS:
                slow.append(describe(case, outcome))
    elapsed = time.perf_counter() - started
    summary = (f"{ran:,} cases in {elapsed:.1f} s, longest {longest * 1000:.0f} ms; outcomes: "
               + ", ".join(f"{k} {v:,}" for k, v in sorted(stages.items())))
    print(summary)
    assert not failures, f"{len(failures)} failing cases ({summary}):\n" + "\n".join(failures[:30])
    assert not slow, f"{len(slow)} cases over {CASE_SECONDS} s ({summary}):\n" + "\n".join(slow[:30])
    assert ran >= min(CASES, MIN_CASES), f"the time budget allowed only {summary}"
    past_schema = sum(v for k, v in stages.items() if k in ("resolve", "infer", "ok"))
    assert past_schema >= ran // 10, f"too few cases reach resolve and infer: {summary}"


if __name__ == "__main__":  # python tests/test_fuzz.py --case 123: show and rerun one case
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=int, required=True)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    the_case = make_case(args.case, corpus(), args.seed)
    sys.stdout.write(f"# {the_case.seed}; {', '.join(the_case.mutations)}\n{the_case.text[:3_000]}\n")
    result = run_case(the_case)
    print(f"# -> {result.stage} in {result.seconds * 1000:.1f} ms {result.problem or ''}")
