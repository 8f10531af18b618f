"""Long-running fuzz of the front end, and the largest hostile inputs, timed.

    python benchmarks/bench_fuzz.py --cases 300000            # the fuzz cases of tests/test_fuzz.py, 2 workers
    python benchmarks/bench_fuzz.py --cases 300000 --start 20000   # past the cases CI runs
    python benchmarks/bench_fuzz.py --large                   # only the 8 MiB inputs

The cases are those of ``tests/test_fuzz.py`` (case ``i`` depends only on the seed and ``i``;
``python tests/test_fuzz.py --case I`` shows and reruns one). Each runs through
``graphspec.pipeline.check_text`` in a worker process; a case fails if anything but a
``GraphspecError`` escapes, if a diagnostic has no line and column, or if it takes more than
1 s. ``--large`` times ``check_text`` on hostile inputs just under the 8 MiB size cap (bar:
2 s each). Prints a Markdown summary; exits 1 if a bar is missed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CHUNK = 1_000
LARGE_SECONDS = 2.0
MIB = 1024 * 1024

_SEEDS = None


def _chunk(args: tuple[int, int, int]) -> dict:
    """Run cases ``start .. start + count`` in this worker; returns the chunk's tallies."""
    global _SEEDS
    import test_fuzz

    start, count, seed = args
    if _SEEDS is None:
        _SEEDS = test_fuzz.corpus()
        test_fuzz.run_case(test_fuzz.make_case(0, _SEEDS, seed))  # warm imports and caches
    tally = {"cases": 0, "seconds": 0.0, "longest": (0.0, -1), "stages": {}, "failures": [], "slow": []}
    for index in range(start, start + count):
        case = test_fuzz.make_case(index, _SEEDS, seed)
        outcome = test_fuzz.run_case(case)
        tally["cases"] += 1
        tally["seconds"] += outcome.seconds
        tally["stages"][outcome.stage] = tally["stages"].get(outcome.stage, 0) + 1
        if outcome.seconds > tally["longest"][0]:
            tally["longest"] = (outcome.seconds, index)
        if outcome.problem:
            tally["failures"].append(test_fuzz.describe(case, outcome))
        if outcome.seconds > test_fuzz.CASE_SECONDS:
            tally["slow"].append(test_fuzz.describe(case, outcome))
    return tally


def fuzz(cases: int, start: int, workers: int, seed: int) -> bool:
    chunks = [(i, min(CHUNK, start + cases - i), seed) for i in range(start, start + cases, CHUNK)]
    total = {"cases": 0, "seconds": 0.0, "longest": (0.0, -1), "stages": {}, "failures": [], "slow": []}
    began = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for done, tally in enumerate(pool.imap_unordered(_chunk, chunks), 1):
            total["cases"] += tally["cases"]
            total["seconds"] += tally["seconds"]
            total["longest"] = max(total["longest"], tally["longest"])
            for stage, n in tally["stages"].items():
                total["stages"][stage] = total["stages"].get(stage, 0) + n
            total["failures"] += tally["failures"]
            total["slow"] += tally["slow"]
            if done % 20 == 0 or done == len(chunks):
                print(f"  {total['cases']:,} cases, {time.perf_counter() - began:.0f} s, "
                      f"{len(total['failures'])} failing, {len(total['slow'])} slow", file=sys.stderr, flush=True)
    wall = time.perf_counter() - began
    n = total["cases"]
    longest, longest_index = total["longest"]
    print(f"| fuzz cases | {n:,} (seed {seed}, cases {start:,}..{start + n - 1:,}) |")
    print(f"| workers | {workers} |")
    print(f"| wall time | {wall:.0f} s ({n / wall:,.0f} cases/s) |")
    print(f"| mean time per case | {total['seconds'] / max(n, 1) * 1000:.2f} ms |")
    print(f"| longest case | {longest * 1000:.0f} ms (case {longest_index}) |")
    print("| outcomes | " + ", ".join(f"{k} {v:,}" for k, v in sorted(total["stages"].items())) + " |")
    print(f"| failing cases (escaped exception or unlocated diagnostic) | {len(total['failures'])} |")
    print(f"| cases over 1 s | {len(total['slow'])} |")
    for line in (total["failures"] + total["slow"])[:50]:
        print("  " + line)
    return not total["failures"] and not total["slow"]


