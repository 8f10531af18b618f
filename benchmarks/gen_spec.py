"""Generate large graphspec specs for benchmarks.

    python benchmarks/gen_spec.py --nodes 10000 --kind chain   -o /tmp/chain10k.yaml
    python benchmarks/gen_spec.py --nodes 1000  --kind branchy -o /tmp/branchy1k.yaml

``chain``: one Dense node after another (default inputs, the shortest possible lines).
``branchy``: repeated blocks of two Dense branches joined by Add, a third branch, and a
Concatenate, so that references, merges and shape rules are all exercised. Both have
exactly ``--nodes`` nodes and check cleanly (no errors, no warnings).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

WIDTH = 16


def header(name: str, description: str) -> list[str]:
    return [
        "graphspec: 1\n",
        f"name: {name}\n",
        f"description: {description}\n",
        "inputs:\n",
        f"  x: {{shape: [{WIDTH}]}}\n",
        "nodes:\n",
    ]


def chain(nodes: int) -> str:
    lines = header(f"chain_{nodes}", f"{nodes} Dense layers in a chain")
    lines.extend(f"  d{i}: {{type: Dense, units: {WIDTH}}}\n" for i in range(nodes))
    lines.append(f"outputs: [d{nodes - 1}]\n")
    return "".join(lines)


def branchy(nodes: int) -> str:
    """Blocks of 6 nodes: a, b (Dense on the block input) -> add; c (Dense on add), e (Dense on the input)
    -> cat (Concatenate, back to WIDTH); the remainder is a chain of Dense nodes."""
    half = WIDTH // 2
    lines = header(f"branchy_{nodes}", f"{nodes} nodes, Dense branches joined by Add and Concatenate")
    previous = "x"
    blocks, rest = divmod(nodes, 6)
    for b in range(blocks):
        lines += [
            f"  b{b}_a: {{type: Dense, units: {WIDTH}, activation: relu, input: {previous}}}\n",
            f"  b{b}_b: {{type: Dense, units: {WIDTH}, input: {previous}}}\n",
            f"  b{b}_add: {{type: Add, input: [b{b}_a, b{b}_b]}}\n",
            f"  b{b}_c: {{type: Dense, units: {half}}}\n",
            f"  b{b}_e: {{type: Dense, units: {half}, input: {previous}}}\n",
            f"  b{b}_cat: {{type: Concatenate, input: [b{b}_c, b{b}_e]}}\n",
        ]
        previous = f"b{b}_cat"
    for i in range(rest):
        lines.append(f"  tail{i}: {{type: Dense, units: {WIDTH}, input: {previous}}}\n")
        previous = f"tail{i}"
    lines.append(f"outputs: [{previous}]\n")
    return "".join(lines)


KINDS = {"chain": chain, "branchy": branchy}


def generate(nodes: int, kind: str = "branchy") -> str:
    if nodes < 1:
        raise ValueError("a spec needs at least one node")
    return KINDS[kind](nodes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", "-n", type=int, required=True, help="number of nodes")
    parser.add_argument("--kind", choices=sorted(KINDS), default="branchy")
    parser.add_argument("--output", "-o", type=Path, help="write here (default: stdout)")
    args = parser.parse_args(argv)
    text = generate(args.nodes, args.kind)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
