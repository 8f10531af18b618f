"""Language 1.1 must not change what 1.0 specs mean: every 1.0 spec keeps its hash.

``tests/fixtures/spec_hashes_1_0.json`` was written by the code *before* blocks, repeat and
parameters existed (one entry per gallery spec and per fixture that passes ``check``).
``tests/fixtures/flat/resnet50_flat.yaml`` is the old generated, flat ``specs/resnet50.yaml``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graphspec.canonical import graph_hash, spec_hash
from graphspec.pipeline import check_file

ROOT = Path(__file__).resolve().parents[1]
RECORDED = json.loads((ROOT / "tests" / "fixtures" / "spec_hashes_1_0.json").read_text())


@pytest.mark.parametrize("relative", sorted(RECORDED))
def test_spec_hash_of_1_0_spec_unchanged(relative: str) -> None:
    checked = check_file(ROOT / relative)
    assert spec_hash(checked.graph) == RECORDED[relative]


def test_hand_written_resnet50_has_the_graph_hash_of_the_flat_one() -> None:
    """A refactor into blocks that builds the identical model shows the same graph hash."""
    flat = check_file(ROOT / "tests" / "fixtures" / "flat" / "resnet50_flat.yaml")
    blocks = check_file(ROOT / "specs" / "resnet50.yaml")
    assert graph_hash(blocks) == graph_hash(flat)
    assert spec_hash(blocks.graph) != spec_hash(flat.graph)  # the texts differ: blocks are kept
