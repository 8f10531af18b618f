"""Rules for image preprocessing and augmentation layers (Resizing, CenterCrop, RandomCrop, RandomFlip, ...)."""

from __future__ import annotations

from graphspec.infer.rules import rule
from graphspec.infer.tensor import LayerCall, RuleResult, TensorInfo

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
