"""Diagnostics for CI: GitHub Actions workflow annotations and SARIF 2.1.0 (code scanning).

``graphspec check --format github`` prints one ``::error file=F,line=L,col=C,title=CODE::message`` line per
diagnostic (GitHub shows it on the pull request's diff); ``--format sarif`` prints a SARIF log that
``github/codeql-action/upload-sarif`` uploads to code scanning. See docs/ci.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from graphspec.errors import Diagnostic

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/graphspec/graphspec"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _message(diagnostic: Diagnostic) -> str:
    text = diagnostic.message
    if diagnostic.hint:
        text += f"\nhint: {diagnostic.hint}"
    for note in diagnostic.notes:
        text += f"\nnote: {note}"
    return text


def _uri(file: str) -> str:
    """The file as a path relative to the working directory (the repository root in CI), with slashes."""
    path = Path(file)
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            return path.as_posix()
    return Path(os.path.normpath(path)).as_posix()


def github_annotations(diagnostics: list[Diagnostic]) -> list[str]:
    """One workflow command per diagnostic: ``::error file=...,line=...,col=...,title=...::message``."""
    lines = []
    for d in diagnostics:
        properties = []
        if d.file:
            properties.append(f"file={_escape_property(_uri(d.file))}")
        if d.line is not None:
            properties.append(f"line={d.line}")
            if d.col is not None:
                properties.append(f"col={d.col}")
        properties.append(f"title={_escape_property(f'graphspec {d.code}')}")
        command = "error" if d.severity == "error" else "warning"
        lines.append(f"::{command} {','.join(properties)}::{_escape_data(_message(d))}")
    return lines


def sarif(diagnostics: list[Diagnostic]) -> dict:
    """A SARIF 2.1.0 log with one run of graphspec: a rule per diagnostic code, a result per diagnostic."""
    from graphspec import __version__

    rules: dict[str, dict] = {}
    results = []
    for d in diagnostics:
        if d.code not in rules:
            rules[d.code] = {"id": d.code, "name": d.code,
                             "shortDescription": {"text": d.code.replace("-", " ")},
                             "help": {"text": f"graphspec explain {d.code}"}}
        result = {"ruleId": d.code, "ruleIndex": list(rules).index(d.code),
                  "level": "error" if d.severity == "error" else "warning",
                  "message": {"text": _message(d)}}
        if d.file:
            location: dict = {"artifactLocation": {"uri": _uri(d.file)}}
            if d.line is not None:
                region = {"startLine": d.line}
                if d.col is not None:
                    region["startColumn"] = d.col
                location["region"] = region
            result["locations"] = [{"physicalLocation": location}]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "graphspec", "version": __version__, "informationUri": INFORMATION_URI,
                                "rules": list(rules.values())}},
            "results": results,
        }],
    }
