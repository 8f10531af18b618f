"""CLI basics: check's output formats for CI (json, github, sarif), quiet output for many specs, --version,
completion, explain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphspec.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

GOOD = "graphspec: 1\nname: m\ninputs:\n  x: {shape: [8]}\nnodes:\n  d1: {type: Dense, units: 4}\noutputs: [d1]\n"
BAD = "graphspec: 1\nname: m\ninputs:\n  x: {shape: [8]}\nnodes:\n  d1: {type: Dense, units: 4}\n  d2: {type: Dense, units: 2, input: d9}\noutputs: [d2]\n"


def _specs(tmp_path):
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    return tmp_path / "good.yaml", tmp_path / "bad.yaml"


def test_check_github_annotations_carry_file_line_and_column(tmp_path):
    good, bad = _specs(tmp_path)
    result = runner.invoke(app, ["check", "--format", "github", str(good), str(bad)])
    assert result.exit_code == 2
    annotations = [line for line in result.stdout.splitlines() if line.startswith("::")]
    assert len(annotations) == 1
    assert annotations[0].startswith(f"::error file={bad.as_posix()},line=7,col=38,title=graphspec unknown-reference::")
    assert "%0Ahint: known names: x, d1, d2" in annotations[0]
    assert "\n" not in annotations[0]
    assert "1 of 2 specs ok" in result.stdout


def test_check_sarif_has_a_rule_and_a_located_result(tmp_path):
    good, bad = _specs(tmp_path)
    result = runner.invoke(app, ["check", "--format", "sarif", str(good), str(bad)])
    assert result.exit_code == 2
    log = json.loads(result.stdout)
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    assert run["tool"]["driver"]["name"] == "graphspec"
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["unknown-reference"]
    (only,) = run["results"]
    assert only["ruleId"] == "unknown-reference" and only["level"] == "error"
    location = only["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == bad.as_posix()
    assert location["region"] == {"startLine": 7, "startColumn": 38}


def test_check_sarif_of_good_specs_is_an_empty_run(tmp_path):
    good, _ = _specs(tmp_path)
    result = runner.invoke(app, ["check", "--format", "sarif", str(good)])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["runs"][0]["results"] == []


def test_github_annotations_escape_newlines_and_separators():
    from graphspec.annotations import github_annotations
    from graphspec.errors import Diagnostic

    (line,) = github_annotations([Diagnostic(code="c", message="a, b: 100%", file="x,y.yaml", line=1, col=2,
                                             hint="two\nlines", severity="warning")])
    assert line == "::warning file=x%2Cy.yaml,line=1,col=2,title=graphspec c::a, b: 100%25%0Ahint: two%0Alines"


def test_check_of_several_specs_prints_one_line_each(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    result = runner.invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"{tmp_path / 'a.yaml'}: ok  (m, 1 nodes, {result.stdout.split(', ')[2][:19]})",
        f"{tmp_path / 'b.yaml'}: ok  (m, 1 nodes, {result.stdout.split(', ')[2][:19]})",
        "2 of 2 specs ok",
    ]
    tables = runner.invoke(app, ["check", "--tables", str(tmp_path)])
    assert tables.stdout.count("total params: 36") == 2


def test_check_of_one_spec_prints_its_table_unless_told_not_to(tmp_path):
    good, _ = _specs(tmp_path)
    assert "total params: 36" in runner.invoke(app, ["check", str(good)]).stdout
    assert "total params" not in runner.invoke(app, ["check", "--no-tables", str(good)]).stdout


def test_check_github_in_a_fresh_process(tmp_path):
    _, bad = _specs(tmp_path)
    result = subprocess.run([sys.executable, "-m", "graphspec", "check", "--format", "github", "bad.yaml"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout.startswith("::error file=bad.yaml,line=7,col=38,")


def test_pre_commit_hooks_run_graphspec_commands(tmp_path):
    import yaml

    hooks = {hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"graphspec-check", "graphspec-fmt"}
    spec = tmp_path / "m.yaml"
    spec.write_text(GOOD)
    for hook in hooks.values():
        assert hook["language"] == "python"  # installed with pip from this package: the front end only
        words = hook["entry"].split()
        assert words[0] == "graphspec"
        result = runner.invoke(app, words[1:] + [str(spec)])  # pre-commit appends the staged files
        assert result.exit_code == 0, result.output
    (tmp_path / "bad.yaml").write_text(BAD)
    assert runner.invoke(app, hooks["graphspec-check"]["entry"].split()[1:] + [str(tmp_path / "bad.yaml")]).exit_code == 2


def test_docs_ci_workflow_commands_run(tmp_path, monkeypatch):
    """The GitHub Actions example of docs/ci.md: its graphspec steps succeed on formatted specs."""
    import re

    import yaml

    text = (ROOT / "docs" / "ci.md").read_text()
    workflow = yaml.safe_load(re.search(r"```yaml\n(name: specs.*?)```", text, re.S).group(1))
    steps = [s["run"] for s in workflow["jobs"]["specs"]["steps"] if s.get("run", "").startswith("graphspec")]
    assert len(steps) == 3
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "m.yaml").write_text(GOOD)
    monkeypatch.chdir(tmp_path)
    for step in steps:
        command = step.split(">")[0].split()
        result = runner.invoke(app, command[1:])
        assert result.exit_code == 0, (step, result.output)


def test_version_in_process_and_in_a_fresh_process():
    from graphspec import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"graphspec {__version__}\n"
    fresh = subprocess.run([sys.executable, "-m", "graphspec", "--version"], capture_output=True, text=True, timeout=60)
    assert fresh.returncode == 0 and fresh.stdout == f"graphspec {__version__}\n"


@pytest.mark.parametrize("args", [["-h"], ["--help"], ["check", "-h"], ["fmt", "-h"], ["diff", "-h"], ["explain", "-h"]])
def test_short_and_long_help(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0
    assert "Usage: graphspec" in result.stdout


def test_shell_completion_script():
    script = Path(sys.executable).parent / "graphspec"  # the console script pip installed
    fresh = subprocess.run([str(script), "--show-completion", "bash"],
                           capture_output=True, text=True, timeout=60, env={**__import__("os").environ, "SHELL": "/bin/bash"})
    assert fresh.returncode == 0, fresh.stderr
    assert "complete " in fresh.stdout and "_GRAPHSPEC_COMPLETE" in fresh.stdout.upper()


def _codes_in_sources() -> set[str]:
    """Every diagnostic code written as a literal in graphspec's sources (and in the golden fixtures)."""
    import re

    patterns = [r'code\s*=\s*"([a-z][a-z0-9-]+)"', r'\.(?:error|warning)\(\s*"([a-z][a-z0-9-]+)"',
                r'"code":\s*"([a-z][a-z0-9-]+)"', r'fail\(\s*"([a-z][a-z0-9-]+)"',
                r'code:\s*str\s*=\s*"([a-z][a-z0-9-]+)"']
    codes = set()
    for path in (ROOT / "graphspec").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for pattern in patterns:
            codes.update(re.findall(pattern, text))
    for path in (ROOT / "tests" / "fixtures" / "invalid").glob("*.expected.json"):
        codes.update(d["code"] for d in json.loads(path.read_text()))
    codes.discard("unknown-code")  # explain's own answer to a code it does not know
    return codes


