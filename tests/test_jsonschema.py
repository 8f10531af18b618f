"""The checked-in JSON Schema is current, and editors using it accept valid specs and flag mistakes."""

import contextvars
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml
import pytest

from graphspec.loader import loads
from graphspec.schema import json_schema

SCHEMA_FILE = Path(__file__).parents[1] / "schemas" / "graphspec.schema.json"


def _fresh_python(probe: str, cwd: Path = SCHEMA_FILE.parents[1]) -> str:
    """Run ``probe`` in a fresh interpreter (no schema made, no description read yet); its stdout."""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout

VALID = """
graphspec: 1
name: m
inputs: {x: {shape: [28, 28, 3]}}
layers: {proj: {type: Dense, units: 4}}
nodes:
  conv: {type: Conv2D, filters: 8, kernel_size: 3, input: x}
  flat: {type: Flatten}
  out: {shared: proj}
outputs: [out]
compile: {optimizer: {type: Adam, learning_rate: 0.001}, loss: mse}
"""


def test_checked_in_schema_is_current():
    generated = json.dumps(json_schema(), indent=1, sort_keys=False) + "\n"
    assert SCHEMA_FILE.read_text() == generated, "run: graphspec schema -o schemas/graphspec.schema.json"


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_FILE.read_text())
    return jsonschema.Draft202012Validator(schema)


def test_valid_spec_passes(validator):
    assert list(validator.iter_errors(loads(VALID).data)) == []


@pytest.mark.parametrize("change, word", [
    ("filters: 8", "filtres: 8"),          # a misspelt Conv2D argument
    ("type: Flatten", "type: Flaten"),      # an unknown layer type
    ("graphspec: 1", "graphspec: 2"),       # a wrong format version
])
def test_editor_flags_mistakes(validator, change, word):
    data = loads(VALID.replace(change, word)).data
    assert list(validator.iter_errors(data)), f"schema accepted {word!r}"


def test_fields_have_descriptions():
    schema = json.loads(SCHEMA_FILE.read_text())
    for name, definition in schema["$defs"].items():
        for field, prop in definition.get("properties", {}).items():
            if name in ("LayerNode", "LayerConfig") and field not in ("type", "input", "call"):
                continue
            assert prop.get("description"), f"{name}.{field} has no description"


def test_schema_with_a_plugin_knows_its_layer_types_and_arguments(tmp_path):
    """Editors flag a plugin's layer types as unknown unless the schema was made with the plugin enabled."""
    from typer.testing import CliRunner

    from graphspec.cli import app

    spec = yaml.safe_load(VALID)
    spec["nodes"]["scale"] = {"type": "LayerScale", "init_values": 0.1, "projection_dim": 8, "input": "flat"}
    out = tmp_path / "with_plugin.json"
    # in a copy of the context: the command line enables a plugin for the rest of its (one-command) process
    result = contextvars.copy_context().run(
        CliRunner().invoke, app, ["schema", "--plugin", "graphspec.plugins.applications", "-o", str(out)])
    assert result.exit_code == 0, result.output
    with_plugin = jsonschema.Draft202012Validator(json.loads(out.read_text()))
    assert list(with_plugin.iter_errors(spec)) == []
    spec["nodes"]["scale"]["init_valeus"] = spec["nodes"]["scale"].pop("init_values")  # a misspelt plugin argument
    assert any("init_valeus" in error.message for error in with_plugin.iter_errors(spec))
    plain = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    spec["nodes"]["scale"]["init_values"] = spec["nodes"]["scale"].pop("init_valeus")
    assert any("LayerScale" in error.message for error in plain.iter_errors(spec))


def test_schema_made_after_validation_is_the_checked_in_one():
    """Descriptions are given to the models only when a JSON Schema is made (a check does not parse the
    modules for them): models whose validators validation already built must be rebuilt with them, nested
    ones first. A fresh process, so that no earlier test has made the schema."""
    probe = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "import graphspec\n"
        "from pydantic import BaseModel\n"
        "from graphspec.schema import blocks, model, train\n"
        "for spec in sorted(Path('specs').glob('*.yaml')):\n"
        "    graphspec.load(spec)\n"
        "for module in (blocks, model, train):  # every validator built, in the order of the module\n"
        "    for value in list(vars(module).values()):\n"
        "        if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == module.__name__:\n"
        "            value.model_rebuild()\n"
        "from graphspec.schema import json_schema\n"
        "sys.stdout.write(json.dumps(json_schema(), indent=1, sort_keys=False) + '\\n')\n")
    assert _fresh_python(probe) == SCHEMA_FILE.read_text()


def test_descriptions_reach_built_models_nested_in_any_order_and_under_cycles(tmp_path):
    """describe_fields rebuilds models that validation already built; a model nests another that nests a
    third, defined outermost first, next to two models that nest each other: every description reaches
    every schema (the cycle once made the rebuild order give up on the chain). Found in review."""
    (tmp_path / "synthetic.py").write_text(
        "from typing import Optional\n"
        "from pydantic import BaseModel\n"
        "from graphspec.schema.model import document_fields\n\n"
        "class P(BaseModel):\n    q: 'Q'\n    \"\"\"P's q.\"\"\"\n\n"
        "class Q(BaseModel):\n    r: 'R'\n    \"\"\"Q's r.\"\"\"\n\n"
        "class R(BaseModel):\n    v: int = 0\n    \"\"\"R's v.\"\"\"\n\n"
        "class X(BaseModel):\n    y: 'Optional[Y]' = None\n    \"\"\"X's y.\"\"\"\n\n"
        "class Y(BaseModel):\n    x: Optional[X] = None\n    \"\"\"Y's x.\"\"\"\n\n"
        "P.model_rebuild(); Q.model_rebuild(); X.model_rebuild()\n"
        "document_fields(globals())\n")
    probe = ("import json, sys\n"
             "import synthetic\n"
             "synthetic.P.model_validate({'q': {'r': {}}}); synthetic.R.model_validate({})\n"
             "synthetic.X.model_validate({'y': {'x': {}}}); synthetic.Y.model_validate({})\n"
             "from graphspec.schema import describe_fields\n"
             "describe_fields()\n"
             "p, x = synthetic.P.model_json_schema(), synthetic.X.model_json_schema()\n"
             "print(json.dumps([p['$defs']['R']['properties']['v'].get('description'),\n"
             "                  p['$defs']['Q']['properties']['r'].get('description'),\n"
             "                  x['$defs']['X']['properties']['y'].get('description'),\n"
             "                  x['$defs']['Y']['properties']['x'].get('description')]))\n")
    assert json.loads(_fresh_python(probe, tmp_path)) == ["R's v.", "Q's r.", "X's y.", "Y's x."]


def test_two_threads_making_the_schema_at_once_both_get_the_descriptions():
    """The second thread used to find the modules already taken off the list and make its schema from
    models still without descriptions (found in review)."""
    probe = ("import json, sys, threading, time\n"
             "import graphspec.schema.model as model\n"
             "describe = model._describe_module  # slowed down: the second thread comes while the first describes\n"
             "model._describe_module = lambda namespace: (time.sleep(0.05), describe(namespace))[1]\n"
             "from graphspec.schema import json_schema\n"
             "out = [None, None]\n"
             "def make(i): out[i] = json.dumps(json_schema(), indent=1, sort_keys=False) + '\\n'\n"
             "threads = [threading.Thread(target=make, args=(i,)) for i in (0, 1)]\n"
             "[t.start() for t in threads]; [t.join() for t in threads]\n"
             "print(json.dumps(out))\n")
    assert json.loads(_fresh_python(probe)) == [SCHEMA_FILE.read_text()] * 2
