"""graphspec lsp: a scripted LSP client talks to the server over stdio (JSON-RPC with Content-Length frames)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graphspec.lsp import Document, completions, hover

from testkit import REPO

SPEC = """\
graphspec: 1
name: lsp_demo
inputs:
  image: {shape: [28, 28, 3]}
  text: {shape: [100]}
nodes:
  conv1: {type: Conv2D, filters: 32, kernel_size: 3, activation: relu, padding: same, input: image}
  flat: {type: Flatten}
  dense_text: {type: Dense, units: 64, activation: relu, input: text}
  merged: {type: Concatenate, input: [flat, dense_text]}
  score: {type: Dense, units: 1, activation: sigmoid}
outputs: [score]
"""


class Client:
    """A minimal LSP client: requests with ids, notifications, and the server's messages collected."""

    def __init__(self, cwd: Path, *options: str):
        self.proc = subprocess.Popen([sys.executable, "-c", "from graphspec.cli import main; main()", "lsp", *options],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
        self.next_id = 0
        self.notifications: list[dict] = []

    def send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def receive(self) -> dict:
        length = None
        while True:
            line = self.proc.stdout.readline()
            assert line, f"server closed: {self.proc.stderr.read().decode()[-2000:]}"
            if line in (b"\r\n", b"\n"):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return json.loads(self.proc.stdout.read(length))

    def request(self, method: str, params: dict) -> dict:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        while True:
            message = self.receive()
            if message.get("id") == self.next_id and "method" not in message:
                assert "error" not in message, message
                return message["result"]
            self.notifications.append(message)

    def notify(self, method: str, params: dict) -> None:
        self.send({"method": method, "params": params})

    def diagnostics(self, uri: str, version: int) -> list[dict]:
        """The diagnostics published for this version of the document."""
        for message in self.notifications:
            if message.get("method") == "textDocument/publishDiagnostics" and message["params"]["uri"] == uri \
                    and message["params"].get("version") == version:
                return message["params"]["diagnostics"]
        while True:
            message = self.receive()
            self.notifications.append(message)
            if message.get("method") == "textDocument/publishDiagnostics" and message["params"]["uri"] == uri \
                    and message["params"].get("version") == version:
                return message["params"]["diagnostics"]

    def close(self) -> None:
        self.request("shutdown", None)
        self.notify("exit", None)
        self.proc.wait(timeout=10)


@pytest.fixture()
def client(tmp_path):
    c = Client(tmp_path)
    result = c.request("initialize", {"processId": None, "rootUri": tmp_path.as_uri(), "capabilities": {}})
    caps = result["capabilities"]
    assert caps["hoverProvider"] and "completionProvider" in caps
    c.notify("initialized", {})
    yield c
    c.close()


def _open(client, path: Path, text: str) -> str:
    uri = path.as_uri()
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1,
                                                            "text": text}})
    return uri


def _edit(client, uri: str, version: int, text: str) -> None:
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                             "contentChanges": [{"text": text}]})


def test_diagnostics_follow_the_edits_over_stdio(client, tmp_path):
    uri = _open(client, tmp_path / "m.yaml", SPEC)
    assert client.diagnostics(uri, 1) == []
    # an unknown reference: located on the reference, with the hint
    _edit(client, uri, 2, SPEC.replace("[flat, dense_text]", "[flat, dense_txt]"))
    (d,) = client.diagnostics(uri, 2)
    line = SPEC.splitlines().index("  merged: {type: Concatenate, input: [flat, dense_text]}")
    col = SPEC.splitlines()[line].index("dense_text")
    assert d["code"] == "unknown-reference" and d["severity"] == 1 and d["source"] == "graphspec"
    assert d["range"] == {"start": {"line": line, "character": col}, "end": {"line": line, "character": col + 9}}
    assert "did you mean 'dense_text'" in d["message"]
    # a shape mistake (not something a JSON Schema knows): Dense on a 4-D... Concatenate of 2-D and 4-D
    _edit(client, uri, 3, SPEC.replace("  flat: {type: Flatten}\n", "  flat: {type: MaxPooling2D}\n"))
    (d,) = client.diagnostics(uri, 3)
    assert d["code"].startswith("shape") or "shape" in d["message"], d
    assert d["range"]["start"]["line"] == line
    # a cycle
    _edit(client, uri, 4, SPEC.replace("{type: Flatten}", "{type: Flatten, input: merged}"))
    found = client.diagnostics(uri, 4)
    assert any(d["code"] == "cycle" for d in found), found
    # fixed again: the diagnostics are cleared
    _edit(client, uri, 5, SPEC)
    assert client.diagnostics(uri, 5) == []
    # YAML that does not parse is a diagnostic too
    _edit(client, uri, 6, SPEC.replace("outputs: [score]", "outputs: [score"))
    (d,) = client.diagnostics(uri, 6)
    assert d["severity"] == 1 and d["code"]


