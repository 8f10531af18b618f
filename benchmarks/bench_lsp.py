"""LSP benchmark: from an edit of a 1,000-node spec to the diagnostics the server publishes.

    python benchmarks/bench_lsp.py                  # 1,000 nodes, 15 edits
    python benchmarks/bench_lsp.py --nodes 5000 --edits 9

Two measurements, each over ``--edits`` edits (alternately a harmless change and a mistake, so the
published diagnostics alternate between none and one):

* **in process**: ``Document.update`` (the check the server runs on every change) alone;
* **over stdio**: a scripted client starts ``graphspec lsp``, opens the spec, and times each
  ``didChange`` notification until the ``publishDiagnostics`` of that version arrives (the full
  round trip: JSON-RPC framing, pygls, the check, the conversion of the diagnostics).

Bar: the median round trip <= 200 ms for 1,000 nodes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def chain_spec(n: int) -> str:
    """A spec of ``n`` nodes: Dense/BatchNormalization/Activation triples with a residual Add every third."""
    lines = ["graphspec: 1", f"name: chain{n}", "inputs:", "  x: {shape: [16]}", "nodes:"]
    prev = "x"
    count = 0
    while count < n:
        i = count
        lines.append(f"  d{i}: {{type: Dense, units: 16, input: {prev}}}")
        lines.append(f"  b{i}: {{type: BatchNormalization}}")
        lines.append(f"  a{i}: {{type: Activation, activation: relu}}")
        lines.append(f"  r{i}: {{type: Add, input: [a{i}, {prev}]}}")
        prev = f"r{i}"
        count += 4
    lines.append(f"outputs: [{prev}]")
    return "\n".join(lines) + "\n"


class _Client:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "from graphspec.cli import console_main; console_main()", "lsp"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO)
        self.id = 0

    def send(self, message):
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def receive(self):
        length = None
        while True:
            line = self.proc.stdout.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return json.loads(self.proc.stdout.read(length))

    def request(self, method, params):
        self.id += 1
        self.send({"id": self.id, "method": method, "params": params})
        while True:
            message = self.receive()
            if message.get("id") == self.id and "method" not in message:
                return message.get("result")

    def wait_diagnostics(self, version):
        while True:
            message = self.receive()
            if message.get("method") == "textDocument/publishDiagnostics" and \
                    message["params"].get("version") == version:
                return message["params"]["diagnostics"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--edits", type=int, default=15)
    args = parser.parse_args()
    text = chain_spec(args.nodes)
    edits = [text.replace("activation: relu", f"activation: {('gelu', 'tanh', 'elu')[k % 3]}", 1) if k % 2 == 0
             else text.replace("input: [a0, x]", "input: [a0, xx]", 1) for k in range(args.edits)]

    from graphspec.lsp import Document

    doc = Document((REPO / "bench.yaml").as_uri())
    doc.update(text)
    local = []
    for edited in edits:
        start = time.perf_counter()
        doc.update(edited)
        local.append(time.perf_counter() - start)

    client = _Client()
    client.request("initialize", {"processId": None, "rootUri": REPO.as_uri(), "capabilities": {}})
    client.send({"method": "initialized", "params": {}})
    uri = (REPO / "bench.yaml").as_uri()
    client.send({"method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "yaml", "version": 1, "text": text}}})
    client.wait_diagnostics(1)
    trips = []
    for k, edited in enumerate(edits):
        version = k + 2
        start = time.perf_counter()
        client.send({"method": "textDocument/didChange", "params": {
            "textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": edited}]}})
        found = client.wait_diagnostics(version)
        trips.append(time.perf_counter() - start)
        assert len(found) == (0 if k % 2 == 0 else 1), found
    client.request("shutdown", None)
    client.send({"method": "exit", "params": None})
    client.proc.wait(timeout=10)

    def ms(values):
        return f"min {min(values) * 1000:.0f} ms, median {statistics.median(values) * 1000:.0f} ms, " \
               f"max {max(values) * 1000:.0f} ms"

    print(f"spec: {args.nodes} nodes, {len(text.splitlines())} lines; {args.edits} edits")
    print(f"in process (Document.update): {ms(local)}")
    print(f"over stdio (didChange -> publishDiagnostics): {ms(trips)}")
    verdict = "meets" if statistics.median(trips) <= 0.2 else "MISSES"
    print(f"bar: median round trip <= 200 ms: {verdict}")


if __name__ == "__main__":
    main()
