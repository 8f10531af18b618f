"""Front-end benchmark: `graphspec --help` and `graphspec check`, each in a fresh process.

    python benchmarks/bench_check.py                 # 5 rounds over all commands, a Markdown table
    python benchmarks/bench_check.py --repeat 10
    python benchmarks/bench_check.py --profile       # also: -X importtime and cProfile of one check

Measured per command: wall time of the whole process (interpreter start, imports, work,
exit; min and median over the runs), its peak RSS (GNU ``time``'s maximum resident set
size of that process), and its exit code. A time bar is judged on the *minimum* over the
runs (like ``timeit``: the machine is shared, and slower runs measure other processes);
the median, and the process's CPU time (user + sys, which other processes disturb less; GNU
``time`` has 10 ms resolution), are printed beside it. Bars:

* ``graphspec --help``                         <= 0.3 s
* ``graphspec check`` of each gallery spec    <= 0.3 s  (``specs/*.yaml``, when present)
* ``graphspec check`` of a 1,000-node spec    <= 1 s
* ``graphspec check`` of a 10,000-node spec   <= 5 s
* every hostile input of ``tests/test_hostile.py``: exit code 2, < 1 s, peak RSS < 200 MB

The script exits 1 if any bar is missed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from gen_spec import generate  # noqa: E402

CHILD_MEMORY_LIMIT = 1024**3
"""Address-space cap on every child, so a runaway input fails instead of swapping the machine."""


def graphspec_command() -> list[str]:
    script = Path(sys.executable).with_name("graphspec")
    if script.exists():
        return [str(script)]  # the console script users run
    return [sys.executable, "-c", "from graphspec.cli import console_main; console_main()"]


def _limit():
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_LIMIT, CHILD_MEMORY_LIMIT))


@dataclass
class Run:
    seconds: float
    cpu_seconds: float | None
    peak_rss_mb: float
    exit_code: int
    output: str


GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


def run_once(argv: list[str], cwd: Path, timeout: float = 60) -> Run:
    """Wall time, peak RSS and exit code of one fresh process.

    Peak RSS comes from GNU time when it is installed: a child's ``ru_maxrss`` on Linux also
    counts the memory of the process it was forked from, and this script holds the hostile
    inputs (tens of MB), so it must not be the direct parent. Without GNU time, ``os.wait4``
    of the direct child is used (an over-estimate by this script's own RSS).
    """
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as rss_file:
        command = [GNU_TIME, "-f", "%M %x %U %S", "-o", rss_file.name, *argv] if GNU_TIME else argv
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   preexec_fn=_limit, start_new_session=True)
        # A watchdog kills the process group (GNU time and the command it runs) on timeout; the wait
        # itself blocks in waitpid, since Popen.wait(timeout) polls and would round times up to 50 ms.
        watchdog = threading.Timer(timeout, os.killpg, (process.pid, signal.SIGKILL))
        watchdog.start()
        process.wait()
        watchdog.cancel()
        seconds = time.perf_counter() - start
        rss_mb, code, cpu = 0.0, process.returncode, None
        if GNU_TIME:
            fields = (rss_file.read().strip().splitlines() or [""])[-1].split()
            if len(fields) == 4:
                rss_mb, code, cpu = int(fields[0]) / 1024, int(fields[1]), float(fields[2]) + float(fields[3])
        out.seek(0)
        output = out.read(200_000).decode("utf-8", "replace")
    return Run(seconds, cpu, rss_mb, code, output)


@dataclass
class Measure:
    label: str
    argv: list[str]
    cwd: Path
    bar_seconds: float | None
    expect_exit: int = 0
    bar_rss_mb: float | None = None
    runs: list[Run] = field(default_factory=list)
    timeout: float = 60

    @property
    def median(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def best(self) -> float:
        return min(r.seconds for r in self.runs)

    @property
    def cpu(self) -> str:
        values = [r.cpu_seconds for r in self.runs if r.cpu_seconds is not None]
        return f"{min(values):.2f}" if values else "?"

    @property
    def rss(self) -> float:
        return max(r.peak_rss_mb for r in self.runs)

    @property
    def exits(self) -> set[int]:
        return {r.exit_code for r in self.runs}

    def problems(self) -> list[str]:
        found = []
        if self.exits != {self.expect_exit}:
            found.append(f"exit {sorted(self.exits)} != {self.expect_exit}")
        if self.bar_seconds is not None and self.best > self.bar_seconds:
            found.append(f"min {self.best:.3f} s > {self.bar_seconds} s")
        if self.bar_rss_mb is not None and self.rss > self.bar_rss_mb:
            found.append(f"peak RSS {self.rss:.0f} MB > {self.bar_rss_mb:.0f} MB")
        if any("Traceback" in r.output for r in self.runs):
            found.append("traceback")
        return found

    def row(self) -> str:
        bar = []
        if self.bar_seconds is not None:
            bar.append(f"<= {self.bar_seconds:g} s")
        if self.bar_rss_mb is not None:
            bar.append(f"< {self.bar_rss_mb:.0f} MB")
        if self.expect_exit:
            bar.append(f"exit {self.expect_exit}")
        problems = self.problems()
        verdict = "pass" if not problems else "**FAIL**: " + "; ".join(problems)
        return (f"| {self.label} | {self.best:.3f} | {self.median:.3f} | {self.cpu} | {self.rss:.0f} | "
                f"{','.join(map(str, sorted(self.exits)))} | {', '.join(bar)} | {verdict} |")


def hostile_cases(folder: Path, cli: list[str]) -> list[Measure]:
    """The cases of tests/test_hostile.py (one list for tests and benchmark), each written to its folder."""
    sys.path.insert(0, str(REPO / "tests"))
    import conftest  # noqa: F401  (registers the 'testkit' helpers test_hostile imports)
    import test_hostile

    measures = []
    for case in test_hostile.CASES:
        case_dir = folder / case.id
        case_dir.mkdir()
        if case.content is not None:
            (case_dir / case.file).write_bytes(case.content)
        if case.setup is not None:
            case.setup(case_dir)
        known_bug = " (known bug, xfail in tests)" if case.marks else ""
        measures.append(Measure(f"hostile: {case.id}{known_bug}", [*cli, "check", case.file], case_dir,
                                bar_seconds=1.0, expect_exit=2, bar_rss_mb=200, timeout=case.timeout))
    return measures


def profile(cli: list[str], spec: Path) -> None:
    print("\n## Where the time goes: `python -X importtime` (top 15 cumulative, microseconds)\n")
    result = subprocess.run([sys.executable, "-X", "importtime", "-c",
                             "import sys; sys.argv=['graphspec','check','-q',sys.argv[1]]\n"
                             "from graphspec.cli import console_main\nconsole_main()", str(spec)],
                            capture_output=True, text=True)
    rows = []
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line[len("import time:"):].split("|")
            if cumulative.strip().isdigit():
                rows.append((int(cumulative), name.rstrip()))
    print("```")
    for cumulative, name in sorted(rows, reverse=True)[:15]:
        print(f"{cumulative:>9}  {name}")
    print("```")
    print(f"\n## cProfile of `check` on {spec.name} (top 15 by cumulative time)\n")
    result = subprocess.run([sys.executable, "-c",
                             "import cProfile, pstats, sys, io\n"
                             "from graphspec.pipeline import check_file\n"
                             "p = cProfile.Profile(); p.enable(); check_file(sys.argv[1]); p.disable()\n"
                             "s = io.StringIO(); pstats.Stats(p, stream=s).sort_stats('cumulative').print_stats(15)\n"
                             "print(s.getvalue())", str(spec)], capture_output=True, text=True)
    print("```\n" + "\n".join(line for line in result.stdout.splitlines() if line.strip())[:6000] + "\n```")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="graphspec --help / check timings in fresh processes")
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (default 5)")
    parser.add_argument("--profile", action="store_true", help="also print -X importtime and cProfile of a check")
    parser.add_argument("--no-hostile", action="store_true", help="skip the hostile inputs")
    args = parser.parse_args(argv)

    # An installed package ships compiled bytecode (pip compiles it); an editable checkout
    # may not have it yet (e.g. under PYTHONDONTWRITEBYTECODE). Measure what users run.
    import compileall

    import graphspec

    compileall.compile_dir(Path(graphspec.__file__).parent, quiet=1)
    cli = graphspec_command()
    work = Path(tempfile.mkdtemp(prefix="bench-check-"))
    measures: list[Measure] = [
        Measure("python -c pass (interpreter start, for reference)", [sys.executable, "-c", "pass"], work, None),
        Measure("graphspec --help", [*cli, "--help"], work, 0.3),
    ]
    gallery = sorted((REPO / "specs").glob("*.yaml"))
    for spec in gallery:
        measures.append(Measure(f"check specs/{spec.name}", [*cli, "check", "-q", str(spec)], REPO, 0.3))
    for nodes, bar in ((1_000, 1.0), (10_000, 5.0)):
        for kind in ("chain", "branchy"):
            path = work / f"{kind}_{nodes}.yaml"
            path.write_text(generate(nodes, kind))
            measures.append(Measure(f"check generated {kind}, {nodes:,} nodes ({path.stat().st_size // 1024} KiB)",
                                    [*cli, "check", "-q", str(path)], work, bar))
    if not args.no_hostile:
        hostile_dir = work / "hostile"
        hostile_dir.mkdir()
        measures.extend(hostile_cases(hostile_dir, cli))

    print(f"graphspec check benchmark: {len(measures)} commands x {args.repeat} runs, fresh process each; "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    # Round-robin: each round runs every command once, so drift in the machine's load spreads
    # over all commands instead of penalising whichever ran during a busy minute.
    for _ in range(args.repeat):
        for measure in measures:
            measure.runs.append(run_once(measure.argv, measure.cwd, measure.timeout))
    print("| command | min s | median s | CPU s (min) | peak RSS MB | exit | bar | result |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    failed = 0
    for measure in measures:
        print(measure.row())
        failed += bool(measure.problems())
    print(f"\n{len(measures) - failed} of {len(measures)} bars met; load average after: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.profile:
        profile(cli, gallery[0] if gallery else work / "chain_1000.yaml")
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
