"""Stage 1 — load: YAML 1.2 core scalars, source positions, duplicates, documents, limits."""

from __future__ import annotations

import importlib
import math
import re

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphspec.errors import Diagnostic, LoadError
from graphspec.loader import MAX_DEPTH, load, loads
from testkit import codes, diagnostics_of

load_module = importlib.import_module("graphspec.loader")


def value_of(scalar: str):
    return loads(f"v: {scalar}\n").data["v"]


# ---------------------------------------------------------------------------------------------
# YAML 1.2 core schema scalars
# ---------------------------------------------------------------------------------------------

SCALARS = [
    # booleans: only true/false (three spellings each)
    ("true", True), ("True", True), ("TRUE", True),
    ("false", False), ("False", False), ("FALSE", False),
    # YAML 1.1 booleans are plain strings in 1.2
    ("yes", "yes"), ("no", "no"), ("on", "on"), ("off", "off"),
    ("y", "y"), ("n", "n"), ("Yes", "Yes"), ("NO", "NO"), ("On", "On"), ("tRue", "tRue"),
    # null
    ("~", None), ("null", None), ("Null", None), ("NULL", None), ("", None), ("nULL", "nULL"),
    # integers: decimal (leading zeros are decimal, not octal), 0o octal, 0x hex
    ("0", 0), ("-0", 0), ("12", 12), ("+12", 12), ("-12", -12),
    ("012", 12), ("08", 8), ("0o17", 15), ("0x1F", 31), ("0x1f", 31),
    # not integers in the core schema: strings
    ("0b101", "0b101"), ("1_000", "1_000"), ("1:20", "1:20"), ("-0x1F", "-0x1F"),
    ("0X1F", "0X1F"), ("0O17", "0O17"), ("0o8", "0o8"),
    # floats: an exponent without a dot is a float in 1.2 (a string in PyYAML's 1.1)
    ("1e-3", 0.001), ("1.0e-3", 0.001), ("1E3", 1000.0), ("1e3", 1000.0), ("-1.5", -1.5),
    (".5", 0.5), ("-.5e+3", -500.0), ("1.", 1.0), ("3.0", 3.0),
    (".inf", math.inf), ("-.inf", -math.inf), ("+.Inf", math.inf), (".INF", math.inf),
    # not floats: strings
    ("1e", "1e"), ("e3", "e3"), ("1.2.3", "1.2.3"), ("inf", "inf"), ("nan", "nan"),
    # timestamps are not a core type
    ("2001-12-14", "2001-12-14"),
    # quoted and explicitly tagged scalars
    ('"true"', "true"), ("'012'", "012"), ('"1e-3"', "1e-3"), ("'null'", "null"), ('""', ""),
    ("!!str 12", "12"), ("!!str true", "true"), ("! 12", "12"),
    ("!!float 12", 12.0), ("!!float 1e-3", 0.001), ("!!int 0x10", 16), ("!!int 012", 12),
    ("!!bool true", True), ("!!null ~", None), ("!!null null", None),
]


@pytest.mark.parametrize("scalar, expected", SCALARS, ids=[repr(s) for s, _ in SCALARS])
def test_yaml12_core_scalars(scalar, expected):
    value = value_of(scalar)
    assert value == expected
    assert type(value) is type(expected)  # noqa: E721  (True is not 1, 12.0 is not 12)


def test_nan():
    assert math.isnan(value_of(".nan"))
    assert math.isnan(value_of(".NaN"))


@pytest.mark.parametrize("scalar", ["!!bool yes", "!!bool 1", "!!int 1.5", "!!int abc", "!!float abc",
                                    "!!null 0"])
def test_tagged_scalar_that_does_not_fit_its_tag(scalar):
    _, diagnostics = diagnostics_of(loads, f"v: {scalar}\n", file="s.yaml")
    assert codes(diagnostics) == ["bad-scalar"]
    assert (diagnostics[0].line, diagnostics[0].col) == (1, 4)


def test_scalar_tag_on_a_collection_is_an_error():
    with pytest.raises(LoadError):
        loads("v: !!str {b: 1}\n")


