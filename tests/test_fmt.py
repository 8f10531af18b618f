"""graphspec fmt: one canonical layout, comments kept, idempotent, the spec hash never changed."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from gen_spec import generate  # noqa: E402

from graphspec.cli import app  # noqa: E402
from graphspec.errors import GraphspecError  # noqa: E402
from graphspec.fmt import comments, format_text, is_formatted, spec_hash_of  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GALLERY = sorted((ROOT / "specs").glob("*.yaml"))
runner = CliRunner()

UNFORMATTED = """\
# the team's model
nodes:
  d1:   {units: 4, type: Dense}       # first
  d2:
    type: Dense
    units: 2
    activation: softmax
inputs: {x: {shape: [8]}}
graphspec: 1
compile:
  optimizer: {learning_rate: 1e-3, type: Adam}   # slow
  loss: categorical_crossentropy
name: m
outputs:
- d2
"""

FORMATTED = """\
# the team's model
graphspec: 1
name: m
inputs:
  x: {shape: [8]}
nodes:
  d1: {type: Dense, units: 4}         # first
  d2: {type: Dense, units: 2, activation: softmax}
outputs: [d2]
compile:
  optimizer: {type: Adam, learning_rate: 0.001}  # slow
  loss: categorical_crossentropy
"""


def test_the_canonical_layout():
    assert format_text(UNFORMATTED) == FORMATTED
    assert spec_hash_of(UNFORMATTED) == spec_hash_of(FORMATTED) is not None


@pytest.mark.parametrize("path", GALLERY, ids=[p.stem for p in GALLERY])
def test_gallery_formats_idempotently_with_the_same_hash_and_comments(path):
    text = path.read_text(encoding="utf-8")
    try:
        once = format_text(text, str(path))
    except GraphspecError as error:  # a comment between { and } (ruamel cannot keep it): refused, never dropped
        assert [d.code for d in error.diagnostics] == ["fmt-comment-in-flow"]
        return
    assert format_text(once, str(path)) == once
    assert sorted(c for _, c in comments(once)) == sorted(c for _, c in comments(text))
    assert spec_hash_of(once, path.name, path.parent) == spec_hash_of(text, path.name, path.parent) is not None


def test_most_of_the_gallery_formats():
    refused = []
    for path in GALLERY:
        try:
            format_text(path.read_text(encoding="utf-8"), str(path))
        except GraphspecError:
            refused.append(path.name)
    assert len(refused) <= 1, refused


@pytest.mark.parametrize("kind", ["chain", "branchy"])
def test_generated_specs_keep_their_hash(kind):
    text = generate(60, kind)
    once = format_text(text)
    assert format_text(once) == once
    assert spec_hash_of(once) == spec_hash_of(text) is not None


def _respell(value, draw_bool):
    if isinstance(value, float) and draw_bool():
        return f"{value:e}"  # 1.000000e-03
    return value


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), flow=st.sampled_from([True, False, None]))
def test_any_layout_of_a_spec_formats_to_the_same_text(seed, flow):
    """Key order (top level and inside nodes), flow/block style and number spelling do not matter: fmt
    writes one text, with the spec's hash."""
    rng = random.Random(seed)
    source = (ROOT / "specs" / "digits_multi.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(source)
    canonical = format_text(yaml.safe_dump(data, sort_keys=False))

    def shuffled(mapping):
        items = list(mapping.items())
        rng.shuffle(items)
        return dict(items)

    perturbed = shuffled(data)
    perturbed["nodes"] = {name: shuffled(node) for name, node in data["nodes"].items()}  # node order kept
    text = yaml.safe_dump(perturbed, sort_keys=False, default_flow_style=flow, width=rng.choice([40, 80, 1000]))
    text = text.replace("0.001", rng.choice(["0.001", "1e-3", "1.0e-3", "0.0010"]))
    result = format_text(text)
    assert result == canonical
    assert not is_formatted(text) or text == canonical  # the fast path never says "formatted" wrongly
    assert spec_hash_of(result, "digits_multi.yaml", ROOT / "specs") == \
        spec_hash_of(source, "digits_multi.yaml", ROOT / "specs")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_blank_lines_anywhere_do_not_change_the_layout(seed):
    """Blank lines (which ruamel.yaml keeps as comments at the end of the item before them) are spacing: a
    block-style entry followed by one still becomes one flow line, and the blank line stays after it
    (it once ended up inside the braces: ``{type: Dense, units: 3<blank>}``)."""
    rng = random.Random(seed)
    source = (ROOT / "specs" / "digits_multi.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(source)
    del data["description"]  # a blank line inside a multi-line string is a newline in its value, not spacing
    canonical = format_text(yaml.safe_dump(data, sort_keys=False))
    lines = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=10_000).splitlines()
    spaced = []
    for line in lines:
        spaced.append(line)
        if rng.random() < 0.3:
            spaced.append("")
    result = format_text("\n".join(spaced) + "\n")
    assert [line for line in result.splitlines() if line] == canonical.splitlines()
    assert format_text(result) == result
    assert not is_formatted(result) or format_text(result) == result


@pytest.mark.parametrize("written, formatted", [
    ("nodes:\n  a:\n    type: Dense\n    units: 3\n\n  b: {type: Dense, units: 3}\n",
     "nodes:\n  a: {type: Dense, units: 3}\n\n  b: {type: Dense, units: 3}\n"),
    ("nodes:\n  a:\n    type: Dense\n    units: 3  # three\n\n  b: {type: Dense, units: 3}\n",
     "nodes:\n  a: {type: Dense, units: 3} # three\n\n  b: {type: Dense, units: 3}\n"),
    ("nodes:\n  a:\n    type: Dense\n    units: 3\n  # about b\n  b: {type: Dense, units: 3}\n",
     "nodes:\n  a: {type: Dense, units: 3}\n  # about b\n  b: {type: Dense, units: 3}\n"),
    ("nodes:\n  m:\n    sequential:\n      - {type: Dense, units: 4}\n\n      - {type: Dense, units: 1}\n\n"
     "outputs:\n  - m\n\ncompile:\n  optimizer:\n    type: Adam\n    learning_rate: 0.01\n\n  loss: mse\n",
     "nodes:\n  m: {sequential: [{type: Dense, units: 4}, {type: Dense, units: 1}]}\n\noutputs: [m]\n\n"
     "compile:\n  optimizer: {type: Adam, learning_rate: 0.01}\n\n  loss: mse\n"),
], ids=["blank-after", "comment-and-blank-after", "comment-above-next", "blank-inside-and-after"])
def test_what_follows_a_block_entry_stays_after_its_flow_line(written, formatted):
    assert format_text(written) == formatted
    assert format_text(formatted) == formatted


@pytest.mark.parametrize("written", [
    "name: x\nlayers:\n  a:  # about a\n    type: Dense\n    units: 3\n\n  b: {type: Dense, units: 4}\n",
    "name: x\noutputs:  # outs\n  - x\n\ncompile: {loss: mse}\n",
    "name: x\ncompile:\n  optimizer:  # opt\n    type: Adam\n    learning_rate: 0.01\n\n  loss: mse\n",
    "name: x\nlayers:\n  a:\n    type: Dense\n    kernel:  # k\n      - 1\n      - 2  # two\n  b: {type: Dense}\n",
], ids=["key-line-comment-then-blank", "section-key-comment-then-blank", "nested-key-comment-then-blank",
        "two-comments-in-the-last-items"])
def test_comments_around_a_block_entry_are_kept(written):
    """Found in review: a comment on the entry's key line was overwritten by the blank line after the entry,
    and of two comments after the entry's last items one was dropped (fmt refused both files)."""
    formatted = format_text(written)
    assert sorted(c for _, c in comments(formatted)) == sorted(c for _, c in comments(written))
    assert format_text(formatted) == formatted


def test_a_comment_inside_a_flow_mapping_is_refused_not_dropped():
    text = "graphspec: 1\nname: m\ninputs: {x: {shape: [8]}}\nnodes:\n  d: {type: Dense,  # why\n    units: 4}\noutputs: [d]\n"
    with pytest.raises(GraphspecError) as caught:
        format_text(text, "m.yaml")
    diagnostic = caught.value.diagnostics[0]
    assert (diagnostic.code, diagnostic.line) == ("fmt-comment-in-flow", 5)


def test_fmt_check_prints_a_diff_and_exits_1(tmp_path):
    spec = tmp_path / "m.yaml"
    spec.write_text(UNFORMATTED)
    result = runner.invoke(app, ["fmt", "--check", str(spec)])
    assert result.exit_code == 1
    assert "+  d2: {type: Dense, units: 2, activation: softmax}" in result.output
    assert "1 of 1 specs would be reformatted" in result.output
    assert spec.read_text() == UNFORMATTED  # --check changes nothing


def test_fmt_rewrites_then_check_passes(tmp_path):
    spec = tmp_path / "m.yaml"
    spec.write_text(UNFORMATTED)
    assert runner.invoke(app, ["fmt", str(tmp_path)]).exit_code == 0
    assert spec.read_text() == FORMATTED
    result = runner.invoke(app, ["fmt", "--check", str(spec)])
    assert result.exit_code == 0, result.output
    assert "1 spec already formatted" in result.output


def test_fmt_of_a_broken_spec_reports_and_leaves_it(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("graphspec: 1\nnodes: {a: [1, 2}\n")
    result = runner.invoke(app, ["fmt", str(spec)])
    assert result.exit_code == 2
    assert "bad.yaml:2:" in result.output
    assert spec.read_text() == "graphspec: 1\nnodes: {a: [1, 2}\n"


def test_fmt_check_in_a_fresh_process(tmp_path):
    spec = tmp_path / "m.yaml"
    spec.write_text(FORMATTED)
    result = subprocess.run([sys.executable, "-m", "graphspec", "fmt", "--check", str(spec)], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "tensorflow" not in result.stderr.lower()


def test_the_fast_path_agrees_with_the_formatter_over_the_gallery():
    """is_formatted (fmt --check's fast path, no ruamel.yaml) says True only for text format_text leaves as is,
    and says it for most formatted gallery specs."""
    sure = 0
    for path in GALLERY:
        text = path.read_text(encoding="utf-8")
        try:
            formatted = format_text(text, str(path))
        except GraphspecError:
            assert not is_formatted(text)
            continue
        assert not is_formatted(text) or formatted == text, path.name
        sure += is_formatted(formatted)
    assert sure >= 15


@pytest.mark.parametrize("text", [
    FORMATTED,
    FORMATTED.replace("learning_rate: 0.001", "learning_rate: 1e-3"),
    FORMATTED.replace("  d1: {type: Dense, units: 4}", "  d1: {units: 4, type: Dense}"),
    FORMATTED.replace("outputs: [d2]", "outputs:\n  - d2"),
    FORMATTED.replace("name: m\n", "") + "name: m\n",
    FORMATTED.replace("\n", "\n\n\n", 1),
    FORMATTED.replace("{type: Dense, units: 4}", "{type: Dense,  units: 4}"),
    FORMATTED.replace("d2", "y"),  # YAML 1.1's booleans are plain strings to ruamel.yaml: formatted
    FORMATTED.replace("d2", "on").replace("units: 2", "units: 2, name: off"),
    FORMATTED.replace("d2", '"y"'),
    FORMATTED.replace("d2", '"true"'),
    FORMATTED.replace("d2", "'n'"),
])
def test_the_fast_path_on_small_changes(text):
    assert is_formatted(text) == (format_text(text) == text)


def test_fmt_check_uses_the_fast_path_and_still_catches_changes(tmp_path):
    (tmp_path / "ok.yaml").write_text(FORMATTED)
    (tmp_path / "not.yaml").write_text(FORMATTED.replace("units: 4}", "units: 4 }"))
    result = runner.invoke(app, ["fmt", "--check", str(tmp_path)])
    assert result.exit_code == 1
    assert "1 of 2 specs would be reformatted" in result.output


@pytest.mark.parametrize("name, activation", [
    ('"a,b"', "relu"), ("a,b", "relu"), ('"a{b"', "relu"), ('"a[b]"', "relu"), ('"a, b"', "relu"),
    ("m", '"x:y"'), ("m", "x:y"), ("m", '"a#b"'), ("m", "a#b"), ("m", "relu"),
])
def test_the_fast_check_never_passes_what_fmt_would_change(name, activation):
    """Review finding: the fast check took 'name: "a,b"' (and "x:y", "a#b" in a node) as formatted, though
    fmt writes them plain, so two spellings both passed fmt --check. Where it is sure, fmt agrees."""
    from graphspec.fmt import format_text, is_formatted

    text = (f"graphspec: 1\nname: {name}\n\ninputs:\n  x: {{shape: [4]}}\n\nnodes:\n"
            f"  d: {{type: Dense, units: 2, activation: {activation}}}\n"
            '  e: {type: EinsumDense, equation: "ab,bc->ac", output_shape: 2}\n\noutputs: [e]\n')
    formatted = format_text(text)
    assert not is_formatted(text) or formatted == text
    assert is_formatted(formatted) in (True, False) and format_text(formatted) == formatted
    if name == "m" and activation == "relu":
        assert is_formatted(text), "a flow indicator quoted inside a node is still the fast check's to judge"
