"""How long a spec error takes to reach the user from `graphspec train` / `build` / `evaluate`.

    python benchmarks/bench_cli_errors.py                  # old = the commit before check-before-TF
    python benchmarks/bench_cli_errors.py --old REV --rounds 7

Each command runs in a fresh process on a copy of ``specs/digits_cnn.yaml`` with one typo
(``type: Conv2d``), so it must exit 2 with ``error[unknown-layer-type]``. "old" is the
source tree of git revision ``--old`` (exported with ``git archive`` into a temporary
folder), "new" is this working tree; both run with the same interpreter and packages,
and their runs are *interleaved* (old, new, old, new, ...) so that a change in the
machine's load hits both alike. Reported: min and median wall time per command and the
ratio old/new of the medians. ``graphspec check`` (never imported TensorFlow) is the
reference.

Bar: ``graphspec train`` reports the spec error at least 5x faster than before (medians).
The script exits 1 if the bar is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OLD = "fe552cf"
"""The last commit before `train`/`build`/`evaluate`/`predict` checked the spec before importing TensorFlow."""

RUNNER = "import sys\nsys.argv = ['graphspec'] + sys.argv[1:]\nfrom graphspec.cli import console_main\nconsole_main()\n"


def export(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def once(tree: Path, args: list[str]) -> tuple[float, int, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(tree))
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", RUNNER, *args], cwd=tree, env=env, capture_output=True, text=True,
                            timeout=300)
    return time.perf_counter() - started, result.returncode, result.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default=DEFAULT_OLD, help="git revision of the 'old' tree")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "old").mkdir()
        old = export(options.old, scratch / "old")
        spec = scratch / "typo.yaml"
        spec.write_text((REPO / "specs" / "digits_cnn.yaml").read_text().replace("type: Conv2D", "type: Conv2d", 1))
        commands = {
            "check": ["check", str(spec)],
            "train": ["train", str(spec), "--runs", str(scratch / "runs")],
            "build": ["build", str(spec), "-o", str(scratch / "m.keras")],
        }
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(options.rounds):
            for name, args in commands.items():
                for label, tree in (("old", old), ("new", REPO)):
                    seconds, code, stderr = once(tree, args)
                    if code != 2 or "unknown-layer-type" not in stderr:
                        print(f"{label} {name}: exit {code}, expected 2 with error[unknown-layer-type]:\n"
                              f"{stderr[-1500:]}", file=sys.stderr)
                        return 1
                    times.setdefault((name, label), []).append(seconds)
    print(f"spec error (one typo in specs/digits_cnn.yaml), {options.rounds} interleaved rounds; "
          f"old = {options.old}, new = working tree\n")
    print("| command | old min | old median | new min | new median | old/new (medians) |")
    print("|---|---|---|---|---|---|")
    ok = True
    for name in commands:
        o, n = times[(name, "old")], times[(name, "new")]
        ratio = statistics.median(o) / statistics.median(n)
        print(f"| `graphspec {name}` | {min(o):.2f} s | {statistics.median(o):.2f} s | {min(n):.2f} s | "
              f"{statistics.median(n):.2f} s | {ratio:.1f}x |")
        if name == "train" and ratio < 5:
            ok = False
    print("\nbar: `graphspec train` >= 5x faster:", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
