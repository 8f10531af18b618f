"""Hostile input (DESIGN.md): each case through the real CLI in a fresh process.

Every case must give exit code 2 and a located ``file:line:col: error[code]`` message,
no traceback, nothing written and no code run. Time and memory are measured by
``benchmarks/bench_check.py``; these tests only bound them loosely (a timeout and an
address-space limit on the child), so that a regression fails instead of hanging.
"""

from __future__ import annotations

import os
import re
import resource
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from testkit import CLI, MINIMAL, check_errors, run_cli

MEMORY_LIMIT = 512 * 1024 * 1024
"""Address space allowed to a ``check`` child: far above what a spec needs, far below the machine's."""


def _limit_memory():  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def listing(folder: Path) -> dict[str, int]:
    """Every path under ``folder`` with its size (symlinks not followed)."""
    return {str(p.relative_to(folder)): p.lstat().st_size for p in sorted(folder.rglob("*"))}


def spec_with(node_lines: str, *, header: str = "graphspec: 1\nname: m\ninputs:\n  x: {shape: [8]}\n",
              outputs: str = "outputs: [d1]\n") -> str:
    return header + "nodes:\n" + node_lines + outputs


@dataclass
class Case:
    id: str
    content: bytes | None
    expect: list[tuple[str | None, int | None]]
    """(code, line) that must each appear as ``file:line:col: error[code]``; code None = any code,
    line None = a whole-file problem (``file: error[code]``)."""
    file: str = "spec.yaml"
    setup: object = None
    contains: str = ""
    timeout: float = 30
    max_output: int = 100_000
    """Characters of output allowed (a million brackets must not be echoed back)."""
    marks: list = field(default_factory=list)


def _bomb() -> bytes:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return ("\n".join(lines) + "\n").encode()


def _dev_zero(folder: Path) -> None:
    (folder / "spec.yaml").symlink_to("/dev/zero")


def _fifo(folder: Path) -> None:
    os.mkfifo(folder / "spec.yaml")  # nobody ever writes to it


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