def test_block_argument_diagnostic_names_the_instance(client, tmp_path):
    text = """\
graphspec: 1
name: blocks
blocks:
  unit:
    params:
      width: {type: int, min: 1}
    inputs: [x]
    nodes:
      d: {type: Dense, units: "${width}", input: x}
    outputs: [d]
inputs:
  x: {shape: [4]}
nodes:
  one: {block: unit, width: 8, input: x}
  two: {block: unit, width: eight}
outputs: [two]
"""
    uri = _open(client, tmp_path / "b.yaml", text)
    found = client.diagnostics(uri, 1)
    assert found and all(d["severity"] == 1 for d in found)
    # at the call's argument (line 14, 0-based), not somewhere a JSON Schema would know
    assert any(d["range"]["start"]["line"] == 14 for d in found), found


def test_hover_and_completion_over_stdio(client, tmp_path):
    uri = _open(client, tmp_path / "m.yaml", SPEC)
    client.diagnostics(uri, 1)
    lines = SPEC.splitlines()
    line = next(i for i, t in enumerate(lines) if t.startswith("  merged:"))
    result = client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": line, "character": 4}})
    value = result["contents"]["value"]
    assert "**merged**: `Concatenate`" in value and "(None, 25152)" in value and "params: 0" in value
    # on a reference: the referenced node
    col = lines[line].index("dense_text") + 2
    value = client.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                  "position": {"line": line, "character": col}})["contents"]["value"]
    assert "**dense_text**: `Dense`" in value and "(None, 64)" in value and "params: 6,464" in value
    # completion of references after input:
    edited = SPEC.replace("  score: {type: Dense, units: 1, activation: sigmoid}",
                          "  score: {type: Dense, units: 1, activation: sigmoid, input: }")
    _edit(client, uri, 2, edited)
    client.diagnostics(uri, 2)
    sline = edited.splitlines().index("  score: {type: Dense, units: 1, activation: sigmoid, input: }")
    items = client.request("textDocument/completion", {"textDocument": {"uri": uri},
                                                       "position": {"line": sline, "character": 61}})["items"]
    labels = {i["label"] for i in items}
    assert {"image", "text", "conv1", "flat", "dense_text", "merged"} <= labels and "score" not in labels


def test_completion_of_types_arguments_and_values(tmp_path):
    doc = Document((tmp_path / "m.yaml").as_uri())
    doc.update(SPEC)
    lines = SPEC.splitlines()

    def labels(text, line_text, after):
        doc.text = text
        line = text.splitlines().index(line_text)
        return [i["label"] for i in completions(doc, line, line_text.index(after) + len(after))]

    text = SPEC.replace("{type: Flatten}", "{type: Fl}")
    assert "Flatten" in labels(text, "  flat: {type: Fl}", "type: ")
    # the layer's constructor arguments at a key position of its node
    text = SPEC.replace("{type: Dense, units: 1, activation: sigmoid}", "{type: Dense, units: 1, }")
    found = labels(text, "  score: {type: Dense, units: 1, }", "units: 1, ")
    assert {"units", "activation", "use_bias", "kernel_initializer", "input"} <= set(found)
    assert "filters" not in found
    # block-form node: the arguments of the type written on a sibling line
    text = SPEC.replace("  score: {type: Dense, units: 1, activation: sigmoid}\n",
                        "  score:\n    type: Conv2D\n    \n")
    doc.text = text
    line = text.splitlines().index("    type: Conv2D") + 1
    assert "filters" in [i["label"] for i in completions(doc, line, 4)]
    # values: activations, initializers, losses
    assert {"relu", "sigmoid", "gelu"} <= set(labels(SPEC.replace("activation: sigmoid", "activation: s"),
                                                    "  score: {type: Dense, units: 1, activation: s}", "activation: "))
    text = SPEC.replace("activation: sigmoid", "kernel_initializer: ")
    assert "he_normal" in labels(text, "  score: {type: Dense, units: 1, kernel_initializer: }", "kernel_initializer: ")
    text = SPEC + "compile:\n  loss: \n"
    assert "binary_crossentropy" in labels(text, "  loss: ", "loss: ")
    assert lines  # the spec itself is untouched