def test_every_diagnostic_code_is_explained():
    from graphspec.explain import EXPLANATIONS

    codes = _codes_in_sources()
    assert len(codes) > 100
    assert sorted(codes - set(EXPLANATIONS)) == []
    for explanation in EXPLANATIONS.values():
        assert explanation.meaning and explanation.example and explanation.fix


def test_explain_examples_that_are_specs_report_their_code():
    import graphspec
    from graphspec.errors import GraphspecError
    from graphspec.explain import EXPLANATIONS

    checked = 0
    for code, explanation in EXPLANATIONS.items():
        if not explanation.example.startswith("graphspec: 1"):
            continue
        try:
            got = [d.code for d in graphspec.loads(explanation.example).warnings]
        except GraphspecError as error:
            got = [d.code for d in error.diagnostics]
        assert code in got, (code, got)
        checked += 1
    assert checked >= 25


def test_explain_a_code():
    result = runner.invoke(app, ["explain", "unknown-reference"])
    assert result.exit_code == 0
    assert result.stdout.startswith("unknown-reference\n\n  An input: names no input or node.")
    assert "  example:\n    graphspec: 1" in result.stdout and "  fix: " in result.stdout
    # as printed in a diagnostic
    assert runner.invoke(app, ["explain", "error[unknown-reference]"]).stdout == result.stdout