@pytest.mark.parametrize("scalar", [
    "1" * 20,                      # beyond 64 bits
    "-" + "9" * 25,
    "9" * 5000,                    # a 5,000-digit integer
    "0x" + "f" * 17,
    "0o" + "7" * 23,
    "1e400", "-1e400",             # floats that overflow to infinity
    "1" + "0" * 400 + ".0",
])
def test_huge_numbers_are_refused_where_they_are(scalar):
    _, diagnostics = diagnostics_of(loads, f"a: 1\nv: {scalar}\n", file="s.yaml")
    assert codes(diagnostics) == ["number-too-large"]
    assert (diagnostics[0].file, diagnostics[0].line, diagnostics[0].col) == ("s.yaml", 2, 4)
    assert len(diagnostics[0].message) < 200  # the number is quoted shortened


def test_largest_integers_still_load():
    assert value_of(str(2**63 - 1)) == 2**63 - 1
    assert value_of("0x" + "f" * 16) == 2**64 - 1
    assert value_of("1.7e308") == 1.7e308


# ---------------------------------------------------------------------------------------------
# Source positions
# ---------------------------------------------------------------------------------------------

POSITIONED = """\
a:
  b: [1, 2]
  c:
    - x
    - {d: 3}
e: ~
"f": 'quoted'
"""


def test_positions_of_keys_and_values():
    loaded = loads(POSITIONED, file="p.yaml")
    assert loaded.data == {"a": {"b": [1, 2], "c": ["x", {"d": 3}]}, "e": None, "f": "quoted"}
    src = loaded.source
    assert src.file == "p.yaml"
    assert src.values[()] == (1, 1)
    assert src.keys[("a",)] == (1, 1)
    assert src.values[("a",)] == (2, 3)          # a block mapping starts at its first key
    assert src.keys[("a", "b")] == (2, 3)
    assert src.values[("a", "b")] == (2, 6)      # the '['
    assert src.values[("a", "b", 0)] == (2, 7)
    assert src.values[("a", "b", 1)] == (2, 10)
    assert src.keys[("a", "c")] == (3, 3)
    assert src.values[("a", "c", 0)] == (4, 7)
    assert src.values[("a", "c", 1)] == (5, 7)   # the '{'
    assert src.keys[("a", "c", 1, "d")] == (5, 8)
    assert src.values[("a", "c", 1, "d")] == (5, 11)
    assert src.keys[("e",)] == (6, 1)
    assert src.values[("e",)] == (6, 4)
    assert src.keys[("f",)] == (7, 1)             # at the opening quote
    assert src.values[("f",)] == (7, 6)


def test_position_falls_back_to_the_nearest_ancestor():
    src = loads(POSITIONED).source
    assert src.position(("a", "b", 7)) == (2, 6)              # no such item: the list
    assert src.position(("a", "missing", "deeper")) == (2, 3)  # no such key: the mapping
    assert src.position(("a", "b"), key=True) == (2, 3)
    assert src.position(("a", "b")) == (2, 6)
    assert src.position(("zzz",)) == (1, 1)


def test_locate_fills_file_line_and_column():
    src = loads(POSITIONED, file="p.yaml").source
    located = src.locate(Diagnostic(code="x", message="m", path=("a", "c", 1, "d")))
    assert (located.file, located.line, located.col) == ("p.yaml", 5, 11)
    located = src.locate(Diagnostic(code="x", message="m", path=("a", "c", 1, "d")), key=True)
    assert (located.line, located.col) == (5, 8)


def test_positions_count_characters_not_bytes():
    loaded = loads("é: 'ü'\nb: [ä, x]\n")
    assert loaded.source.values[("é",)] == (1, 4)
    assert loaded.source.values[("b", 1)] == (2, 8)


# ---------------------------------------------------------------------------------------------
# Duplicate keys, documents, keys, depth, size
# ---------------------------------------------------------------------------------------------

def test_duplicate_key_names_both_lines():
    text = "graphspec: 1\nnodes:\n  d1: {type: Dense}\n  d2: {}\n  d1: {type: Flatten}\n"
    _, diagnostics = diagnostics_of(loads, text, file="dup.yaml")
    assert codes(diagnostics) == ["duplicate-key"]
    d = diagnostics[0]
    assert (d.file, d.line, d.col) == ("dup.yaml", 5, 3)
    assert "'d1'" in d.message and "line 3" in d.message
    assert d.hint and "last" in d.hint


