"""Golden fixtures: spec files and the exact diagnostics graphspec must report for them.

``tests/fixtures/invalid/NAME.yaml`` is a spec with mistakes (the ones the seed articles warn
about, and common typos); ``NAME.expected.json`` beside it lists the diagnostics, in file order::

    [{"code": "unknown-reference", "line": 8, "col": 47,
      "message_contains": "refers to 'conv2'", "hint_contains": "did you mean 'conv_2'?"}]

(``hint_contains``, ``notes_contain`` — text of one of its notes, e.g. the block call — and
``severity`` — default ``error`` — are optional). ``tests/fixtures/valid``
holds specs that must pass; a valid one's ``expected.json``, if any, lists its warnings.

Every fixture runs through the pure-Python stages (``check``). A fixture that passes them is
also built with Keras (``emit``): valid fixtures must build, and an invalid fixture that only
Keras can reject (an ``expect:`` mismatch, a layer without a shape rule) must fail there.

When a deliberate change moves a diagnostic, regenerate the positions with
``GRAPHSPEC_UPDATE_GOLDEN=1 pytest tests/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphspec.errors import Diagnostic, GraphspecError
from graphspec.pipeline import check_file

FIXTURES = Path(__file__).resolve().parent / "fixtures"
VALID = sorted((FIXTURES / "valid").glob("*.yaml"))
INVALID = sorted((FIXTURES / "invalid").glob("*.yaml"))
UPDATE = os.environ.get("GRAPHSPEC_UPDATE_GOLDEN") == "1"


def _expected_file(spec: Path) -> Path:
    return spec.with_suffix(".expected.json")


def _run(spec: Path, *, build: bool = True) -> tuple[str, list[Diagnostic]]:
    """(stage that reported, diagnostics) — 'ok' and the warnings when every stage passes."""
    try:
        checked = check_file(spec)
    except GraphspecError as error:
        return error.stage, error.diagnostics
    if not build:
        return "ok", checked.warnings
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from graphspec.emit import emit

    try:
        emit(checked)
    except GraphspecError as error:
        return error.stage, error.diagnostics
    return "ok", checked.warnings


def _as_row(diagnostic: Diagnostic) -> tuple:
    return (diagnostic.severity, diagnostic.code, diagnostic.line, diagnostic.col)


def _expected_row(entry: dict) -> tuple:
    return (entry.get("severity", "error"), entry["code"], entry["line"], entry["col"])


def _dump(entries: list[dict]) -> str:
    """One diagnostic per line, so that a moved diagnostic is a one-line diff."""
    if not entries:
        return "[]\n"
    return "[\n" + ",\n".join(" " + json.dumps(e) for e in entries) + "\n]\n"


def _update(spec: Path, diagnostics: list[Diagnostic]) -> None:
    target = _expected_file(spec)
    old = json.loads(target.read_text()) if target.exists() else []
    entries = []
    for i, diagnostic in enumerate(diagnostics):
        previous = old[i] if i < len(old) else {}
        message = previous.get("message_contains")
        entry: dict = {"code": diagnostic.code, "line": diagnostic.line, "col": diagnostic.col,
                       "message_contains": message if message and message in diagnostic.message
                       else diagnostic.message}
        hint = previous.get("hint_contains")
        if hint and diagnostic.hint and hint in diagnostic.hint:
            entry["hint_contains"] = hint
        note = previous.get("notes_contain")
        if note and any(note in n for n in diagnostic.notes):
            entry["notes_contain"] = note
        if diagnostic.severity != "error":
            entry["severity"] = diagnostic.severity
        entries.append(entry)
    if entries or target.exists():
        target.write_text(_dump(entries))


def _compare(spec: Path, diagnostics: list[Diagnostic]) -> None:
    expected_file = _expected_file(spec)
    expected = json.loads(expected_file.read_text()) if expected_file.exists() else []
    assert [_as_row(d) for d in diagnostics] == [_expected_row(e) for e in expected], \
        "\n".join(str(d.file) + f":{d.line}:{d.col}: {d.severity}[{d.code}]: {d.message}" for d in diagnostics)
    for diagnostic, entry in zip(diagnostics, expected):
        assert entry["message_contains"] in diagnostic.message
        if "hint_contains" in entry:
            assert diagnostic.hint is not None and entry["hint_contains"] in diagnostic.hint
        if "notes_contain" in entry:  # language 1.1: the block instantiation a diagnostic is in
            assert any(entry["notes_contain"] in note for note in diagnostic.notes), diagnostic.notes
        assert diagnostic.file == str(spec), "every diagnostic names its file"


def test_there_are_enough_fixtures() -> None:
    assert len(INVALID) >= 15 and len(VALID) >= 5
    for spec in INVALID:
        assert _expected_file(spec).is_file(), f"{spec.name} has no .expected.json"
    names = {p.name for p in (FIXTURES / "invalid").iterdir()} | {p.name for p in (FIXTURES / "valid").iterdir()}
    for name in names:
        # (.keras: a saved model a fixture's model: node names, with its config.json alone)
        assert name.endswith((".yaml", ".expected.json", ".keras")), name
        if name.endswith(".expected.json"):
            stem = name[: -len(".expected.json")]
            assert f"{stem}.yaml" in names, f"{name} has no spec beside it"


@pytest.mark.parametrize("spec", INVALID, ids=lambda p: p.stem)
def test_invalid_fixture(spec: Path) -> None:
    stage, diagnostics = _run(spec)
    if UPDATE:
        _update(spec, diagnostics)
    assert stage != "ok", f"{spec.name} passed every stage"
    assert any(d.severity == "error" for d in diagnostics)
    _compare(spec, diagnostics)


@pytest.mark.parametrize("spec", VALID, ids=lambda p: p.stem)
def test_valid_fixture(spec: Path) -> None:
    stage, diagnostics = _run(spec)
    if UPDATE:
        _update(spec, diagnostics)
    assert stage == "ok", "\n".join(f"{d.line}:{d.col}: [{d.code}] {d.message}" for d in diagnostics)
    _compare(spec, diagnostics)


@pytest.mark.parametrize("spec", VALID, ids=lambda p: p.stem)
def test_valid_fixture_inferred_params_match_expect(spec: Path) -> None:
    """Where pure-Python inference knows the parameter count, it is the count 'expect:' states."""
    checked = check_file(spec)
    expect = checked.spec.expect
    if expect is not None and expect.params is not None and checked.inferred.total_params is not None:
        assert checked.inferred.total_params == expect.params


# ---- the command line -----------------------------------------------------------------------

_LOCATED = re.compile(r"^(?P<file>\S+\.yaml):(?P<line>\d+):(?P<col>\d+): error\[(?P<code>[a-z0-9-]+)\]: ", re.M)


def _all_output(result) -> str:
    """What the user sees: stdout and stderr (Click >= 8.2 already mixes them into ``output``)."""
    output = result.output
    try:
        stderr = result.stderr
    except ValueError:  # older Click without separate stderr capture
        stderr = ""
    return output if stderr in output else output + stderr


def _cli():
    from graphspec.cli import app

    return app


def test_cli_check_reports_an_invalid_fixture() -> None:
    spec = FIXTURES / "invalid" / "unknown_reference.yaml"
    result = CliRunner().invoke(_cli(), ["check", str(spec)])
    output = _all_output(result)
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    found = [m.groupdict() for m in _LOCATED.finditer(output)]
    expected = json.loads(_expected_file(spec).read_text())
    assert [(m["file"], int(m["line"]), int(m["col"]), m["code"]) for m in found] == \
        [(str(spec), e["line"], e["col"], e["code"]) for e in expected]
    assert f"{spec}:8:47: error[unknown-reference]:" in output
    assert "did you mean 'conv_2'?" in output


def test_cli_check_reports_every_invalid_fixture_without_traceback() -> None:
    """The whole folder at once: exit code 2, one located line per expected diagnostic."""
    result = CliRunner().invoke(_cli(), ["check", str(FIXTURES / "invalid")])
    output = _all_output(result)
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    located = {(m["file"], int(m["line"]), int(m["col"]), m["code"]) for m in _LOCATED.finditer(output)}
    for spec in INVALID:
        expected = json.loads(_expected_file(spec).read_text())
        stage, _ = _run(spec, build=False)
        if stage == "ok":  # only Keras rejects it: 'check' passes it
            continue
        for entry in expected:
            assert (str(spec), entry["line"], entry["col"], entry["code"]) in located


def test_cli_check_passes_the_valid_fixtures() -> None:
    result = CliRunner().invoke(_cli(), ["check", "--quiet", str(FIXTURES / "valid")])
    assert result.exit_code == 0, result.output
    assert f"{len(VALID)} of {len(VALID)} specs ok" in result.output
