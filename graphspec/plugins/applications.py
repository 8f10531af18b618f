"""Built-in plugin: the custom layers of Keras' own ``keras.applications`` models.

    graphspec check --plugin graphspec.plugins.applications specs/convnext_block.yaml

- ``LayerScale(init_values, projection_dim)`` (ConvNeXt, ``keras/src/applications/convnext.py``):
  multiplies the last axis by a trained vector of ``projection_dim`` values.
- ``CustomScaleLayer(scale)`` (Inception-ResNet-v2, ``keras/src/applications/inception_resnet_v2.py``):
  ``inputs[0] + inputs[1] * scale`` for a list of two tensors.

Keras does not export them (they are not in ``keras.layers``); they are Keras' own classes, which
Keras saves under their module (``keras.src.applications.convnext``) and loads by it, so a model built
with them loads in plain Keras (``safe_mode=True``) without graphspec and without registering anything.

A built-in plugin (``graphspec.plugins.BUILTIN_PLUGINS``): importing this module imports no Keras. Its
layers' catalogue entries are generated with Keras' own (``keras.json``, ``builtin_plugins``) and its
shape rules are pure, so ``check`` with it stays free of TensorFlow; the classes are imported
(:func:`layer_classes`) when a model is built. A spec may declare it (``plugins: [graphspec.plugins.applications]``)
instead of the runner enabling it: it is graphspec's own code and holds only Keras' classes.
"""

from __future__ import annotations

from graphspec.infer.tensor import LayerCall, RuleResult, ShapeError, TensorInfo


def layer_classes() -> list[type]:
    """Keras' own classes (imports Keras)."""
    from keras.src.applications.convnext import LayerScale
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    return [LayerScale, CustomScaleLayer]


def layer_scale(call: LayerCall) -> RuleResult:
    x = call.input
    dim = call.positive("projection_dim")
    if x.shape[-1] is not None and x.shape[-1] != dim:
        raise ShapeError(f"LayerScale with projection_dim {dim} scales a last axis of {dim}, got {x}",
                         argument="projection_dim", hint=f"set projection_dim: {x.shape[-1]}")
    return RuleResult(TensorInfo(x.shape, call.passthrough_dtype(x)), dim)


def custom_scale(call: LayerCall) -> RuleResult:
    inputs = call.input_list
    if len(inputs) != 2:
        raise ShapeError(f"CustomScaleLayer adds a scaled second tensor to a first: it takes 2 inputs, got "
                         f"{len(inputs)}", code="wrong-input-count", hint="give 'input:' a list [x, residual]")
    a, b = inputs
    if a.rank != b.rank or any(p is not None and q is not None and p != q for p, q in zip(a.shape, b.shape)):
        raise ShapeError(f"CustomScaleLayer adds tensors of the same shape, got {a} and {b}")
    shape = tuple(p if p is not None else q for p, q in zip(a.shape, b.shape))
    return RuleResult(TensorInfo(shape, call.dtype()), 0)


RULES = {"LayerScale": layer_scale, "CustomScaleLayer": custom_scale}


def GRAPHSPEC_PLUGIN() -> dict:  # noqa: N802 -- the plugin interface's name; a function: Keras only when called
    return {"layers": layer_classes(), "rules": RULES}