def test_every_duplicate_key_is_reported_at_once():
    text = "a: 1\nb: {x: 1, x: 2}\na: 3\nc:\n  - k: 1\n    k: 2\n"
    _, diagnostics = diagnostics_of(loads, text)
    assert [(d.code, d.line, d.col) for d in diagnostics] == [
        ("duplicate-key", 2, 11), ("duplicate-key", 3, 1), ("duplicate-key", 6, 5)]
    assert all("line" in d.message for d in diagnostics)


def test_same_key_in_different_mappings_is_fine():
    assert loads("a: {k: 1}\nb: {k: 2}\n").data == {"a": {"k": 1}, "b": {"k": 2}}


@pytest.mark.parametrize("text, data", [
    ("---\na: 1\n", {"a": 1}),
    ("---\na: 1\n...\n", {"a": 1}),
    ("%YAML 1.2\n---\na: 1\n", {"a": 1}),
    ("", None),
    ("# only a comment\n", None),
])
def test_one_document(text, data):
    assert loads(text).data == data


def test_multiple_documents_are_refused_at_the_second():
    _, diagnostics = diagnostics_of(loads, "a: 1\n---\nb: 2\n", file="m.yaml")
    assert codes(diagnostics) == ["multiple-documents"]
    assert (diagnostics[0].line, diagnostics[0].col) == (2, 1)
    _, diagnostics = diagnostics_of(loads, "---\na: 1\n---\nb: 2\n---\nc: 3\n")
    assert codes(diagnostics) == ["multiple-documents"] and diagnostics[0].line == 3


@pytest.mark.parametrize("text, position", [
    ("1: a\n", (1, 1)),
    ("a: 1\n? [x, y]\n: z\n", (2, 3)),
    ("{[a]: 1}\n", (1, 2)),
    ("a: {{b: 1}: 2}\n", (1, 5)),
    ("null: 1\n", (1, 1)),
])
def test_keys_must_be_strings(text, position):
    _, diagnostics = diagnostics_of(loads, text)
    assert codes(diagnostics) == ["bad-key"]
    assert (diagnostics[0].line, diagnostics[0].col) == position


def test_quoted_keys_that_look_like_other_types_are_strings():
    assert loads("'1': a\n\"true\": b\n'null': c\n").data == {"1": "a", "true": "b", "null": "c"}


def test_on_and_no_as_keys_are_strings():
    assert loads("on: 1\nno: 2\ny: 3\n").data == {"on": 1, "no": 2, "y": 3}


def test_depth_limit():
    ok = "v: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert loads(ok).data is not None
    deep = "v: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n"
    _, diagnostics = diagnostics_of(loads, deep)
    assert codes(diagnostics) == ["too-deep"]
    assert diagnostics[0].line == 1 and diagnostics[0].col == 3 + MAX_DEPTH


def test_million_deep_flow_nesting_is_refused_quickly():
    _, diagnostics = diagnostics_of(loads, "v: " + "[" * 10**6)
    assert codes(diagnostics) == ["too-deep"]


def test_size_cap(monkeypatch):
    monkeypatch.setattr(load_module, "MAX_FILE_BYTES", 1000)
    assert loads("a: '" + "x" * 900 + "'\n").data["a"] == "x" * 900
    _, diagnostics = diagnostics_of(loads, "a: '" + "é" * 600 + "'\n")  # 1,200 bytes of UTF-8
    assert codes(diagnostics) == ["file-too-large"]


@pytest.mark.parametrize("text, code", [
    ("a: &x 1\nb: 2\n", "anchor-not-allowed"),
    ("a: 1\nb: *x\n", "alias-not-allowed"),
    ("a: !!python/object:os.system {}\n", "forbidden-tag"),
    ("a: !!binary aGVsbG8=\n", "forbidden-tag"),
    ("a: !!timestamp 2001-12-14\n", "forbidden-tag"),
    ("a: !!set {x: null}\n", "forbidden-tag"),
    ("a: !local 1\n", "forbidden-tag"),
    ("a: [1, 2\n", "yaml-syntax"),
    ("a: b: c\n", "yaml-syntax"),
    ("a:\n  - 1\n - 2\n", "yaml-syntax"),
])
def test_load_errors_are_located(text, code):
    _, diagnostics = diagnostics_of(loads, text, file="e.yaml")
    assert codes(diagnostics)[0] == code
    assert all(d.file == "e.yaml" and d.line is not None and d.col is not None for d in diagnostics)