CASES = [
    Case("python-object", _utf8("graphspec: 1\nname: !!python/object:collections.OrderedDict {}\n"),
         [("forbidden-tag", 2)]),
    Case("python-name", _utf8("graphspec: 1\nname: !!python/name:os.system\n"), [("forbidden-tag", 2)]),
    Case("python-object-apply", _utf8('graphspec: 1\nname: m\ndescription: !!python/object/apply:os.system '
                                      '["touch MARKER"]\n'), [("forbidden-tag", 3)]),
    Case("python-object-new", _utf8('graphspec: 1\nname: m\ninputs: !!python/object/new:subprocess.Popen '
                                    '[["touch", "MARKER"]]\n'), [("forbidden-tag", 3)]),
    Case("python-apply-in-node", _utf8(spec_with(
        '  d1: {type: Dense, units: !!python/object/apply:os.system ["touch MARKER"]}\n')), [("forbidden-tag", 6)]),
    Case("local-tag", _utf8("graphspec: 1\nname: !foo bar\n"), [("forbidden-tag", 2)]),
    Case("verbatim-tag", _utf8("graphspec: 1\nname: !<tag:example.com,2000:x> bar\n"), [("forbidden-tag", 2)]),
    Case("billion-laughs", _bomb(), [("anchor-not-allowed", 1)]),
    Case("anchor-and-alias", _utf8("graphspec: 1\nname: m\ninputs:\n  x: &shape {shape: [8]}\n  y: *shape\n"),
         [("anchor-not-allowed", 4)]),
    Case("flow-nesting-1e6", _utf8("graphspec: 1\nname: " + "[" * 10**6 + "\n"), [("too-deep", 2)]),
    Case("block-nesting-1e5", _utf8("graphspec: 1\nname:\n" + "- " * 100_000 + "x\n"), [("too-deep", 3)]),
    Case("mapping-nesting-deep", _utf8("graphspec: 1\nname:\n" + "".join(
        " " * i + f"k{i}:\n" for i in range(1, 200))), [("too-deep", 66)]),
    Case("over-size-cap", None, [("file-too-large", None)],
         setup=lambda folder: _write_oversized(folder / "spec.yaml")),
    Case("endless-device-file", None, [("file-unreadable", None)], setup=_dev_zero),
    Case("named-pipe", None, [(None, None)], setup=_fifo, timeout=3),
    Case("flat-list-within-size-cap", _utf8("graphspec: 1\nname: [" + "1," * 3_000_000 + "1]\n"), [(None, 2)],
         timeout=5),
    Case("many-errors-in-a-big-file", _utf8(spec_with("".join(f"  n{i}: {{type: Dense, unitz: 4}}\n" for i in range(2000)))
                                             + ("# " + "x" * 1021 + "\n") * 7000),
         [("unknown-argument", 6), ("unknown-argument", 2005)], timeout=10, max_output=1_000_000),
    Case("duplicate-keys", _utf8(spec_with("  d1: {type: Dense, units: 4}\n  d1: {type: Dense, units: 5}\n")),
         [("duplicate-key", 7)]),
    Case("yaml11-on-no", _utf8("graphspec: 1\nname: m\non: push\ninputs:\n  x: {shape: [8]}\nnodes:\n"
                               "  d1: {type: Dense, units: 4, use_bias: no}\noutputs: [d1]\n"),
         [("unknown-key", 3), ("bad-argument-type", 7)]),
    Case("float-1e-3-is-a-number", _utf8(spec_with("  d1: {type: Dense, units: 4, use_bias: 1e-3}\n")),
         [("bad-argument-type", 6)], contains="got a number"),
    Case("huge-integer-argument", _utf8(spec_with("  d1: {type: Dense, units: 1000000000000}\n")),
         [("number-too-large", 6)]),
    Case("5000-digit-integer", _utf8(spec_with("  d1: {type: Dense, units: " + "9" * 5000 + "}\n")),
         [("number-too-large", 6)]),
    Case("huge-float", _utf8(spec_with("  d1: {type: Dropout, rate: 1e999}\n")), [("number-too-large", 6)]),
    Case("huge-input-shape", _utf8("graphspec: 1\nname: m\ninputs:\n  x: {shape: [1000000000000]}\nnodes:\n"
                                   "  d1: {type: Dense, units: 4}\noutputs: [d1]\n"), [(None, 4)]),
    Case("huge-product-of-sizes", _utf8(spec_with("  d1: {type: Dense, units: 2147483647}\n",
                                                  header="graphspec: 1\nname: m\ninputs:\n"
                                                         "  x: {shape: [2147483647]}\n")),
         [("too-many-params", 6)]),
    Case("lambda-and-friends", _utf8(spec_with(
        "  d1: {type: Dense, units: 4}\n"
        "  l: {type: Lambda, function: 'lambda x: __import__(\"os\").system(\"touch MARKER\")'}\n"
        "  t: {type: TFSMLayer, filepath: /tmp, call_endpoint: serve}\n"
        "  w: {type: TorchModuleWrapper, module: x}\n"
        "  j: {type: JaxLayer, call_fn: x}\n"
        "  b: {type: Bidirectional, layer: {type: Lambda, function: x}}\n"
        "  td: {type: TimeDistributed, layer: {type: TFSMLayer, filepath: /tmp}}\n"
        "  s: {sequential: [{type: Dense, units: 2}, {type: Lambda, function: x}]}\n",
        outputs="layers:\n  shared_l: {type: Lambda, function: x}\noutputs: [d1]\n")),
        [("denied-layer-type", n) for n in (7, 8, 9, 10, 11, 12, 13, 15)]),
    Case("lookup-vocabulary-path", _utf8(
        "graphspec: 1\nname: m\ninputs:\n  x: {shape: [1], dtype: string}\n  i: {shape: [1], dtype: int64}\n"
        "nodes:\n"
        "  s: {type: StringLookup, vocabulary: /etc/passwd, input: x}\n"
        "  v: {type: TextVectorization, vocabulary: ../secrets.txt, input: x}\n"
        "  n: {type: IntegerLookup, vocabulary: ~/.keras/v.txt, input: i}\n"
        "outputs: [s, v, n]\n"), [("file-argument", 7), ("file-argument", 8), ("file-argument", 9)]),
    Case("arbitrary-keras-object-in-argument", _utf8(spec_with(
        "  d1: {type: Dense, units: 4, quantization_config: {module: keras.layers, class_name: TFSMLayer,\n"
        "        config: {filepath: /tmp/x, call_endpoint: serve}}}\n")), [(None, 6)]),
    Case("arbitrary-keras-object-in-call-argument", _utf8(spec_with(
        "  d1: {type: Dense, units: 4, call: {training: {module: keras.layers, class_name: TFSMLayer,\n"
        "        config: {filepath: /tmp/x, call_endpoint: serve}}}}\n")), [(None, 6)]),
    Case("keras-object-in-call-of-a-block", _utf8(spec_with(
        "  d1: {sequential: [{type: Dense, units: 4}], call: {training: {module: keras.layers,\n"
        "        class_name: TFSMLayer, config: {filepath: /tmp/x, call_endpoint: serve}}}}\n",
        outputs="outputs: [d1]\n")), [(None, 6)]),
    Case("not-utf8", b"graphspec: 1\nname: m\xff\xfe\n", [("bad-encoding", 2)]),
    Case("binary-file", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", [("bad-encoding", 1)]),
    Case("control-character", b"graphspec: 1\nname: m\x07x\n", [("yaml-syntax", 2)]),
    Case("syntax-error-after-a-100k-name", _utf8("graphspec: 1\nname: " + "a" * 100_000 + ": b: c\n"),
         [("yaml-syntax", 2)], timeout=5),
    Case("3000-broken-references", _utf8(spec_with("".join(
        f"  node_{i}: {{type: Dense, units: 4, input: nod_{i}x}}\n" for i in range(3000)),
        outputs="outputs: [node_0]\n")), [("unknown-reference", 6), ("unknown-reference", 3005)], timeout=10,
         max_output=2_000_000),
    Case("nul-and-overlong-saved-model-paths", _utf8(spec_with(
        '  d1: {model: "a\\0b.keras", input: x}\n  d2: {model: ' + "m" * 300 + '.keras, input: x}\n',
        outputs="outputs: [d1, d2]\n")), [("bad-path", 6), ("bad-path", 7)]),
    Case("nul-in-a-training-data-path", _utf8(spec_with("  d1: {type: Dense, units: 4}\n") +
                                              'train:\n  data: {npz: "x\\0.npz"}\n'), [("bad-path", 9)]),
    Case("bidi-controls-are-escaped", _utf8(spec_with('  d1: {type: "Den\u202ese", units: 4}\n')),
         [("unknown-layer-type", 6)], contains="Den\\u202ese"),
]


def _write_oversized(path: Path) -> None:
    from graphspec.loader import MAX_FILE_BYTES

    line = b"# " + b"x" * 1021 + b"\n"
    with open(path, "wb") as handle:
        handle.write(MINIMAL.encode())
        for _ in range(MAX_FILE_BYTES // len(line) + 1):
            handle.write(line)


def _params():
    return [pytest.param(case, id=case.id, marks=case.marks) for case in CASES]


@pytest.mark.parametrize("case", _params())
def test_check_refuses_hostile_input(case: Case, tmp_path: Path):
    if case.content is not None:
        (tmp_path / case.file).write_bytes(case.content)
    if case.setup is not None:
        case.setup(tmp_path)
    before = listing(tmp_path)

    result = run_cli("check", case.file, cwd=tmp_path, timeout=case.timeout, preexec_fn=_limit_memory)

    out = result.stdout + result.stderr
    assert "Traceback" not in out, out[-3000:]
    assert result.returncode == 2, out[-3000:]
    for code, line in case.expect:
        code_re = re.escape(code) if code else r"[a-z0-9-]+"
        where = rf"{re.escape(case.file)}:{line}:\d+" if line else re.escape(case.file)
        assert re.search(rf"^{where}: error\[{code_re}\]: ", result.stderr, re.M), (code, line, out[-3000:])
    assert case.contains in result.stderr
    assert listing(tmp_path) == before  # nothing written (and no MARKER)
    assert len(out) < case.max_output  # no runaway output


def test_yaml12_numbers_in_a_valid_spec(tmp_path: Path):
    """``012`` is 12 and ``1e-3`` a float: the spec checks, with the shapes that implies."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("graphspec: 1\nname: m\ninputs:\n  x: {shape: [8]}\nnodes:\n"
                    "  d1: {type: Dense, units: 012}\n  drop: {type: Dropout, rate: 1e-3}\noutputs: [drop]\n"
                    "compile:\n  optimizer: {type: Adam, learning_rate: 1e-3}\n  loss: mse\n")
    result = run_cli("check", "spec.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(None, 12)" in result.stdout and " 108" in result.stdout  # Dense(8 -> 12): 96 + 12 params


def test_directory_given_as_a_spec(tmp_path: Path):
    (tmp_path / "folder.yaml").mkdir()
    before = listing(tmp_path)
    result = run_cli("check", "folder.yaml", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no spec files found" in result.stderr
    result = run_cli("build", "folder.yaml", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.search(r"^folder\.yaml: error\[[a-z-]+\]: .*directory", result.stderr, re.M), result.stderr
    assert listing(tmp_path) == before


def test_nothing_runs_from_python_tags(tmp_path: Path):
    """The classic payloads, all in one file: no MARKER appears, anywhere."""
    (tmp_path / "spec.yaml").write_text(
        'graphspec: 1\nname: m\n'
        'a: !!python/object/apply:os.system ["touch MARKER"]\n'
        'b: !!python/object/apply:subprocess.check_call [["touch", "MARKER"]]\n'
        'c: !!python/object/new:type [MARKER, [], {}]\n')
    result = run_cli("check", "spec.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert not (tmp_path / "MARKER").exists() and not Path("MARKER").exists()


# A build whose saved-model paths try to leave the project. keras.saving.load_model is replaced in the
# child so that any attempt to load leaves a LOADED file behind.
ESCAPES = """\
graphspec: 1
name: escape
inputs:
  x: {shape: [8]}
nodes:
  up: {model: ../outside.keras, input: x}
  absolute: {model: /etc/passwd, input: x}
  home: {model: ~/.keras/evil.keras, input: x}
  link: {model: link.keras, input: x}
  sneaky: {model: sub/../../outside.keras, input: x}
  h5: {model: weights.h5, input: x}
  merged: {type: Concatenate, input: [up, absolute, home, link, sneaky, h5]}
outputs: [merged]
"""

SPY = (
    "import pathlib, keras\n"
    "def spy(*args, **kwargs):\n"
    "    pathlib.Path('LOADED').write_text(repr(args))\n"
    "    raise RuntimeError('load_model was called')\n"
    "keras.saving.load_model = spy\n"
    "from graphspec.cli import main\n"
    "main()\n"
)


@pytest.mark.slow
def test_build_refuses_saved_models_outside_the_project(tmp_path: Path):
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (tmp_path / "outside.keras").write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an (empty) zip archive
    (project / "link.keras").symlink_to(tmp_path / "outside.keras")
    (project / "weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    (project / "spec.yaml").write_text(ESCAPES)
    before = listing(tmp_path)

    import subprocess

    result = subprocess.run([sys.executable, "-c", SPY, "build", "spec.yaml", "-o", "out.keras"], cwd=project,
                            capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for line, code in ((6, "path-outside-project"), (7, "path-outside-project"), (8, "path-outside-project"),
                       (9, "path-outside-project"), (10, "path-outside-project"), (11, "bad-saved-model")):
        assert re.search(rf"^spec\.yaml:{line}:\d+: error\[{code}\]", result.stderr, re.M), (line, result.stderr)
    assert not (project / "LOADED").exists()
    assert listing(tmp_path) == before  # no out.keras, no temporary files


def test_error_far_along_a_long_line_renders_briefly():
    from graphspec.errors import Diagnostic, render

    text = render(Diagnostic(code="x", message="m", file="f.yaml", line=1, col=100_000), ["a" * 200_000])
    assert len(text) < 1_000


def test_messages_carry_no_control_characters():
    error = check_errors('graphspec: 1\nname: m\n"\\e[31mRED": 1\ninputs:\n  x: {shape: [8]}\n'
                         'nodes:\n  d1: {type: "Dense\\e]0;title\\a", units: 4, input: "x"}\n'
                         '  d2: {type: Dense, units: 4, input: "d1"}\noutputs: [d2]\n')
    texts = [d.message + (d.hint or "") for d in error.diagnostics]
    assert len(texts) >= 2
    for text in texts:
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text), repr(text)


BIDI = "\u202e\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def test_messages_and_excerpts_escape_bidirectional_controls():
    """U+202E and friends reorder what a terminal shows (Trojan Source): escaped like \\x1b."""
    from graphspec.errors import render

    error = check_errors(f'graphspec: 1\nname: m\ninputs:\n  x: {{shape: [8]}}\nnodes:\n'
                         f'  d1: {{type: "Den{BIDI}se", units: 4}}  # {BIDI}\noutputs: [d1]\n')
    lines = f'graphspec: 1\nname: m\ninputs:\n  x: {{shape: [8]}}\nnodes:\n' \
            f'  d1: {{type: "Den{BIDI}se", units: 4}}  # {BIDI}\noutputs: [d1]\n'.splitlines()
    (diagnostic,) = error.diagnostics
    text = render(diagnostic, lines)
    assert "\\u202e" in diagnostic.message and "\\u202e" in text
    assert not set(BIDI) & set(text), repr(text)
    excerpt, caret = text.splitlines()[1:3]
    assert caret.index("^") == excerpt.index('"Den')  # the caret stays under the escaped excerpt's value
