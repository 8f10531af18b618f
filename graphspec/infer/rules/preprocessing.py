"""Rules for preprocessing layers: images (Resizing, CenterCrop, RandomCrop, RandomFlip, ...) and text
(TextVectorization)."""

from __future__ import annotations

from graphspec.infer.rules import rule
from graphspec.infer.tensor import ArgumentError, LayerCall, RuleResult, ShapeError, TensorInfo

_KEEPS_SHAPE = (
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomContrast", "RandomTranslation", "RandomBrightness",
    "RandomHue", "RandomSaturation", "RandomSharpness", "RandomColorDegeneration", "RandomColorJitter",
    "RandomInvert", "RandomPosterization", "AutoContrast", "Solarization", "RandomGaussianBlur", "RandomShear",
    "RandomPerspective", "RandomErasing", "RandomElasticTransform", "AugMix", "RandAugment", "CutMix", "MixUp",
    "ContrastLimitedAdaptiveHistogramEqualization",
)
_KEEPS_DTYPE = ("RandomGrayscale", "Equalization")
"""These return integer images as integers; the others return the layer's compute dtype."""


@rule(*_KEEPS_SHAPE, *_KEEPS_DTYPE)
def augmentation(call: LayerCall) -> RuleResult:
    x = call.input
    call.require_rank(x, 4, what="batch of images")
    call.data_format()
    dtype = call.passthrough_dtype(x) if call.layer_type in _KEEPS_DTYPE else call.dtype()
    return RuleResult(TensorInfo(x.shape, dtype))


@rule("Resizing", "CenterCrop", "RandomCrop")
def resize(call: LayerCall) -> RuleResult:
    x = call.input
    # Keras would read a rank-3 tensor as one unbatched image and replace the batch axis: refused here.
    call.require_rank(x, 4, what="batch of images")
    height, width = call.positive("height"), call.positive("width")
    out = list(x.shape)
    if call.data_format() == "channels_first":
        out[2], out[3] = height, width
    else:
        out[1], out[2] = height, width
    return RuleResult(TensorInfo(tuple(out), call.dtype()))


@rule("TextVectorization")
def text_vectorization(call: LayerCall) -> RuleResult | None:
    """Strings to token indices (``output_mode: int``) or to one vector per text (``tf_idf``).

    What the model computes when it runs, which is not always Keras' symbolic shape:

    - ``int``: ``(batch, output_sequence_length)``, or ``(batch, None)`` without it (each batch
      padded to its longest text), int64.
    - ``tf_idf`` on a ``(batch,)`` input: ``(batch, size)``, float32, where size is ``max_tokens`` with
      ``pad_to_max_tokens: true``, else the vocabulary's size plus the out-of-vocabulary index
      (unknown without an inline vocabulary: the layer is adapted later).
    - Left to Keras (unknown shape): ``multi_hot`` and ``count`` (Keras says float32; they return
      int64 when they run), non-int modes on a ``(batch, 1)`` input (Keras says ``(batch, 1, size)``;
      they return ``(batch, size)``), ``split: null``, and ragged or sparse outputs.

    The input is a string tensor of shape ``(batch,)`` or ``(batch, 1)``: Keras builds the layer on
    any other shape, and the model fails on its first batch.
    """
    x = call.input
    if x.dtype != "string":
        raise ShapeError(f"TextVectorization tokenizes strings; its input {x} holds {x.dtype}",
                         hint="give the input dtype: string", code="dtype-mismatch")
    if x.rank > 2 or (x.rank == 2 and x.shape[1] not in (None, 1)):
        raise ShapeError(f"TextVectorization takes one string per example, shape (batch,) or (batch, 1); "
                         f"got {x}", hint="give the input shape: [] or shape: [1]")
    mode = call.args.get("output_mode", "int")
    if call.args.get("split", "whitespace") is None:
        return None
    if mode == "int":
        length = call.args.get("output_sequence_length")
        if length is None and call.args.get("ragged"):
            return None  # a ragged tensor
        if length is not None:
            length = call.positive("output_sequence_length")
        return RuleResult(TensorInfo((x.shape[0], length), "int64"))
    if mode != "tf_idf" or x.rank != 1 or call.args.get("sparse"):
        return None
    max_tokens = call.args.get("max_tokens")
    vocabulary = call.args.get("vocabulary")
    size = None
    if isinstance(vocabulary, list) and vocabulary:
        size = len(vocabulary) + (0 if vocabulary[0] == "[UNK]" else 1)
        if max_tokens is not None and size > max_tokens:
            raise ArgumentError(f"TextVectorization: the vocabulary holds {size} tokens with the out-of-vocabulary "
                                f"one, more than max_tokens: {max_tokens}", argument="max_tokens")
    if call.args.get("pad_to_max_tokens") and max_tokens is not None:
        size = call.positive("max_tokens")
    return RuleResult(TensorInfo((x.shape[0], size), "float32"))