def test_hover_keeps_the_last_good_check_while_the_text_is_broken(tmp_path):
    doc = Document((tmp_path / "m.yaml").as_uri())
    assert doc.update(SPEC) == []
    broken = SPEC.replace("outputs: [score]", "outputs: [score")
    assert doc.update(broken)
    line = SPEC.splitlines().index("  score: {type: Dense, units: 1, activation: sigmoid}")
    assert "(None, 1)" in hover(doc, line, 3)


def test_lsp_does_not_import_tensorflow(client, tmp_path):
    uri = _open(client, tmp_path / "m.yaml", SPEC)
    client.diagnostics(uri, 1)
    probe = ("import sys, json; from graphspec.lsp import Document; d = Document('file:///x/m.yaml'); "
             "d.update(open(sys.argv[1]).read()); "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'jax'}))")
    (tmp_path / "m.yaml").write_text(SPEC)
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "m.yaml")], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_diagnostics_of_a_1000_node_spec_come_quickly(tmp_path):
    """The bar: <= 200 ms from an edit to the published diagnostics (benchmarks/bench_lsp.py measures more)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_lsp import chain_spec

    doc = Document((tmp_path / "big.yaml").as_uri())
    text = chain_spec(1000)
    doc.update(text)
    times = []
    for i in range(5):
        edited = text.replace("activation: relu", f"activation: {('gelu', 'tanh', 'elu')[i % 3]}", 1)
        start = time.perf_counter()
        problems = doc.update(edited)
        times.append(time.perf_counter() - start)
        assert problems == []
    # The 200 ms bar is measured by benchmarks/bench_lsp.py; here only a generous bound that catches a
    # regression to re-checking in quadratic time, without making the suite depend on machine load.
    assert min(times) < 2.0, times


def test_hover_on_a_block_call_shows_the_instance(tmp_path):
    spec = REPO / "tests/fixtures/plot/densenet121.yaml"
    doc = Document(spec.as_uri())
    text = spec.read_text()
    assert doc.update(text) == []
    line = text.splitlines().index("  conv2: {block: dense, blocks: 6}")
    value = hover(doc, line, 3)
    # six conv blocks of seven nodes; 6 * (BN(c) + 1x1 conv (c*128) + BN(128) + 3x3 conv (128*9*32)) for c = 64 + 32k
    total = sum(4 * c + c * 128 + 4 * 128 + 128 * 9 * 32 for c in range(64, 64 + 6 * 32, 32))
    assert value.startswith("**conv2 (block 'dense': blocks=6)**") and "- 42 nodes" in value
    assert f"- params: {total:,}" in value and "conv2_block6_concat" in value and "(None, 56, 56, 256)" in value


PLUGIN_SPEC = SPEC.replace("  score: {type: Dense, units: 1, activation: sigmoid}\n",
                           "  scaled: {type: LayerScale, init_values: 0.1, projection_dim: 25152}\n"
                           "  score: {type: Dense, units: 1, activation: sigmoid}\n")


def test_a_plugin_given_to_the_server_is_enabled_for_every_document(tmp_path):
    """``graphspec lsp --plugin NAME``: its layer types check, hover and complete as Keras' own do; without it,
    the editor shows what ``check`` says (the plugin to enable)."""
    assert [d.code for d in Document((tmp_path / "a.yaml").as_uri()).update(PLUGIN_SPEC)] == ["plugin-not-enabled"]
    client = Client(tmp_path, "--plugin", "graphspec.plugins.applications")
    try:
        client.request("initialize", {"processId": None, "rootUri": tmp_path.as_uri(), "capabilities": {}})
        client.notify("initialized", {})
        uri = _open(client, tmp_path / "m.yaml", PLUGIN_SPEC)
        assert client.diagnostics(uri, 1) == []
        line = PLUGIN_SPEC.splitlines().index("  scaled: {type: LayerScale, init_values: 0.1, projection_dim: 25152}")
        shown = client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": line, "character": 4}})
        assert "25152" in json.dumps(shown)  # its output shape (None, 25152) and its 25,152 parameters
        typed = PLUGIN_SPEC.replace("{type: LayerScale,", "{type: LayerSc,")
        _edit(client, uri, 2, typed)
        found = client.request("textDocument/completion", {"textDocument": {"uri": uri},
                                                           "position": {"line": line, "character": 23}})
        assert "LayerScale" in [item["label"] for item in found["items"]]
    finally:
        client.close()