def large_inputs() -> list[tuple[str, str]]:
    """Hostile texts just under the 8 MiB cap (each built to stay below it)."""
    budget = 8 * MIB - 4096
    head = "graphspec: 1\nname: m\ninputs:\n  x: {shape: [8]}\nnodes:\n"
    # As many nodes as the 200,000-value cap allows (8 values a node), with long names.
    long = "n" * 80
    refs = "".join(f"  {long}{i}: {{type: Dense, units: 4, input: {long}{i}x}}\n" for i in range(24_000))
    misspelt = "".join(f"  {long}{j}: {{type: Dence{j % 7}, unitz: 4}}\n" for j in range(30_000))
    return [
        ("flow [] pairs", "v: [" + "[]," * (budget // 3) + "]\n"),
        ("flow [[[ (8 M)", "v: " + "[" * budget),
        ("flow {a: (2 M)", "v: " + "{a: " * (budget // 4)),
        ("block - - - (4 M)", "- " * (budget // 2) + "x\n"),
        ("lines of ]", "]\n" * (budget // 2)),
        ("lines of a (one plain scalar)", "a\n" * (budget // 2)),
        ("quotes in a plain scalar", "a: [x" + "'" * (budget - 10) + "]\n"),
        ("unterminated quote", "a: '" + "[" * (budget - 10)),
        ("comments full of [", ("# " + "[" * 1000 + "\n") * (budget // 1003)),
        ("block scalar full of [", "a: |\n" + ("  " + "[" * 100 + "\n") * (budget // 103)),
        ("flow [\"]\", nesting", 'v: ' + '["]", ' * (budget // 6)),
        ("syntax error after an 8 MiB name", "name: " + "a" * (budget - 20) + ": b: c\n"),
        ("indexed references in a syntax error", "v: [x, " + "a_[1]" * (budget // 5 - 10) + ": y: z]\n"),
        ("flat list of 1", "name: [" + "1," * (budget // 2 - 10) + "1]\n"),
        ("duplicate keys", "a: 1\n" * (budget // 5)),
        ("bidi controls in a value", "name: " + "\u202e" * (budget // 3 - 10) + "\n"),
        ("24,000 broken references (did you mean)", head + refs + f"outputs: [{long}0]\n"),
        ("30,000 misspelt types and arguments", head + misspelt + f"outputs: [{long}0]\n"),
    ]


def large(names: list[str] | None = None) -> bool:
    from graphspec.errors import GraphspecError
    from graphspec.pipeline import check_text

    ok = True
    print("| input | size MiB | seconds | outcome | bar |")
    print("|---|---:|---:|---|---|")
    for name, text in large_inputs():
        if names and name not in names:
            continue
        size = len(text.encode("utf-8")) / MIB
        started = time.perf_counter()
        try:
            check_text(text, file="spec.yaml")
            outcome = "ok"
        except GraphspecError as error:
            first = error.diagnostics[-1]
            outcome = f"{error.stage}: {first.code} ({len(error.diagnostics):,} diagnostics)"
        except Exception as error:  # noqa: BLE001
            outcome = f"CRASH {type(error).__name__}: {error}"[:100]
            ok = False
        seconds = time.perf_counter() - started
        passed = seconds <= LARGE_SECONDS and not outcome.startswith("CRASH")
        ok = ok and passed
        print(f"| {name} | {size:.2f} | {seconds:.2f} | {outcome} | <= {LARGE_SECONDS:g} s: "
              f"{'pass' if passed else 'FAIL'} |", flush=True)
    return ok


def main() -> None:
    import test_fuzz

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300_000)
    parser.add_argument("--start", type=int, default=0, help="first case index")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=test_fuzz.SEED)
    parser.add_argument("--large", action="store_true", help="only the 8 MiB inputs")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"load average {os.getloadavg()[0]:.2f}\n")
    ok = large()
    if not args.large:
        print("\n| fuzz | |\n|---|---|")
        ok = fuzz(args.cases, args.start, max(1, args.workers), args.seed) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