def test_explain_an_unknown_code_suggests_one():
    result = runner.invoke(app, ["explain", "unknown-refrence"])
    assert result.exit_code == 2
    assert "did you mean 'unknown-reference'?" in result.output


def test_explain_without_a_code_lists_them_all():
    from graphspec.explain import EXPLANATIONS

    result = runner.invoke(app, ["explain"])
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == len(EXPLANATIONS)


def test_explain_in_a_fresh_process():
    fresh = subprocess.run([sys.executable, "-m", "graphspec", "explain", "cycle"], capture_output=True, text=True,
                           timeout=60)
    assert fresh.returncode == 0 and fresh.stdout.startswith("cycle\n")


# --- a fresh process: only the command run is built; the exit skips the interpreter's teardown ---

FRESH = [sys.executable, "-c", "from graphspec.__main__ import main; main()"]  # the executable's entry point


def test_a_fresh_check_keeps_every_line_and_the_exit_code_when_it_skips_teardown(tmp_path):
    """The fast exit must flush first: a redirected, long output arrives whole, with the right code."""
    good, bad = _specs(tmp_path)
    many = tmp_path / "many"
    many.mkdir()
    for i in range(300):
        (many / f"s{i:03d}.yaml").write_text(GOOD)
    out = tmp_path / "out.txt"
    with open(out, "w") as handle:
        done = subprocess.run(FRESH + ["check", "--tables", str(many)], stdout=handle, stderr=subprocess.PIPE)
    assert done.returncode == 0, done.stderr
    lines = out.read_text().splitlines()
    assert sum(line.endswith("ok  (m, 1 nodes, sha256:" + line.rsplit("sha256:", 1)[-1]) for line in lines) == 300
    assert lines[-1] == "300 of 300 specs ok"
    failing = subprocess.run(FRESH + ["check", str(good), str(bad)], capture_output=True, text=True)
    assert failing.returncode == 2
    assert "error[unknown-reference]" in failing.stderr and "1 of 2 specs ok" in failing.stdout


@pytest.mark.parametrize("closed", [">&-", "2>&-"], ids=["stdout-closed", "stderr-closed"])
def test_a_fresh_command_with_a_closed_standard_stream_keeps_its_exit_code(tmp_path, closed):
    """Python starts with sys.stdout (or sys.stderr) None when that descriptor is closed; the fast exit's flush
    raised AttributeError then, turning a passing check into exit code 1 (found in review)."""
    import shlex

    good, bad = _specs(tmp_path)
    command = " ".join(shlex.quote(part) for part in FRESH)
    for spec, code in ((good, 0), (bad, 2)):
        done = subprocess.run(["bash", "-c", f"{command} check -q {shlex.quote(str(spec))} {closed}"],
                              capture_output=True, text=True)
        assert done.returncode == code, done.stdout + done.stderr
        assert "Traceback" not in done.stdout + done.stderr