def test_load_reads_files(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_bytes("\ufeffa: 1\nb: é\n".encode("utf-8"))  # a byte-order mark is allowed
    loaded = load(spec)
    assert loaded.data == {"a": 1, "b": "é"}
    assert loaded.source.file == str(spec)
    assert loaded.source.values[("b",)] == (2, 4)


def test_load_missing_file_and_directory(tmp_path):
    _, diagnostics = diagnostics_of(load, tmp_path / "nope.yaml")
    assert codes(diagnostics) == ["file-not-found"]
    _, diagnostics = diagnostics_of(load, tmp_path)
    assert codes(diagnostics) == ["file-not-found"] and "directory" in diagnostics[0].message


# ---------------------------------------------------------------------------------------------
# Properties: yaml.safe_dump output round-trips, and every path has a position
# ---------------------------------------------------------------------------------------------

# The YAML 1.2 core schema's non-string plain scalars (https://yaml.org/spec/1.2.2/#1032-tag-resolution).
# PyYAML's safe_dump quotes strings by YAML 1.1 rules, so a string such as '1e3' or '0o7' is written
# plain and (correctly) read back as a number under 1.2; such strings are left out of the round trip.
YAML12_NON_STRING = re.compile(
    r"~|null|Null|NULL|true|True|TRUE|false|False|FALSE"
    r"|[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+"
    r"|[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
)

# PyYAML itself does not round-trip NEL and the Unicode line/paragraph separators in single quotes.
strings = st.text(st.characters(codec="utf-8", exclude_characters="\x85\u2028\u2029"), max_size=12).filter(
    lambda s: not YAML12_NON_STRING.fullmatch(s))
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
           | st.floats(allow_nan=False) | strings)
plain_data = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(strings, children, max_size=5),
    max_leaves=25,
)


def walk(data, path=()):
    """(path, is_mapping_entry) for every value under ``data``, in document order."""
    yield path, False
    if isinstance(data, dict):
        for key, value in data.items():
            yield path + (key,), True
            yield from ((p, m) for p, m in walk(value, path + (key,)) if p != path + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from walk(value, path + (i,))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=plain_data, flow=st.sampled_from([None, True, False]), unicode=st.booleans())
def test_safe_dump_round_trips_with_a_position_for_every_path(data, flow, unicode):
    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=unicode, sort_keys=False)
    loaded = loads(text)
    assert loaded.data == data
    assert all(type(a) is type(b) for a, b in zip(_leaves(loaded.data), _leaves(data)))

    src = loaded.source
    lines = text.splitlines() or [""]
    previous = (0, 0)
    for path, is_entry in walk(data):
        assert path in src.values, path
        if is_entry:
            assert path in src.keys, path
            key_pos = src.keys[path]
            assert key_pos > previous, path  # keys appear in document order
            previous = key_pos
            assert src.values[path] >= key_pos
        line, col = src.values[path]
        assert 1 <= line <= len(lines) + 1 and col >= 1


def _leaves(data):
    if isinstance(data, dict):
        for key, value in data.items():
            yield key
            yield from _leaves(value)
    elif isinstance(data, list):
        for value in data:
            yield from _leaves(value)
    else:
        yield data


def test_why_round_trip_strings_are_filtered():
    # PyYAML (YAML 1.1) writes '1e3' plain; YAML 1.2 reads that as the float 1000.0. Intended.
    assert yaml.safe_dump({"v": "1e3"}) == "v: 1e3\n"
    assert loads(yaml.safe_dump({"v": "1e3"})).data == {"v": 1000.0}
    # ... and 1.1 booleans are quoted by safe_dump, so they round-trip as strings.
    assert loads(yaml.safe_dump({"v": "no", "on": "yes"})).data == {"v": "no", "on": "yes"}


