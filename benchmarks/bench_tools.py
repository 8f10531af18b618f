"""Benchmarks of issue 9's bars for the front end (fresh processes, this machine):

    python benchmarks/bench_tools.py               # 5 interleaved rounds, then the 1,000-file runs
    python benchmarks/bench_tools.py --rounds 9

* ``graphspec check SPEC`` of a gallery spec in a fresh process against ``python -c "import tensorflow"``,
  measured interleaved (check, import, check, check, check, import, ...: one check before each import, the
  rest of the round's after it) so both see the same machine; bar: the import takes >= 25x as long as the
  check (ratio of the medians). Each round samples the short, noisier processes ``--checks-per-round``
  times (default 3, at least 1) per import. Also interleaved: the floor, a
  process that only imports the libraries the front end stands on (Pydantic, Typer, PyYAML), to show
  how much of the check is graphspec's own;
* ``graphspec check DIR`` of 1,000 spec files in one invocation: bar <= 3 s;
* ``graphspec fmt --check DIR`` of the same 1,000 files: bar <= 3 s.

graphspec's modules are compiled to bytecode first (``compileall``), as pip installs them.

The 1,000 files are the gallery's small specs (``seed*.yaml``, ``digits_*.yaml``) copied round-robin, each
(those without a saved model) already formatted by ``graphspec fmt`` (so ``fmt --check`` exits 0: the cost measured is reading, formatting
and comparing). Prints a Markdown table; exits 1 if a bar is missed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "graphspec"]
SPEC = REPO / "specs" / "seed000_multimodal.yaml"


# What no check can do without: the interpreter, and importing the libraries the front end is built on
# (Pydantic validates, Typer is the command line, PyYAML reads). Typer imports its Pydantic adapters
# (typer._adapters) to parse any command line, so they are part of the floor too. (Pydantic's plugin
# loader would import importlib.metadata when the first validator is built; the executable defers that
# import to plugin discovery, which it switches off: see graphspec/__main__.py.) It ends as check does
# (no interpreter teardown: see graphspec.cli._exit_without_teardown).
FLOOR = "import pydantic.main, typer, typer._adapters, yaml, os; os._exit(0)"


def timed(argv: list[str], cwd: Path = REPO) -> tuple[float, int]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, done.returncode


def thousand_specs(folder: Path) -> None:
    sys.path.insert(0, str(REPO))
    from graphspec.fmt import format_text

    sources = sorted(p for p in list((REPO / "specs").glob("seed*.yaml")) + list((REPO / "specs").glob("digits_*.yaml"))
                     if "model:" not in p.read_text(encoding="utf-8"))  # no saved-model files to copy
    texts = [(p.stem, format_text(p.read_text(encoding="utf-8"), str(p))) for p in sources]
    for i in range(1000):
        stem, text = texts[i % len(texts)]
        (folder / f"{i:04d}_{stem}.yaml").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--checks-per-round", type=int, default=3,
                        help="fresh checks (and floors) per import of TensorFlow: the short processes are the "
                             "noisier ones, so each round samples them more often (one before the import, the "
                             "rest after)")
    args = parser.parse_args(argv)
    if args.checks_per_round < 1:
        parser.error("--checks-per-round must be at least 1")
    # An installed package ships compiled bytecode (pip compiles it); an editable checkout may not have it
    # yet (e.g. under PYTHONDONTWRITEBYTECODE), and compiling graphspec's modules costs every fresh process
    # ~0.1 s. Measure what users run.
    import compileall

    compileall.compile_dir(REPO / "graphspec", quiet=1)
    check_times, tf_times, floor_times, round_ratios = [], [], [], []

    def check_and_floor() -> float:
        seconds, code = timed(CLI + ["check", "-q", str(SPEC)])
        assert code == 0, "check failed"
        check_times.append(seconds)
        floor, code = timed([sys.executable, "-c", FLOOR])
        assert code == 0, "the floor's imports failed"
        floor_times.append(floor)
        return seconds

    for _ in range(args.rounds):
        this_round = [check_and_floor()]
        seconds, code = timed([sys.executable, "-c", "import tensorflow"])
        assert code == 0, "import tensorflow failed"
        tf_times.append(seconds)
        this_round += [check_and_floor() for _ in range(args.checks_per_round - 1)]
        round_ratios.append(seconds / statistics.median(this_round))
    ratio = statistics.median(tf_times) / statistics.median(check_times)
    floor_ratio = statistics.median(tf_times) / statistics.median(floor_times)
    rows = [("check of a gallery spec (fresh process), median", f"{statistics.median(check_times):.3f} s", ""),
            ("python -c 'import tensorflow', median", f"{statistics.median(tf_times):.3f} s", ""),
            ("ratio (import / check)", f"{ratio:.1f}x", ">= 25x"),
            ("floor: a process that only imports Pydantic, Typer and PyYAML, median",
             f"{statistics.median(floor_times):.3f} s", ""),
            ("ratio (import / floor): the best any check on this stack could do", f"{floor_ratio:.1f}x", ""),
            ("each round's ratio (its import / its checks' median): median, lowest, highest",
             f"{statistics.median(round_ratios):.1f}x, {min(round_ratios):.1f}x, {max(round_ratios):.1f}x", ""),
            ("ratio of the fastest runs (import's min / check's min): what noise cannot add to",
             f"{min(tf_times) / min(check_times):.1f}x", "")]
    ok = ratio >= 25
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        thousand_specs(folder)
        seconds, code = timed(CLI + ["check", str(folder)], cwd=folder)
        assert code == 0, "check of the 1,000 specs failed"
        rows.append(("check of 1,000 spec files, one invocation", f"{seconds:.2f} s", "<= 3 s"))
        ok &= seconds <= 3
        seconds, code = timed(CLI + ["fmt", "--check", str(folder)], cwd=folder)
        assert code == 0, "fmt --check of the 1,000 specs failed"
        rows.append(("fmt --check of the same files", f"{seconds:.2f} s", "<= 3 s"))
        ok &= seconds <= 3
    print("| measure | value | bar |\n|---|---:|---|")
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} |")
    print(f"\n{len(tf_times)} interleaved rounds, {args.checks_per_round} checks and floors each; check times {', '.join(f'{t:.3f}' for t in check_times)}; "
          f"import times {', '.join(f'{t:.2f}' for t in tf_times)}; "
          f"floor times {', '.join(f'{t:.3f}' for t in floor_times)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
