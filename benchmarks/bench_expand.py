"""`check` of a spec expanding to 10,000 nodes through blocks and repeat, against the same graph written flat.

    python benchmarks/bench_expand.py                 # 10,000 nodes, 7 rounds
    python benchmarks/bench_expand.py --nodes 2000 --rounds 3

Both specs are written to a temporary folder; the blocks spec is a residual block of 10 nodes
repeated 1,000 times (with its width from a model parameter and a 'when:' node), the flat one
is its expansion written out by hand-style generator code. The two must have the same graph
hash (checked before timing). Each round checks the flat spec and the blocks spec once,
interleaved, in one process (so both see the same machine load); the medians and their ratio
are printed. The target is blocks <= 1.5 x flat. Pure Python: nothing imports TensorFlow.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphspec.canonical import graph_hash  # noqa: E402
from graphspec.pipeline import check_file  # noqa: E402

UNIT = 10
"""Nodes per block instance."""

HEADER = """graphspec: 1
name: bench_expand
inputs:
  x: {shape: [16]}
"""


def blocks_spec(repeats: int) -> str:
    return HEADER + f"""params:
  width: {{type: int, default: 16, doc: units of every dense layer}}
  norm: {{type: bool, default: true, doc: layer normalization in the blocks}}
blocks:
  unit:
    params:
      units: {{type: int, doc: units of the dense layers}}
    nodes:
      d1: {{type: Dense, units: "${{units}}"}}
      n1: {{type: LayerNormalization, when: "${{norm}}"}}
      a1: {{type: Activation, activation: relu}}
      d2: {{type: Dense, units: "${{units}}"}}
      n2: {{type: LayerNormalization, when: "${{norm}}"}}
      a2: {{type: Activation, activation: relu}}
      d3: {{type: Dense, units: "${{units}}"}}
      n3: {{type: LayerNormalization, when: "${{norm}}"}}
      add: {{type: Add, input: [x, n3]}}
      out: {{type: Activation, activation: relu}}
    outputs: [out]
nodes:
  u: {{block: unit, units: "${{width}}", repeat: {{count: {repeats}, name: "u${{i}}"}}}}
outputs: {{y: u}}
"""


def flat_spec(repeats: int) -> str:
    lines = [HEADER.rstrip("\n"), "nodes:"]
    previous = "x"
    for i in range(repeats):
        p = f"u{i}_"
        lines += [
            f"  {p}d1: {{type: Dense, units: 16, input: {previous}}}",
            f"  {p}n1: {{type: LayerNormalization}}",
            f"  {p}a1: {{type: Activation, activation: relu}}",
            f"  {p}d2: {{type: Dense, units: 16}}",
            f"  {p}n2: {{type: LayerNormalization}}",
            f"  {p}a2: {{type: Activation, activation: relu}}",
            f"  {p}d3: {{type: Dense, units: 16}}",
            f"  {p}n3: {{type: LayerNormalization}}",
            f"  {p}add: {{type: Add, input: [{previous}, {p}n3]}}",
            f"  {p}out: {{type: Activation, activation: relu}}",
        ]
        previous = f"{p}out"
    lines.append(f"outputs: {{y: {previous}}}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    repeats = args.nodes // UNIT
    with tempfile.TemporaryDirectory() as folder:
        blocks_path = Path(folder) / "blocks.yaml"
        flat_path = Path(folder) / "flat.yaml"
        blocks_path.write_text(blocks_spec(repeats))
        flat_path.write_text(flat_spec(repeats))
        blocks, flat = check_file(blocks_path), check_file(flat_path)  # also warms the imports up
        assert len(blocks.graph.nodes) == len(flat.graph.nodes) == repeats * UNIT
        assert graph_hash(blocks) == graph_hash(flat), "the two specs must build the same graph"
        times: dict[str, list[float]] = {"flat": [], "blocks": []}
        for _ in range(args.rounds):
            for name, path in (("flat", flat_path), ("blocks", blocks_path)):
                start = time.perf_counter()
                check_file(path)
                times[name].append(time.perf_counter() - start)
        sizes = {"flat": flat_path.stat().st_size, "blocks": blocks_path.stat().st_size}
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"check of {repeats * UNIT:,} nodes, {args.rounds} interleaved rounds (median, min-max):")
    for name in ("flat", "blocks"):
        print(f"  {name:<6} {median[name]:6.3f} s  ({min(times[name]):.3f}-{max(times[name]):.3f})  "
              f"spec {sizes[name] / 1024:,.1f} KiB")
    ratio = median["blocks"] / median["flat"]
    print(f"  blocks / flat = {ratio:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
