"""``graphspec explain CODE``: what a diagnostic code means, an example, and the fix.

Every code graphspec reports has an entry (``tests/test_cli_basics.py`` scans the sources for codes
and fails on one without an entry). An example that is a whole spec (it starts with ``graphspec: 1``)
reports its code when checked (the test checks that too).
"""

from __future__ import annotations

from typing import NamedTuple


class Explanation(NamedTuple):
    meaning: str
    example: str
    fix: str


_SPEC = "graphspec: 1\nname: m\ninputs:\n  x: {shape: [8]}\nnodes:\n"

E = Explanation
EXPLANATIONS: dict[str, Explanation] = {
    # -- load: the YAML text ------------------------------------------------------------------------------
    "yaml-syntax": E("The file is not valid YAML (an unclosed bracket, a bad indentation, a tab).",
                     _SPEC + "  d: {type: Dense, units: 4\noutputs: [d]\n", "Close the bracket or fix the indentation at the place shown."),
    "duplicate-key": E("A mapping has the same key twice; YAML libraries silently keep the last one, graphspec refuses.",
                       _SPEC + "  d: {type: Dense, units: 4}\n  d: {type: Dense, units: 2}\noutputs: [d]\n", "Rename or remove one of the two (both lines are named)."),
    "alias-not-allowed": E("YAML aliases (*name) are refused: they can blow a small file up into a huge one.",
                           "nodes:\n  a: &dense {type: Dense, units: 4}\n  b: *dense", "Write the value out, or share one layer through 'layers:'."),
    "anchor-not-allowed": E("YAML anchors (&name) are refused, for the same reason as aliases.",
                            "nodes:\n  a: &dense {type: Dense, units: 4}", "Remove the anchor; write values out."),
    "forbidden-tag": E("Only YAML's core tags (!!str, !!int, !!float, !!bool, !!null, !!map, !!seq) are allowed: a spec is data.",
                       "units: !!python/object:os.system ls", "Remove the tag."),
    "multiple-documents": E("The file holds more than one YAML document ('---').",
                            "graphspec: 1\n---\ngraphspec: 1", "Keep one document per file."),
    "bad-key": E("A mapping key is itself a mapping or a list.", "nodes:\n  [a, b]: {type: Dense}", "Use plain names as keys."),
    "bad-scalar": E("A scalar cannot be read with its tag (e.g. !!int on a word).", "units: !!int four", "Write a value of the tagged type, or drop the tag."),
    "bad-encoding": E("The file is not valid UTF-8, or holds a character YAML does not allow.", "(a byte 0xff in the file)", "Save the file as UTF-8."),
    "number-too-large": E("An integer beyond 64 bits or a float beyond the finite range.", "units: 1e400", "Use a number in range."),
    "too-deep": E("The spec nests deeper than graphspec's limit (64 levels).", "a: [[[[[[[[ ... ]]]]]]]]", "Flatten the data; no spec needs that much nesting."),
    "too-many-values": E("The spec holds more YAML values than graphspec's limit.", "(a generated spec with millions of values)", "Split it, or use blocks and repeat."),
    "file-too-large": E("The spec file is larger than the limit (8 MiB).", "(a 10 MiB spec)", "Use blocks and repeat instead of writing every node."),
    "file-not-found": E("The file (or git revision) named does not exist.", "graphspec check specs/missing.yaml", "Check the path."),
    "file-unreadable": E("The file exists but cannot be read (permissions, a directory, bad bytes).", "graphspec check /root/secret.yaml", "Check the path and its permissions."),
    "not-a-mapping": E("The document is not a mapping (a list, a scalar, or empty).", "- a\n- b", "Write a mapping with graphspec, name, inputs, nodes and outputs."),
    # -- schema: the spec language --------------------------------------------------------------------------
    "unknown-key": E("A key the spec language does not have at this place (a typo, or a key of another section).",
                     _SPEC + "  d: {type: Dense, units: 4}\noutputs: [d]\noutput: [d]\n", "Use the suggested key (see docs/spec.md), or remove it."),
    "missing-key": E("A required key is missing.", "graphspec: 1\nname: m\nnodes:\n  d: {type: Dense, units: 4}\noutputs: [d]\n", "Add the key named in the message."),
    "bad-type": E("A value has the wrong type (a string where a number is expected, a list for a mapping).",
                  _SPEC + "  d: {type: Dense, units: 4}\noutputs: [d]\nexpect: {params: many}\n", "Give a value of the type named in the message."),
    "bad-value": E("A value is outside what the key accepts (an unsupported format version, an unknown choice).",
                   "graphspec: 2\nname: m\ninputs:\n  x: {shape: [8]}\nnodes:\n  d: {type: Dense, units: 4}\noutputs: [d]\n", "Use one of the values named in the message."),
    "bad-name": E("A name (of a node, input, block) or a reference is not a valid name.", "nodes:\n  2dense: {type: Dense, units: 4}", "Names use letters, digits and '_' and do not start with a digit."),
    "schema": E("The data does not match the spec language in a way without a more specific code.", "(see the message)", "Follow the message and docs/spec.md."),
    "node-form": E("A node needs exactly one of 'type', 'shared', 'sequential', 'model', 'block' or 'op'.",
                   _SPEC + "  d: {units: 4}\noutputs: [d]\n", "Add 'type: <Keras layer>' (or the key of the form you mean)."),
    "unknown-layer-type": E("The node's 'type' is not a Keras layer (names are case-sensitive).",
                            _SPEC + "  d: {type: dense, units: 4}\noutputs: [d]\n", "Use the Keras class name suggested ('Dense'), or enable the plugin that has the layer."),
    "denied-layer-type": E("The layer exists in Keras but cannot come from a spec (it runs code or reads files: Lambda, TorchModuleWrapper...).",
                           _SPEC + "  d: {type: Lambda, function: f}\noutputs: [d]\n", "Use op: nodes or layers; custom layers come from plugins (docs/plugins.md)."),
    "unknown-argument": E("An argument the layer's constructor (or the block) does not take.",
                          _SPEC + "  d: {type: Dense, unit: 4}\noutputs: [d]\n", "Use the suggested argument name."),
    "missing-argument": E("A required constructor argument (or block parameter) is not given.",
                          _SPEC + "  d: {type: Dense}\noutputs: [d]\n", "Give the argument named in the message."),
    "bad-argument": E("An argument's value is invalid in itself (a negative size, a wrong choice).",
                      _SPEC + "  d: {type: Dense, units: -4}\noutputs: [d]\n", "Give a value the argument accepts (the hint says which)."),
    "bad-argument-type": E("An argument takes plain values but was given a mapping (or the other way round).", "nodes:\n  d: {type: Dense, units: {value: 4}}", "Give the value itself."),
    "name-argument": E("'name:' as a layer argument: a layer's name is its key in the spec.",
                       _SPEC + "  d: {type: Dense, units: 4, name: dense}\noutputs: [d]\n", "Remove 'name:' and rename the node instead."),
    "file-argument": E("An argument given as a string would make Keras read a file (e.g. a vocabulary path).", "nodes:\n  v: {type: StringLookup, vocabulary: vocab.txt}", "Give the values inline as a list."),
    "unknown-dtype": E("A dtype name Keras does not know.", _SPEC.replace("{shape: [8]}", "{shape: [8], dtype: float23}") + "  d: {type: Dense, units: 4}\noutputs: [d]\n", "Use a Keras dtype (float32, int32, string, ...)."),
    "bad-object": E("A nested object (an initializer, optimizer, regularizer) is neither a name nor a mapping with 'type'.", "kernel_initializer: [1, 2]", "Write a name ('glorot_uniform') or {type: GlorotUniform, seed: 1}."),
    "denied-object": E("A nested object class that cannot come from a spec (it runs code or reads files).", "optimizer: {type: SomethingUnsafe}", "Use an allow-listed class (the hint names the namespace)."),
    "unknown-object": E("A nested object names a class that is not in the allowed namespace.", "optimizer: {type: Adamm}", "Use the suggested class."),
    "unknown-call-argument": E("An input mapping names an argument that the layer's call() does not take.", "att: {type: MultiHeadAttention, num_heads: 2, key_dim: 8, input: {query: q, valu: v}}", "Use the call() argument names (query, value, key...)."),
    "plugin-not-enabled": E("The layer type comes from a plugin that is not enabled.", "nodes:\n  s: {type: MyTeamLayer}", "Run with --plugin <module> (docs/plugins.md)."),
    "bad-plugin": E("A plugin named with --plugin cannot be used (not importable, or no GRAPHSPEC_PLUGIN).", "graphspec check --plugin no_such_module spec.yaml", "Check the import name and the plugin's GRAPHSPEC_PLUGIN (docs/plugins.md)."),
    "denied-op": E("The op: names a keras.ops function that is not allow-listed (it takes Python functions, or reads files).", "nodes:\n  y: {op: vectorized_map, input: x}", "Use an allow-listed op (graphspec schema lists them)."),
    "unknown-op": E("The op: names no allow-listed keras.ops function.", _SPEC + "  y: {op: addd, input: [x, x]}\noutputs: [y]\n", "Use the suggested op name."),
    "wrong-operand-count": E("An op: node gets more or fewer operands than the function takes.", _SPEC + "  y: {op: add, input: [x, x, x]}\noutputs: [y]\n", "Give the number of operands in the message."),
    "bad-operand": E("An op's operand has a rank or shape the op cannot take.", "y: {op: matmul, input: [a, b]}  # a of rank 2", "Reshape the operand, or use another op."),
    # -- language 1.1: blocks, params, expressions ------------------------------------------------------------
    "unknown-block": E("A node calls a block that 'blocks:' does not define.", "nodes:\n  b: {block: residul}", "Use the suggested block name, or define it under 'blocks:'."),
    "block-cycle": E("Blocks call each other in a cycle.", "blocks:\n  a: {nodes: {n: {block: b}}}\n  b: {nodes: {n: {block: a}}}", "A block cannot contain itself; break the cycle."),
    "bad-input": E("A block call's input does not match the block's inputs (count or names).", "nodes:\n  b: {block: two_inputs, input: x}", "Give a list in the block's input order, or a mapping by name."),
    "missing-input": E("A node has no input and cannot take one implicitly (the first node of a spec or a block).",
                       "graphspec: 1\nname: m\ninputs:\n  x: {shape: [8]}\n  y: {shape: [8]}\nnodes:\n  d: {type: Dense, units: 4}\noutputs: [d]\n", "Add 'input:' with one of the names in the hint."),
    "bad-repeat": E("A repeat: is malformed (count not a non-negative integer, unknown keys).", "nodes:\n  b: {block: res, repeat: {count: -1}}", "Give repeat: {count: N, name: \"prefix${i}\"}."),
    "repeat-not-chainable": E("A repeated block has several inputs: repeat chains each iteration into the next one's single input.", "nodes:\n  b: {block: two_inputs, repeat: {count: 3}}", "Repeat a one-input block, or write the calls out."),
    "duplicate-name": E("Two expanded nodes get the same name (block instances or repeat iterations).", "b: {block: res, repeat: {count: 2, name: same}}", "Give instances and iterations distinct names (use ${i})."),
    "expansion-too-large": E("Blocks and repeat expand to more nodes than the limit.", "b: {block: res, repeat: {count: 1000000}}", "Lower the repeat counts."),
    "bad-condition": E("A when: is not true or false.", "n: {type: Dense, units: 4, when: \"${width}\"}", "Write a comparison: when: ${width > 0}."),
    "bad-reference": E("A block's output expression does not name a node or input.", "blocks:\n  b: {outputs: [\"${3}\"]}", "An output expression gives a node name."),
    "bad-output": E("An output names a block instance or repeated node in the list form.", "outputs: [stage]", "Use the mapping form: outputs: {out: stage}."),
    "bad-parameter": E("A model parameter's value does not fit its declaration (type, min, max, choices).", "graphspec check spec.yaml --set params.classes=0", "Give a value the declaration accepts (the hint shows it)."),
    "missing-parameter": E("A model parameter has no default and no value.", "params:\n  classes: {type: int}", "Give it a default, or --set params.NAME=VALUE."),
    "unknown-parameter": E("--set params.NAME names no model parameter.", "graphspec check spec.yaml --set params.clases=10", "Use the suggested parameter name."),
    "bad-override": E("A --set PATH=VALUE cannot be applied (no such path, a value that is not YAML, a list index out of range).",
                      "graphspec train spec.yaml --set nodes.dense9.units=64", "Give a path that exists in the spec (graphspec config shows it) and a YAML value."),
    "bad-option": E("A command-line option that does not apply to what it was given (e.g. --set or --variant with a "
                    "run directory or a .keras file, whose spec is fixed).", "graphspec export runs/m/run1 -o out --set nodes.d.units=8",
                    "Give the spec file instead, or drop the option."),
    "unknown-variant": E("--variant (or variant:) names no entry of 'variants:'.", "graphspec check specs/resnet50.yaml --variant resnet51", "Use one of the variants listed."),
    "bad-expression": E("A ${...} expression cannot be parsed.", "units: \"${4 *}\"", "Fix the expression (Python-like: arithmetic, comparisons, if/else, names of parameters)."),
    "expression-type": E("An expression gives a value of the wrong type here (or omit where it cannot stand).", "units: \"${'four'}\"", "Make the expression give the type the argument takes."),
    "expression-value": E("An expression's value is invalid (division by zero, a huge power, an index out of range).", "units: \"${4 // 0}\"", "Fix the arithmetic."),
    "expression-overflow": E("An expression's integer is too large.", "units: \"${10 ** 100}\"", "Keep numbers within 64 bits."),
    "expression-too-large": E("An expression is too long or nested too deep.", "units: \"${((((((...))))))}\"", "Shorten it; compute in parameters."),
    "cycle": E("Nodes refer to each other in a cycle (or nodes left out by when: pass each other on).",
               _SPEC + "  a: {type: Dense, units: 4, input: b}\n  b: {type: Dense, units: 4, input: a}\noutputs: [b]\n", "Break the cycle: a model is a directed acyclic graph."),
    # -- resolve: references ---------------------------------------------------------------------------------
    "unknown-reference": E("An input: names no input or node.", _SPEC + "  d: {type: Dense, units: 4, input: y}\noutputs: [d]\n", "Use the suggested name, or one of the known names."),
    "unknown-shared-layer": E("A shared: node names no layer of 'layers:'.", "nodes:\n  a: {shared: proj}", "Declare the layer under 'layers:', or fix the name."),
    "unknown-output": E("A per-output setting (loss, metrics, loss_weights) names no output of the model.", "compile: {loss: {scor: mse}}", "Use the output names (the hint lists them)."),
    "duplicate-output": E("Two outputs would get the same name.", "outputs: [a.0, a.0]", "Name the outputs yourself: outputs: {first: a.0, second: a.1}."),
    "output-is-input": E("An output is an input itself; Keras needs it computed by a layer.", _SPEC + "  d: {type: Dense, units: 4}\noutputs: [x]\n", "Add an Identity node if you need the input out."),
    "bad-loss-weights": E("loss_weights does not give one weight per output.", "compile: {loss_weights: [1.0]}  # two outputs", "Give a weight per output (a list in order, or a mapping by name)."),
    "unused-input": E("Warning: an input is not used by any output (Keras would refuse it).", "inputs:\n  x: {shape: [8]}\n  unused: {shape: [2]}", "Use it or remove it."),
    "unused-node": E("Warning: a node does not lead to any output; Keras leaves it out.", _SPEC + "  d: {type: Dense, units: 4}\n  e: {type: Dense, units: 2, input: x}\noutputs: [d]\n", "Remove it or use its output."),
    "unused-shared-layer": E("Warning: a shared layer is never called.", "layers:\n  proj: {type: Dense, units: 4}", "Call it with shared: proj, or remove it."),
    "bad-path": E("A file path in the spec is invalid (empty, odd characters, a folder).", "nodes:\n  enc: {model: \"\"}", "Give the file's path relative to the spec's folder."),
    "path-outside-project": E("A file path in the spec is absolute or leaves the spec's folder: a spec may not read other files.", "nodes:\n  enc: {model: /etc/passwd}", "Put the file beside the spec and give a relative path."),
    "unsafe-saved-model": E("A saved model used as a layer holds something other than built-in Keras layers (code, custom objects).", "nodes:\n  enc: {model: lambda_model.keras}", "Save a model of built-in layers only."),
    # -- infer: shapes and dtypes ------------------------------------------------------------------------------
    "shape-mismatch": E("A layer's input shape does not fit (sizes that differ in a merge, a rank the layer cannot take).",
                        "graphspec: 1\nname: m\ninputs:\n  a: {shape: [8]}\n  b: {shape: [4]}\nnodes:\n  s: {type: Add, input: [a, b]}\noutputs: [s]\n", "Make the shapes fit (Dense/Reshape before the merge), as the message and hint say."),
    "rank-mismatch": E("A layer gets a tensor of the wrong rank (e.g. Conv2D on a vector).", _SPEC + "  c: {type: Conv2D, filters: 4, kernel_size: 3}\noutputs: [c]\n", "Reshape the input, or use the layer for that rank."),
    "dtype-mismatch": E("A layer gets a dtype it cannot take (e.g. an integer tensor into Dense).",
                        "graphspec: 1\nname: m\ninputs:\n  x: {shape: [8], dtype: int32}\nnodes:\n  g: {op: sigmoid, input: x}\noutputs: [g]\n", "Cast first (Embedding for token ids, or op: cast)."),
    "wrong-input-count": E("A layer gets more or fewer tensors than it takes (e.g. a GRU given two initial states).", "decoder: {type: GRU, units: 16, input: {sequences: t, initial_state: [h, c]}}", "Give the number of inputs the layer takes."),
    "missing-call-argument": E("A layer's call() needs an input it was not given (e.g. attention without value).", "att: {type: MultiHeadAttention, num_heads: 2, key_dim: 8, input: {query: q}}", "Give the missing call() argument."),
    "bad-output-index": E("A reference asks for an output index the node does not have.", "input: lstm.3  # LSTM with return_state has 3 outputs: 0, 1, 2", "Use an index below the node's output count."),
    "multi-output": E("A node with several outputs is used where one tensor is needed.", "d: {type: Dense, units: 4, input: lstm}  # lstm returns [output, h, c]", "Pick one output: input: lstm.0."),
    "shared-layer-mismatch": E("A shared layer is called on inputs of different shapes; its weights would not fit.", "a: {shared: proj, input: x8}\nb: {shared: proj, input: x4}", "Call a shared layer on inputs of one shape."),
    "unknown-input-shape": E("A layer needs a size that is unknown here (or would crash Keras for some sizes).", "p: {type: AdaptiveMaxPooling3D, output_size: 2}", "Give the input's shape in full, or use the layer the hint names."),
    "unknown-size-broadcast": E("A merge of an unknown size with a known one: they broadcast only if they happen to be equal.", "s: {type: Add, input: [a, b]}  # a: [None, 8], b: [4, 8]", "Give that axis a size, or Reshape."),
    "window-too-large": E("A pooling or convolution window is larger than its (valid-padded) input.", _SPEC.replace("[8]", "[4, 4, 1]") + "  c: {type: Conv2D, filters: 2, kernel_size: 5}\noutputs: [c]\n", "Use padding: same, a smaller window, or a larger input."),
    "too-many-params": E("The model would have more parameters than graphspec's limit (a typo in a size).", "d: {type: Dense, units: 100000000000}", "Check units, filters and input_dim."),
    # -- build (emit) ----------------------------------------------------------------------------------------
    "expect-failed": E("An 'expect:' assertion does not hold (parameters, output shapes).",
                       _SPEC + "  d: {type: Dense, units: 4}\noutputs: [d]\nexpect: {params: 10}\n", "If the change is intended, update expect: (reviewers see it change); otherwise fix the model."),
    "keras-error": E("Keras refused to build a layer with the spec's arguments (found at build time).", "graphspec build spec.yaml", "Follow Keras' message at the node shown."),
    "bad-saved-model": E("A model: file cannot be loaded as a Keras 3 .keras model.", "nodes:\n  enc: {model: broken.keras}", "Save it with Keras 3 (model.save('x.keras'))."),
    "bad-weights-file": E("The weights file does not fit the model.", "weights: other_model.weights.h5", "Give weights saved from this very model."),
    "bad-output-path": E("build -o must name a .keras file.", "graphspec build spec.yaml -o model.h5", "Use a .keras path."),
    "tensorflow-not-installed": E("The command builds or runs a model and TensorFlow or Keras is not installed (the front-end install).", "pip install graphspec && graphspec build spec.yaml", "pip install 'graphspec[tensorflow]' (NVIDIA GPUs: 'graphspec[gpu]')."),
    "needs-tensorflow": E("A training feature needs the TensorFlow backend, and Keras runs on another.", "KERAS_BACKEND=jax graphspec train spec.yaml  # with a TF-only setting", "Unset KERAS_BACKEND, or drop the setting."),
    # -- train, evaluate, predict, runs ---------------------------------------------------------------------
    "bad-data": E("The training data holds NaN or infinite values (or is otherwise unusable).", "train: {data: {npz: data.npz}}", "Clean the data."),
    "data-shape-mismatch": E("The data's per-example shape differs from the input's.", "inputs: {image: {shape: [28, 28, 1]}}  # data is 32x32x3", "Make the spec's input shape match the data, or map another array."),
    "data-dtype-mismatch": E("The data's dtype differs from the input's.", "inputs: {ids: {shape: [10], dtype: int32}}  # data is float", "Convert the data, or change the input's dtype."),
    "empty-data": E("The data source has no examples.", "train: {data: {csv: empty.csv}}", "Point at data with examples."),
    "missing-data": E("An input or output has no data in the source (no such array, column or feature).", "train: {data: {npz: d.npz, map: {image: imgs}}}", "Map it: map: {input_name: array_name}."),
    "unknown-name": E("A map: entry names neither an input nor an output.", "train: {data: {map: {imag: x}}}", "Use the spec's input and output names."),
    "no-data": E("evaluate/predict got no --data and the spec has no train.data.", "graphspec evaluate model.keras", "Give --data FILE."),
    "no-loss": E("The model has no loss: evaluate has nothing to measure.", "compile: {optimizer: adam}", "Add compile.loss."),
    "no-spec": E("train got neither a spec nor --resume.", "graphspec train", "Give a spec file or --resume RUN."),
    "bad-schedule": E("The learning rate is given twice (a schedule in the optimizer and an lr_schedule callback).", "compile: {optimizer: {type: Adam, learning_rate: {type: ExponentialDecay}}}", "Give one or the other."),
    "unknown-direction": E("A monitored metric whose direction Keras cannot tell (min or max).", "callbacks: {early_stopping: {monitor: my_metric}}", "Add mode: min or mode: max."),
    "nan-loss": E("The loss became NaN or infinite during training; training stopped, the last good state is kept.", "graphspec train spec.yaml", "Lower the learning rate, clip gradients, check the data."),
    "interrupted": E("Training was stopped (Ctrl-C or a signal); the state is saved to resume.", "graphspec train spec.yaml  # then Ctrl-C", "graphspec train --resume RUN_DIR."),
    "run-exists": E("The run name names something that exists and is not a run folder.", "graphspec train spec.yaml --name README.md", "Choose another --name."),
    "run-locked": E("Another graphspec train is writing the run directory.", "two graphspec train --resume on one run", "Wait for it, or stop it."),
    "bad-run-name": E("--name is not a valid folder name.", "graphspec train spec.yaml --name ../x", "Letters, digits, '.', '_' and '-'."),
    "not-a-run": E("The folder is not a run directory (no run.json).", "graphspec evaluate some/folder", "List the runs: graphspec runs."),
    "damaged-run": E("A file of the run directory cannot be read.", "graphspec evaluate runs/m/broken", "Start a new run."),
    "resume-changed": E("The spec or its train settings changed since the run started; resuming would mix two models.", "graphspec train --resume RUN  # after editing the spec", "Start a new run (or revert the change)."),
    "resume-data-changed": E("The training data changed since the run started.", "graphspec train --resume RUN  # after changing data.npz", "Start a new run, or restore the data."),
    "resume-error": E("The checkpoint cannot be read.", "graphspec train --resume RUN", "The checkpoint is damaged; start a new run."),
    "resume-mismatch": E("The checkpoint does not match the model (different variables).", "graphspec train --resume RUN", "Resume with the spec the run was started with."),
    "strategy-error": E("The distribution strategy cannot be set up (e.g. splitting the CPU into devices).", "train: {strategy: {type: mirrored, cpu_devices: 4}}", "Set it before TensorFlow starts, or drop it."),
    "no-cluster": E("A multi-worker strategy needs TF_CONFIG.", "train: {strategy: {type: multi_worker}}", "Set TF_CONFIG for each worker."),
    "bad-model": E("The model file cannot be read as a graphspec artifact.", "graphspec evaluate not_a_model.keras", "Give a .keras saved by graphspec build/train."),
    "cannot-write": E("A file or folder cannot be written (permissions, a full disk).", "graphspec build spec.yaml -o /readonly/m.keras", "Write somewhere writable."),
    # -- export -----------------------------------------------------------------------------------------------
    "bad-format": E("An unknown export format.", "graphspec export spec.yaml -o out --format pb", "Use saved_model, tflite or onnx."),
    "exists": E("The export target exists and is not empty.", "graphspec export spec.yaml -o existing_folder", "Remove it or name another folder."),
    "export-failed": E("The exporter (TensorFlow, LiteRT, tf2onnx) failed.", "graphspec export spec.yaml -o m.tflite --format tflite", "Follow the exporter's message; some ops need Flex delegates."),
    "missing-extra": E("An optional feature needs an extra that is not installed.", "graphspec export spec.yaml -o m.onnx --format onnx", "pip install the extra named (e.g. 'graphspec[onnx]')."),
    # -- import (a Keras model to a spec) ------------------------------------------------------------------------
    "bad-archive": E("The file is not a Keras 3 .keras archive.", "graphspec import model.h5", "Save the model with Keras 3 as .keras."),
    "unsafe-archive": E("The archive holds odd members (absolute paths, too many files): refused.", "graphspec import suspicious.keras", "Use an archive Keras wrote."),
    "bad-config": E("The model config is not a JSON object graphspec can read.", "graphspec import broken.json", "Give model.to_json() output."),
    "unknown-class": E("A layer's class is not a Keras class.", "graphspec import custom.keras", "Enable the plugin that has it, or rewrite the layer."),
    "unknown-layer": E("A layer graphspec cannot build from a spec.", "graphspec import lambda_model.keras", "Rewrite it as layers or op: nodes."),
    "unsafe-model": E("A layer runs code or reads files (Lambda...).", "graphspec import lambda_model.keras", "Rewrite it as layers or op: nodes."),
    "nested-functional": E("A nested functional model cannot be imported as a node.", "graphspec import nested.keras", "Save the inner model apart and use it with model:."),
    "unbuilt-model": E("A Sequential model was never built (no input shape).", "graphspec import unbuilt.keras", "Build it (give keras.Input first) before saving."),
    "unknown-source": E("The import source is none of the forms graphspec reads.", "graphspec import something", "A .keras archive, a .json config, keras.applications.NAME or package.module:function."),
    "unknown-application": E("keras.applications has no such model.", "graphspec import keras.applications.ResNet51", "Use a keras.applications class name."),
    "code-not-allowed": E("Importing from a Python factory runs its code.", "graphspec import mypkg.models:build", "Pass --allow-code for code you trust."),
    "unknown-factory": E("The module has no such function.", "graphspec import mypkg.models:buidl", "Check the function name."),
    "not-a-model": E("The factory did not return a Keras model.", "graphspec import mypkg.models:build_data", "Return a keras.Model."),
    "no-weights": E("A JSON config holds no weights.", "graphspec import model.json --weights", "Import the .keras file instead."),
    # -- fmt, diff ---------------------------------------------------------------------------------------------
    "fmt-comment-in-flow": E("fmt cannot keep a comment inside a flow collection ({...} or [...]) and leaves the file as it is.",
                             "nodes:\n  d: {type: Dense,  # why\n    units: 4}", "Move the comment to the end of the entry's last line, or above the entry."),
    "fmt-unsupported": E("fmt's YAML library cannot read a file that graphspec's loader accepts.", "(a rare YAML construct)", "Report it; format the file by hand meanwhile."),
    "fmt-would-change-spec": E("Formatting would have changed the spec's data; the file is left as it is (a bug in fmt).", "(any spec)", "Report it with the spec."),
    "git-show-failed": E("graphspec diff could not read REV:PATH with git show.", "graphspec diff mian:specs/x.yaml specs/x.yaml", "Check the revision and the path (relative to the repository root)."),
}


def lookup(code: str) -> Explanation | None:
    return EXPLANATIONS.get(code)


def render(code: str, explanation: Explanation) -> str:
    example = "\n".join("    " + line for line in explanation.example.rstrip("\n").split("\n"))
    return f"{code}\n\n  {explanation.meaning}\n\n  example:\n{example}\n\n  fix: {explanation.fix}\n"