def test_exit_handlers_still_run_before_a_fast_exit(tmp_path):
    """Anything registered with atexit (a plugin's, a library's) runs before the process ends."""
    good, _ = _specs(tmp_path)
    marker = tmp_path / "ran"
    code = ("import atexit, pathlib, sys\n"
            f"atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text('yes'))\n"
            "from graphspec.__main__ import main\n"
            "main()\n")
    done = subprocess.run([sys.executable, "-c", code, "check", "-q", str(good)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "yes"


def test_a_fast_exit_is_not_taken_while_another_thread_runs(tmp_path):
    """A thread still running (non-daemon) is waited for, as Python's normal exit does."""
    good, _ = _specs(tmp_path)
    marker = tmp_path / "thread"
    code = ("import pathlib, threading, time\n"
            f"def late(): time.sleep(0.5); pathlib.Path({str(marker)!r}).write_text('done')\n"
            "threading.Thread(target=late).start()\n"
            "from graphspec.__main__ import main\n"
            "main()\n")
    done = subprocess.run([sys.executable, "-c", code, "check", "-q", str(good)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "done"


@pytest.mark.parametrize("argv, listed", [
    (["--help"], True),       # the command table: every command
    ([], True),               # no command: help, every command
    (["chek"], True),         # a misspelt command: Typer's "did you mean" needs the others
    (["check", "--help"], False),
])
def test_only_the_command_run_is_built_but_lists_and_guesses_see_them_all(argv, listed):
    done = subprocess.run(FRESH + argv, capture_output=True, text=True, env={**__import__("os").environ,
                                                                              "COLUMNS": "200"})
    text = done.stdout + done.stderr
    if argv == ["chek"]:
        assert "Did you mean 'check'" in text
    elif listed:
        for command in ("check", "build", "train", "fmt", "diff", "import", "explain", "runs"):
            assert f" {command} " in text, (command, text)
    else:
        assert "Validate specs, resolve references and infer shapes" in text


def test_shell_completion_of_a_command_sees_every_command():
    """Completion starts with argv naming a command too; Typer's _..._COMPLETE variable keeps them all."""
    env = {**__import__("os").environ, "_GRAPHSPEC_COMPLETE": "complete_bash", "COMP_WORDS": "graphspec ex",
           "COMP_CWORD": "1"}
    done = subprocess.run([sys.executable, "-c", "import sys; sys.argv[0] = 'graphspec'\n"
                           "from graphspec.__main__ import main; main()", "explain"], capture_output=True, text=True, env=env)
    assert "explain" in done.stdout and "export" in done.stdout, (done.stdout, done.stderr)


def test_main_called_from_a_program_returns_control_and_runs_again(tmp_path):
    """``graphspec.cli.main`` is for programs that embed graphspec: it ends in SystemExit (never a hard
    exit, even for a front-end command) and a second call runs another command with every command
    still registered. Regression: the fast exit once ended an embedding program inside ``main()``."""
    good, bad = _specs(tmp_path)
    code = ("import sys\nfrom graphspec.cli import main\ncodes = []\n"
            "for argv in (['check', '-q', sys.argv[1]], ['fmt', '--check', sys.argv[1]], ['check', '-q', sys.argv[2]]):\n"
            "    sys.argv = ['graphspec', *argv]\n"
            "    try:\n        main()\n    except SystemExit as done:\n        codes.append(done.code)\n"
            "print('AFTER', codes)\n")
    done = subprocess.run([sys.executable, "-c", code, str(good), str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] in ("AFTER [0, 0, 2]", "AFTER [0, 1, 2]"), done.stdout


@pytest.mark.parametrize("entry, executable", [
    ("from graphspec.__main__ import main; main()", True),
    ("import sys; from graphspec.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass", False),
], ids=["executable", "embedded"])
def test_only_the_executable_changes_process_settings(tmp_path, entry, executable):
    """The executable collects garbage rarely and builds validators without Pydantic plugins (see
    graphspec/__main__.py); a program that calls graphspec.cli.main keeps Python's and Pydantic's settings.
    A user's own PYDANTIC_DISABLE_PLUGINS is kept either way."""
    good, _ = _specs(tmp_path)
    report = ("import atexit, gc, os\n"
              "atexit.register(lambda: print('SETTINGS', gc.get_threshold()[0], os.environ.get('PYDANTIC_DISABLE_PLUGINS')))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    done = subprocess.run([sys.executable, "-c", report + entry, "check", "-q", str(good)], capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    threshold, plugins = done.stdout.split("SETTINGS ")[1].split()
    assert (int(threshold) > 10_000, plugins == "__all__") == (executable, executable)
    mine = subprocess.run([sys.executable, "-c", report + entry, "check", "-q", str(good)], capture_output=True,
                          text=True, timeout=60, env=dict(env, PYDANTIC_DISABLE_PLUGINS="logfire"))
    assert mine.stdout.split("SETTINGS ")[1].split()[1] == "logfire"


def test_the_language_server_collects_garbage_as_python_does():
    """The executable's rare collections are for short commands; the language server lives as long as the
    editor, so it gets Python's settings back (found in review). It ends at the end of its input."""
    probe = ("import atexit, gc\n"
             "atexit.register(lambda: print('SETTINGS', gc.get_threshold()[0]))\n"
             "import sys; sys.argv = ['graphspec', 'lsp']\n"
             "from graphspec.__main__ import main; main()\n")
    python_default = subprocess.run([sys.executable, "-c", "import gc; print(gc.get_threshold()[0])"],
                                    capture_output=True, text=True).stdout.strip()
    done = subprocess.run([sys.executable, "-c", probe], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("SETTINGS ")[1].split() == [python_default]