# ---------------------------------------------------------------------------------------------
# The depth defence is graphspec's own: the same verdict whatever PyYAML/libyaml release reads
# the events (libyaml 0.2.6, in PyYAML 6.0.4's wheels, stops at 1,000 levels with its own error
# while scanning ahead; libyaml 0.2.5 does not)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, position", [
    ("v: " + "[" * 10**6, (1, 3 + MAX_DEPTH)),
    ("v: " + "{a: " * 5000, (1, 3 + 4 * (MAX_DEPTH - 1) + 1)),
    ("[" * 2000, (1, MAX_DEPTH + 1)),
    ("a:\n  b: " + "[" * 1500 + "\n", (2, 6 + MAX_DEPTH - 2)),
    ("a:\n- " + "[ " * 1200 + "\n", (2, 3 + 2 * (MAX_DEPTH - 2))),
    ("v: !!seq " + "[" * 1200, (1, 9 + MAX_DEPTH)),
    ('v: ["]]]]", \'}}}\', # ]]]]\n  ' + "[" * 1200, (2, 2 + MAX_DEPTH - 1)),
])
def test_deep_flow_nesting_is_too_deep_at_the_same_place_on_every_pyyaml(text, position):
    _, diagnostics = diagnostics_of(loads, text, file="d.yaml")
    assert codes(diagnostics) == ["too-deep"], diagnostics
    assert (diagnostics[0].line, diagnostics[0].col) == position


@pytest.mark.parametrize("text", [
    "a: '" + "[" * 2000 + "'\n",
    'a: "' + "{" * 2000 + '"\n',
    "# " + "[" * 2000 + "\na: 1\n",
    "a: x" + "[" * 2000 + "\n",
    "a: |\n  " + "[" * 2000 + "\n  more [[[\nb: 2\n",
    "a: >-\n    " + "{" * 2000 + "\n\n    " + "[" * 100 + "\nb: 2\n",
    "a: [x" + "'" * 2000 + "]\n",
    "a: [" + "'[', " * 1000 + "]\n",
])
def test_brackets_in_scalars_and_comments_are_not_nesting(text):
    assert loads(text).data is not None


def test_flow_nesting_after_scalars_with_brackets_is_still_too_deep():
    text = "a: |\n  [[[[\nb: '[[[['\nc: " + "[" * 3000 + "\n"
    _, diagnostics = diagnostics_of(loads, text)
    assert codes(diagnostics) == ["too-deep"] and diagnostics[0].line == 4


def test_syntax_error_hint_is_linear_on_long_runs_of_name_characters():
    """The hint looks for an indexed reference (``lstm[1]``) on the failing line: not quadratic."""
    import time

    for text in ("name: " + "a" * 100_000 + ": b: c\n", "v: {a: " + "a" * 100_000 + "[" * 3 + "\n",
                 "v: [x, " + "a1_" * 40_000 + "[1]: y: z]\n"):
        started = time.perf_counter()
        _, diagnostics = diagnostics_of(loads, text)
        assert time.perf_counter() - started < 2
        assert codes(diagnostics) == ["yaml-syntax"] and diagnostics[0].line is not None


def test_text_with_a_lone_surrogate_is_a_located_error():
    """``loads`` takes str from Python callers; a lone surrogate (not UTF-8) is an error, not a traceback."""
    _, diagnostics = diagnostics_of(loads, "a: 1\nb: x\ud800y\n", file="s.yaml")
    assert codes(diagnostics) == ["bad-encoding"]
    assert (diagnostics[0].line, diagnostics[0].col) == (2, 5) and "U+D800" in diagnostics[0].message


@pytest.mark.parametrize("text", [
    "v: [x" + "'" * 200_000 + "]\n",
    "v: [x" + "'" * 100_000 + ", y" + "'" * 100_000 + "]\n",
    "v: [" + "!" * 200_000 + " '[[[']\n",
    "a: b" + "'" * 200_000 + "\n",
])
def test_the_nesting_scan_is_linear_on_runs_of_quotes(text):
    import time

    started = time.perf_counter()
    try:
        loads(text)
    except LoadError as error:  # a 200,000-character tag: refused, and quoted briefly
        assert len(str(error)) < 3_000
    assert time.perf_counter() - started < 1


def test_deep_nesting_after_a_misjudged_plain_scalar_is_still_too_deep():
    """A plain scalar continued on a line of '[' looks like nesting to the scan; the parser says
    it is not, and the scan goes on to find the real nesting further down."""
    assert loads("a: x\n  " + "[" * 70 + "\nb: 1\n").data == {"a": "x " + "[" * 70, "b": 1}
    _, diagnostics = diagnostics_of(loads, "a: x\n  " + "[" * 70 + "\nb: " + "[" * 2000)
    assert codes(diagnostics) == ["too-deep"] and diagnostics[0].line == 3
