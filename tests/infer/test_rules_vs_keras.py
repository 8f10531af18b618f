"""One harness over every shape rule: the inferred shapes, dtypes and parameter counts equal Keras' own.

For each layer type in ``graphspec.infer.rules.RULES`` the harness takes hand-written
configurations (``CASES``) and, where the inputs are many, configurations drawn by
Hypothesis (``STRATEGIES``). Each configuration is inferred in pure Python, then the
same layer is built by Keras on ``keras.Input`` tensors of the same shapes, and the two
are compared: output shape(s), output dtype(s), ``count_params()`` and the trainable /
non-trainable weight counts. A rule must raise :class:`ShapeError` exactly where Keras
refuses to build the layer (drawn configurations include invalid ones on purpose).

A registered rule without any configuration here fails the test.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphspec.catalogue import catalogue
from graphspec.emit import settle_frozen
from graphspec.infer import RULES, TensorInfo, infer_layer
from graphspec.infer.tensor import ShapeError


# --------------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class T:
    """A model input: shape without the batch axis, dtype, optional fixed batch size."""

    shape: tuple
    dtype: str = "float32"
    batch: int | None = None

    def info(self) -> TensorInfo:
        return TensorInfo((self.batch, *self.shape), self.dtype)


def t(*shape, dtype: str = "float32", batch: int | None = None) -> T:
    return T(tuple(shape), dtype, batch)


InputSpec = Union[T, list, dict]


@dataclass
class Case:
    args: dict[str, Any]
    inputs: InputSpec
    call: dict[str, Any] = field(default_factory=dict)
    error: bool = False
    """True: both the rule and Keras must refuse this configuration."""
    stricter: str | None = None
    """Why the rule refuses a configuration that Keras builds (but that cannot work as a model layer)."""

    def __repr__(self) -> str:  # shown by pytest and hypothesis on failure
        return (f"Case(args={self.args}, inputs={self.inputs}, call={self.call}, error={self.error}"
                + (f", stricter={self.stricter!r})" if self.stricter else ")"))


def case(inputs: InputSpec, call: dict | None = None, error: bool = False, stricter: str | None = None,
         **args) -> Case:
    return Case(args, inputs, call or {}, error, stricter)


def conv_cases(rank: int, *, transpose: bool = False, **base) -> list[Case]:
    sp = (9, 8, 7)[:rank]
    cases = [
        case(t(*sp, 3), **base, kernel_size=3),
        case(t(*sp, 3), **base, kernel_size=[2] * rank, strides=2, padding="same"),
        case(t(*sp, 4), **base, kernel_size=3, dilation_rate=2),
        case(t(4, *sp), **base, kernel_size=2, data_format="channels_first", use_bias=False),
        case(t(*(None,) * rank, 2), **base, kernel_size=3, strides=2),
        case(t(*sp, 3, dtype="int32"), **base, kernel_size=1, dtype="mixed_float16"),
        case(t(*sp, 3), **base, kernel_size=1, trainable=False),
        case(t(*sp), **base, kernel_size=3, error=True),                # missing channel axis
        case(t(*sp, None), **base, kernel_size=3, error=True),          # unknown channels
    ]
    if not transpose:  # a transposed convolution grows its input: any window fits
        cases.append(case(t(*sp, 3), **base, kernel_size=20, error=True))
    return cases


def pool_cases(rank: int) -> list[Case]:
    sp = (9, 8, 7)[:rank]
    return [
        case(t(*sp, 3), pool_size=2),
        case(t(*sp, 3), pool_size=3, strides=1, padding="same"),
        case(t(3, *sp), pool_size=2, strides=[1] * rank, data_format="channels_first"),
        case(t(*(None,) * rank, 5), pool_size=2),
        case(t(*sp, 3, dtype="float16"), pool_size=2, dtype="float64"),
        case(t(*sp, 3), pool_size=10, error=True),
        case(t(*sp), pool_size=2, error=True),
    ]


def global_pool_cases(rank: int) -> list[Case]:
    sp = (6, 5, 4)[:rank]
    return [
        case(t(*sp, 3)),
        case(t(*sp, 3), keepdims=True),
        case(t(3, *sp), data_format="channels_first"),
        case(t(3, *sp), data_format="channels_first", keepdims=True),
        case(t(*(None,) * rank, 7)),
        case(t(*sp, 3), dtype="float16"),
        case(t(*sp), error=True),
    ]


SEQ = t(10, 6)
AT_RUN = "Keras builds it, but the model fails when it runs (checked by hand with model.predict)"
SIGFPE = ("Keras builds it, but TensorFlow's kernel kills the process (SIGFPE) when it runs, or needs the sizes "
          "known to run at all (checked by hand)")

CASES: dict[str, list[Case]] = {
    # core -------------------------------------------------------------------------------
    "Dense": [
        case(t(5), units=3),
        case(t(5), units=3, use_bias=False),
        case(t(4, 6, 5), units=7),                    # applied to the last axis of a 4-D map
        case(t(None, 5), units=2),
        case(t(5, dtype="int32"), units=3),
        case(t(5), units=3, dtype="mixed_float16"),
        case(t(5), units=3, dtype="float64"),
        case(t(5), units=3, trainable=False),
        case(t(6), units=4, lora_rank=2),
        case(t(None), units=3, error=True),
        case(t(), units=3, error=True),
        case([t(5)], units=3, error=True),
        case(t(5, dtype="string"), units=3, stricter="Keras builds it on a string tensor, but cannot run it"),
    ],
    "EinsumDense": [
        case(t(5), equation="ab,bc->ac", output_shape=4, bias_axes="c"),
        case(t(6, 5), equation="abc,cd->abd", output_shape=[6, 4]),
        case(t(None, 5), equation="abc,cd->abd", output_shape=[None, 4], bias_axes="d"),
        case(t(6, 5), equation="abc,cde->abde", output_shape=[6, 2, 3], bias_axes="de"),
        case(t(6, 5), equation="...b,bc->...c", output_shape=4, bias_axes="c"),
        case(t(3, 6, 5), equation="...bc,cd->...bd", output_shape=[6, 2]),
        case(t(6, 5), equation="ab...,bc->ac...", output_shape=[3]),
        case(t(6, 5), equation="abc,cd->abd", output_shape=[6, 4], lora_rank=2, bias_axes="d"),
        case(t(6, 5), equation="abc,cd->abd", output_shape=[7, 4], error=True),
        case(t(6, 5), equation="abc,cd->abd", output_shape=[6, 4], bias_axes="x", error=True),
        case(t(5), equation="abc,cd->abd", output_shape=[6, 4], error=True),
    ],
    "Embedding": [
        case(t(12, dtype="int32"), input_dim=100, output_dim=8),
        case(t(None, dtype="int32"), input_dim=50, output_dim=4, mask_zero=True),
        case(t(3, 4, dtype="int64"), input_dim=10, output_dim=2),
        case(t(7, dtype="int32"), input_dim=10, output_dim=2, dtype="float16"),
        case(t(7, dtype="int32"), input_dim=20, output_dim=6, lora_rank=3),
        case(t(7), input_dim=10, output_dim=2),
    ],
    "Activation": [case(t(4, 3), activation="relu"), case(t(4, dtype="int32"), activation="softmax"),
                   case(t(4), activation="tanh", dtype="float16")],
    "ReLU": [case(t(4, 3)), case(t(4), max_value=6.0), case(t(4, dtype="int32"))],
    "LeakyReLU": [case(t(4, 3)), case(t(4), negative_slope=0.1, dtype="float64")],
    "ELU": [case(t(4, 3)), case(t(None, 2), alpha=0.5)],
    "Softmax": [case(t(4, 3)), case(t(4, 3), axis=1), case(t(4, 3), axis=-2, dtype="float16")],
    "PReLU": [
        case(t(4, 3)),
        case(t(5, 5, 3), shared_axes=[1, 2]),
        case(t(None, 3), shared_axes=[1]),
        case(t(6), dtype="float16"),
        case(t(6), trainable=False),
        case(t(None, 3), error=True),
    ],
    "Dropout": [case(t(4), rate=0.5), case(t(4, 3, dtype="int32"), rate=0.1),
                case(t(4), rate=0.5, noise_shape=[None, 1])],
    "SpatialDropout1D": [case(t(5, 3), rate=0.2), case(t(None, 3), rate=0.2), case(t(5), rate=0.2, error=True)],
    "SpatialDropout2D": [case(t(5, 4, 3), rate=0.2), case(t(3, 5, 4), rate=0.2, data_format="channels_first"),
                         case(t(5, 3), rate=0.2, error=True)],
    "SpatialDropout3D": [case(t(5, 4, 3, 2), rate=0.2), case(t(4, 3), rate=0.2, error=True)],
    "GaussianDropout": [case(t(4), rate=0.3), case(t(4, 2), rate=0.3, dtype="float16")],
    "GaussianNoise": [case(t(4), stddev=0.3), case(t(4, 2, dtype="int32"), stddev=0.1)],
    "AlphaDropout": [case(t(4), rate=0.3), case(t(2, 2), rate=0.1, noise_shape=[None, 2, 2])],
    "ActivityRegularization": [case(t(4), l1=0.01), case(t(3, 4), l2=0.1)],
    "Identity": [case(t(4)), case(t(4, 2, dtype="int32")), case(t(3), dtype="float16")],
    "Masking": [case(t(5, 3)), case(t(None, 3), mask_value=-1.0)],
    "Rescaling": [case(t(8, 8, 3), scale=1 / 255), case(t(8, dtype="int32"), scale=2.0, offset=-1.0),
                  case(t(4), scale=0.5, dtype="float16")],
    "Normalization": [
        case(t(5)),
        case(t(4, 3), axis=None),
        case(t(4, 3), axis=1),
        case(t(4, 3, 2), axis=[1, 3]),
        case(t(3), mean=[0.0, 1.0, 2.0], variance=[1.0, 1.0, 1.0]),
        case(t(3), mean=0.5, variance=2.0),
        case(t(None, 3), axis=1, error=True),
    ],
    # reshaping ----------------------------------------------------------------------------
    "Flatten": [case(t(4, 5, 3)), case(t(5)), case(t(None, 3)), case(t(3, 4, dtype="int32")),
                case(t(3, dtype="string")),
                case(t(2, 3, 4), data_format="channels_first"), case(t(2, 3), dtype="float16")],
    "Reshape": [
        case(t(12), target_shape=[3, 4]),
        case(t(12), target_shape=[-1, 2]),
        case(t(2, 3, 4), target_shape=[6, -1]),
        case(t(None, 4), target_shape=[-1, 2]),
        case(t(None, 4), target_shape=[2, 2, 3]),
        case(t(12, dtype="int32"), target_shape=[4, 3]),
        case(t(12), target_shape=[5, 2], error=True),
        case(t(12), target_shape=[-1, 5], error=True),
    ],
    "Permute": [case(t(3, 4), dims=[2, 1]), case(t(2, 3, 4), dims=[3, 1, 2]),
                case(t(2, 3, dtype="int32"), dims=[2, 1]), case(t(2, 3, 4), dims=[2, 1], error=True)],
    "RepeatVector": [case(t(5), n=3), case(t(None), n=2), case(t(5, dtype="int32"), n=2),
                     case(t(4, 5), n=2, error=True)],
    # normalization ------------------------------------------------------------------------
    "BatchNormalization": [
        case(t(5)),
        case(t(6, 6, 3)),
        case(t(3, 6, 6), axis=1),
        case(t(5), center=False),
        case(t(5), scale=False, center=False),
        case(t(5), renorm=True),
        case(t(5), trainable=False),
        case(t(5), dtype="mixed_float16"),
        case(t(None), error=True),
    ],
    "LayerNormalization": [
        case(t(5)),
        case(t(4, 5)),
        case(t(4, 5), axis=[1, 2]),
        case(t(4, 5), axis=1, center=False),
        case(t(4, 5), scale=False),
        case(t(None, 5)),
        case(t(None, 5), axis=1, error=True),
    ],
    "GroupNormalization": [
        case(t(6, 6, 32)),
        case(t(10, 8), groups=4),
        case(t(8, 10), groups=2, axis=1),
        case(t(6), groups=-1),
        case(t(6), groups=3, center=False),
        case(t(6), groups=4, error=True),
        case(t(6), groups=12, error=True),
    ],
    "UnitNormalization": [case(t(5)), case(t(4, 5), axis=[1, 2]), case(t(4, 5), axis=1)],
    "RMSNormalization": [case(t(5)), case(t(4, 5), axis=1), case(t(4, 5), axis=[1, 2])],
    # recurrent ----------------------------------------------------------------------------
    "SimpleRNN": [case(SEQ, units=4), case(SEQ, units=4, return_sequences=True),
                  case(SEQ, units=4, return_state=True), case(t(None, 3), units=2, use_bias=False),
                  case(t(5), units=2, error=True)],
    "GRU": [
        case(SEQ, units=4),
        case(SEQ, units=4, reset_after=False),
        case(SEQ, units=4, return_sequences=True, return_state=True),
        case(t(None, 3), units=5, use_bias=False),
        case(t(None, 3), units=5, dtype="float16"),
        case(t(6, 3, 2), units=2, error=True),
        case({"sequences": SEQ, "initial_state": t(4)}, units=4, return_sequences=True),
    ],
    "LSTM": [
        case(SEQ, units=4),
        case(SEQ, units=4, return_sequences=True),
        case(SEQ, units=4, return_state=True),
        case(SEQ, units=4, return_sequences=True, return_state=True),
        case(t(None, 3), units=5, use_bias=False),
        case(t(None, 3), units=3, trainable=False),
        case(t(4, 3, batch=2), units=3, stateful=True),
        case(t(4, 3), units=3, unroll=True),
        case(t(4, 3), units=3, stateful=True, error=True),
        case(t(5), units=2, error=True),
        case(t(5, None), units=2, error=True),
    ],
    "RNN": [
        case(SEQ, cell={"type": "LSTMCell", "units": 4}),
        case(SEQ, cell={"type": "GRUCell", "units": 3, "reset_after": False}, return_sequences=True),
        case(SEQ, cell={"type": "SimpleRNNCell", "units": 2}, return_state=True),
        case(SEQ, cell={"type": "LSTMCell", "units": 2}, return_state=True, return_sequences=True),
    ],
    "Bidirectional": [
        case(SEQ, layer={"type": "LSTM", "units": 4}),
        case(SEQ, layer={"type": "LSTM", "units": 4, "return_sequences": True}, merge_mode="sum"),
        case(SEQ, layer={"type": "GRU", "units": 3}, merge_mode="mul"),
        case(SEQ, layer={"type": "SimpleRNN", "units": 3}, merge_mode="ave"),
        case(SEQ, layer={"type": "LSTM", "units": 4}, merge_mode=None),
        case(SEQ, layer={"type": "LSTM", "units": 4, "return_state": True}),
        case(SEQ, layer={"type": "GRU", "units": 4, "return_state": True, "return_sequences": True}, merge_mode=None),
        case(SEQ, layer={"type": "LSTM", "units": 4},
             backward_layer={"type": "LSTM", "units": 4, "go_backwards": True}),
        case(SEQ, layer={"type": "LSTM", "units": 4, "trainable": False}),
        case(SEQ, layer={"type": "LSTM", "units": 4}, trainable=False),
        case(SEQ, layer={"type": "LSTM", "units": 4}, dtype="float16"),
        case(SEQ, layer={"type": "RNN", "cell": {"type": "GRUCell", "units": 2}}),
        case(t(5), layer={"type": "LSTM", "units": 4}, error=True),
    ],
    "TimeDistributed": [
        case(SEQ, layer={"type": "Dense", "units": 3}),
        case(t(5, 8, 8, 3), layer={"type": "Conv2D", "filters": 4, "kernel_size": 3}),
        case(t(None, 8, 8, 3), layer={"type": "MaxPooling2D", "pool_size": 2}),
        case(t(5, 8, 8, 3), layer={"type": "Flatten"}),
        case(t(5, 4, 2), layer={"type": "LSTM", "units": 3}),
        case(t(5, 4), layer={"type": "BatchNormalization"}),
        case(t(5, 4), layer={"type": "Dense", "units": 2, "dtype": "float16"}),
        case(t(5, 4), layer={"type": "Dense", "units": 2}, dtype="float16"),
        case(t(5), layer={"type": "Dense", "units": 3}, error=True),
        case(t(5, 4, 4), layer={"type": "Conv2D", "filters": 2, "kernel_size": 3}, error=True),
        case(t(None, 1), layer={"type": "MaxPooling1D", "pool_size": 2},
             stricter="Keras checks the wrapped layer's input rank only when the model runs"),
    ],
    # merging ------------------------------------------------------------------------------
    "Concatenate": [
        case([t(4), t(6)]),
        case([t(4, 3), t(4, 5), t(4, 1)]),
        case([t(4, 3), t(2, 3)], axis=1),
        case([t(None, 3), t(4, 3)], axis=-1),
        case([t(8, 8, 3), t(8, 8, 5)]),
        case([t(4, dtype="int32"), t(6)]),
        case([t(4)], axis=-1),
        case([t(15, 15, 8), t(16, 16, 8)], error=True),
        case([t(4, 3), t(4)], error=True),
    ],
    "Add": [case([t(4), t(4)]), case([t(4, 3), t(4, 3), t(4, 3)]), case([t(4, 1), t(4, 3)]),
            case([t(None, 3), t(5, 3)]), case([t(4, 3), t(3)]), case([t(4)]),
            case([t(4, dtype="int32"), t(4, dtype="int32")]),
            case([t(64), t(128)], error=True)],
    "Subtract": [case([t(4), t(4)]), case([t(4, 3), t(1, 3)]), case([t(4), t(4), t(4)], error=True),
                 case([t(4), t(5)], error=True)],
    "Multiply": [case([t(4), t(4)]), case([t(2, 4), t(2, 1)]), case([t(4), t(3)], error=True)],
    "Average": [case([t(4), t(4)]), case([t(2, 4), t(2, 4), t(2, 4)], dtype="float16")],
    "Maximum": [case([t(4), t(4)]), case([t(3, 4), t(3, 4)])],
    "Minimum": [case([t(4), t(4)]), case([t(3, 4), t(None, 4)])],
    "Dot": [
        case([t(5), t(5)], axes=1),
        case([t(5), t(5)], axes=-1, normalize=True),
        case([t(3, 4), t(5, 4)], axes=2),
        case([t(3, 4), t(4, 5)], axes=[2, 1]),
        case([t(3, 4), t(3, 5)], axes=1),
        case([t(5), t(6)], axes=1, error=True),
    ],
    # attention ----------------------------------------------------------------------------
    "MultiHeadAttention": [
        case({"query": t(6, 16), "value": t(6, 16)}, num_heads=2, key_dim=4),
        case({"query": t(6, 16), "value": t(9, 8)}, num_heads=3, key_dim=5, value_dim=7),
        case({"query": t(6, 16), "value": t(9, 8), "key": t(9, 12)}, num_heads=2, key_dim=4),
        case({"query": t(6, 16), "value": t(6, 16)}, num_heads=2, key_dim=4, use_bias=False),
        case({"query": t(6, 16), "value": t(6, 16)}, num_heads=2, key_dim=4, output_shape=10),
        case({"query": t(6, 16), "value": t(6, 16)}, num_heads=2, key_dim=4, output_shape=[2, 5]),
        case({"query": t(None, 16), "value": t(None, 16)}, num_heads=4, key_dim=8, use_gate=True),
        case({"query": t(6, 16), "value": t(6, 16)}, {"return_attention_scores": True}, num_heads=2, key_dim=4),
        case({"query": t(6, 16), "value": t(6, 16)}, {"use_causal_mask": True}, num_heads=2, key_dim=4),
        case({"query": t(3, 4, 8), "value": t(3, 4, 8)}, num_heads=2, key_dim=4, attention_axes=[2]),
        case({"query": t(6, 16), "value": t(6, 16)}, num_heads=2, key_dim=4, dtype="float16"),
        case({"query": t(6, 16), "value": t(9, 8), "key": t(8, 8)}, num_heads=2, key_dim=4, error=True),
        case({"query": t(6, 8), "value": t(3, 4, 8)}, num_heads=2, key_dim=2, stricter=AT_RUN),
        case({"query": t(8), "value": t(8)}, num_heads=2, key_dim=2, stricter=AT_RUN),
        case([t(6, 16), t(9, 8)], num_heads=2, key_dim=4),
        case([t(6, 16), t(9, 8), t(9, 4)], {"return_attention_scores": True}, num_heads=2, key_dim=4),
    ],
    "GroupQueryAttention": [
        case({"query": t(6, 16), "value": t(6, 16)}, head_dim=4, num_query_heads=4, num_key_value_heads=2),
        case({"query": t(6, 16), "value": t(9, 16), "key": t(9, 8)}, head_dim=3, num_query_heads=2,
             num_key_value_heads=1, use_bias=False),
        case({"query": t(6, 16), "value": t(9, 16)}, {"return_attention_scores": True}, head_dim=4,
             num_query_heads=2, num_key_value_heads=2),
        case({"query": t(6, 16), "value": t(6, 16)}, head_dim=4, num_query_heads=4, num_key_value_heads=2,
             use_gate=True),
        case({"query": t(6, 16), "value": t(6, 8)}, head_dim=4, num_query_heads=2, num_key_value_heads=1,
             error=True),
        case({"query": t(6, 8), "value": t(3, 4, 8)}, head_dim=2, num_query_heads=2, num_key_value_heads=1,
             stricter=AT_RUN),
    ],
    "Attention": [
        case([t(6, 8), t(9, 8)]),
        case([t(8), t(8)], {"return_attention_scores": True}),
        case([t(6, 8), t(9, 5)], stricter=AT_RUN),
        case([t(6, 8), t(9, 8), t(7, 8)], stricter=AT_RUN),
        case([t(6, 8), t(9, 5), t(9, 8)], use_scale=True),
        case([t(6, 8), t(9, 8)], {"return_attention_scores": True}, score_mode="concat"),
        case([t(6, 8), t(9, 8)], {"use_causal_mask": True}),
    ],
    "AdditiveAttention": [
        case([t(6, 8), t(9, 8)]),
        case([t(6, 8), t(9, 5)], stricter=AT_RUN),
        case([t(6, 8), t(9, 5), t(9, 8)], use_scale=False),
        case([t(6, 8), t(9, 8)], {"return_attention_scores": True}),
    ],
    # padding, cropping, upsampling ---------------------------------------------------------
    "ZeroPadding1D": [case(t(5, 3)), case(t(5, 3), padding=[1, 2]),
                      case(t(3, 5), padding=2, data_format="channels_first"),
                      case(t(None, 3), padding=1), case(t(5), error=True)],
    "ZeroPadding2D": [case(t(5, 4, 3)), case(t(5, 4, 3), padding=[1, 2]), case(t(5, 4, 3), padding=[[1, 0], [2, 3]]),
                      case(t(3, 5, 4), padding=2, data_format="channels_first"), case(t(5, 4), error=True)],
    "ZeroPadding3D": [case(t(5, 4, 3, 2)), case(t(5, 4, 3, 2), padding=[1, 2, 0]),
                      case(t(2, 5, 4, 3), padding=[[1, 0], [0, 1], [2, 2]], data_format="channels_first")],
    "Cropping1D": [case(t(5, 3)), case(t(5, 3), cropping=[0, 2]), case(t(None, 3), cropping=3),
                   case(t(4, 3), cropping=[2, 2], error=True)],
    "Cropping2D": [case(t(6, 5, 3)), case(t(6, 5, 3), cropping=1), case(t(6, 5, 3), cropping=[[1, 0], [2, 1]]),
                   case(t(3, 6, 5), cropping=[2, 1], data_format="channels_first"),
                   case(t(6, 5, 3), cropping=3, error=True)],
    "Cropping3D": [case(t(6, 5, 4, 2)), case(t(6, 5, 4, 2), cropping=[0, 1, 1]),
                   case(t(2, 6, 5, 4), cropping=[[1, 0], [2, 1], [0, 0]], data_format="channels_first"),
                   case(t(2, 5, 4, 2), error=True)],
    "UpSampling1D": [case(t(5, 3)), case(t(None, 3), size=3), case(t(5), error=True)],
    "UpSampling2D": [case(t(5, 4, 3)), case(t(5, 4, 3), size=[2, 3], interpolation="bilinear"),
                     case(t(3, 5, 4), size=2, data_format="channels_first"), case(t(None, None, 3))],
    "UpSampling3D": [case(t(5, 4, 3, 2)), case(t(5, 4, 3, 2), size=[1, 2, 3]),
                     case(t(2, 5, 4, 3), size=2, data_format="channels_first")],
}

IMAGE = t(8, 9, 3)
UNBATCHED = "Keras reads a rank-3 tensor as one unbatched image, so the batch axis would be taken for the height"
AUGMENTATIONS = {
    "RandomFlip": {}, "RandomRotation": {"factor": 0.1}, "RandomZoom": {"height_factor": 0.1},
    "RandomContrast": {"factor": 0.1}, "RandomTranslation": {"height_factor": 0.1, "width_factor": 0.1},
    "RandomBrightness": {"factor": 0.1}, "RandomHue": {"factor": 0.1}, "RandomSaturation": {"factor": 0.1},
    "RandomSharpness": {"factor": 0.1}, "RandomGrayscale": {}, "RandomColorDegeneration": {"factor": 0.1},
    "RandomColorJitter": {}, "RandomInvert": {}, "RandomPosterization": {"factor": [1, 4]}, "AutoContrast": {},
    "Equalization": {}, "Solarization": {}, "RandomGaussianBlur": {}, "RandomShear": {"x_factor": 0.1},
    "RandomPerspective": {}, "RandomErasing": {}, "RandomElasticTransform": {}, "AugMix": {}, "RandAugment": {},
    "CutMix": {}, "MixUp": {}, "ContrastLimitedAdaptiveHistogramEqualization": {},
}
for _name, _args in AUGMENTATIONS.items():
    CASES[_name] = [case(IMAGE, **_args), case(t(None, None, 3, dtype="int32"), **_args),
                    case(IMAGE, **_args, dtype="float16"), case(t(3, 8, 9), **_args, data_format="channels_first"),
                    case(t(8, 9), **_args, stricter=UNBATCHED)]
CASES["RandomColorDegeneration"][-1] = case(t(8, 9), factor=0.1, error=True)
for _name in ("Resizing", "CenterCrop", "RandomCrop"):
    CASES[_name] = [case(IMAGE, height=5, width=6), case(t(None, None, 3, dtype="uint8"), height=4, width=4),
                    case(t(3, 8, 9), height=5, width=6, data_format="channels_first"),
                    case(IMAGE, height=5, width=6, dtype="float16"),
                    case(t(8, 9), height=5, width=6, stricter=UNBATCHED)]
CASES["Resizing"] += [case(IMAGE, height=16, width=20, interpolation="nearest", crop_to_aspect_ratio=True)]
_VOCAB = ["the", "cat", "sat"]
_TEXT = "Keras builds it; the model fails on its first batch (one string per example)"
CASES["TextVectorization"] = [
    case(t(dtype="string"), vocabulary=_VOCAB, output_sequence_length=6),
    case(t(1, dtype="string"), vocabulary=_VOCAB, output_sequence_length=6),
    case(t(None, dtype="string"), max_tokens=100, output_sequence_length=4, ngrams=2),
    case(t(1, dtype="string"), vocabulary=_VOCAB),                            # (batch, None): the longest text
    case(t(dtype="string"), vocabulary=_VOCAB, output_mode="tf_idf", idf_weights=[1.0, 2.0, 3.0]),
    case(t(dtype="string"), max_tokens=50, output_mode="tf_idf", pad_to_max_tokens=True),
    case(t(dtype="string"), output_mode="tf_idf", max_tokens=50),             # adapted later: size unknown
    case(t(3, dtype="string"), vocabulary=_VOCAB, output_sequence_length=6, stricter=_TEXT),
    case(t(2, 3, dtype="string"), vocabulary=_VOCAB, output_sequence_length=6, stricter=_TEXT),
    case(t(1, dtype="float32"), vocabulary=_VOCAB, output_sequence_length=6,
         stricter="Keras builds it on numbers; tokenizing fails on the first batch"),
    case(t(dtype="string"), vocabulary=_VOCAB, output_mode="tf_idf", idf_weights=[1.0, 2.0, 3.0], max_tokens=2,
         error=True),
]
for _rank in (1, 2, 3):
    for _name in (f"AdaptiveAveragePooling{_rank}D", f"AdaptiveMaxPooling{_rank}D"):
        CASES[_name] = [case(t(*(9, 8, 7)[:_rank], 3), output_size=2),
                        case(t(3, *(9, 8, 7)[:_rank]), output_size=[4, 3, 2][:_rank], data_format="channels_first")]
        if "Max" in _name:  # TensorFlow's kernel divides by zero (SIGFPE) where a window outgrows its axis
            CASES[_name] += [case(t(*(None,) * _rank, 3), output_size=3, stricter=SIGFPE),
                             case(t(*(9, 8, 7)[:_rank], 3), output_size=1, stricter=SIGFPE),
                             case(t(1, *(8, 7)[:_rank - 1], 3), output_size=2, stricter=SIGFPE)]
        else:
            CASES[_name] += [case(t(*(None,) * _rank, 3), output_size=3), case(t(1, *(8, 7)[:_rank - 1], 3),
                                                                             output_size=1)]
    _seq = t(4, *(7, 6, 5)[:_rank], 3)
    CASES[f"ConvLSTM{_rank}D"] = [
        case(_seq, filters=2, kernel_size=3),
        case(_seq, filters=2, kernel_size=3, padding="same", return_sequences=True),
        case(_seq, filters=3, kernel_size=2, strides=2, return_state=True, use_bias=False),
        case(t(None, 3, *(7, 6, 5)[:_rank]), filters=2, kernel_size=3, data_format="channels_first",
             return_sequences=True, return_state=True),
        case(t(4, *(None,) * _rank, 3), filters=2, kernel_size=3, error=True),
        case(t(4, *(2, 2, 2)[:_rank], 3), filters=2, kernel_size=3, error=True),
    ]
CASES["Bidirectional"] += [case(t(4, 7, 6, 3), layer={"type": "ConvLSTM2D", "filters": 2, "kernel_size": 3})]

for _rank in (1, 2, 3):
    CASES[f"Conv{_rank}D"] = conv_cases(_rank, filters=4)
    CASES[f"Conv{_rank}DTranspose"] = conv_cases(_rank, transpose=True, filters=4)
    CASES[f"MaxPooling{_rank}D"] = pool_cases(_rank)
    CASES[f"AveragePooling{_rank}D"] = pool_cases(_rank)
    CASES[f"GlobalMaxPooling{_rank}D"] = global_pool_cases(_rank)
    CASES[f"GlobalAveragePooling{_rank}D"] = global_pool_cases(_rank)
for _rank in (1, 2):
    CASES[f"DepthwiseConv{_rank}D"] = conv_cases(_rank, depth_multiplier=2)
    CASES[f"SeparableConv{_rank}D"] = conv_cases(_rank, filters=4, depth_multiplier=2)
CASES["Conv1D"] += [case(t(9, 3), filters=2, kernel_size=3, padding="causal", dilation_rate=2),
                    case(t(9, 4), filters=6, kernel_size=3, groups=2),
                    case(t(9, 4), filters=6, kernel_size=3, groups=4, error=True)]
CASES["Conv2D"] += [case(t(5), filters=2, kernel_size=3, error=True),                 # a (batch, features) tensor
                    case(t(8, 8, 4), filters=4, kernel_size=3, groups=4),
                    case(t(8, 8, 3), filters=2, kernel_size=3, padding="causal", error=True),
                    case(t(8, 8, 3), filters=2, kernel_size=3, strides=2, dilation_rate=2, error=True)]
CASES["Conv2DTranspose"] += [case(t(5, 5, 3), filters=2, kernel_size=3, strides=2, output_padding=1),
                             case(t(5, 5, 3), filters=2, kernel_size=4, strides=2, padding="same", output_padding=1),
                             case(t(5, 5, 3), filters=2, kernel_size=3, strides=2, output_padding=2, error=True)]
CASES["DepthwiseConv1D"] += [case(t(9, 3), kernel_size=3, padding="causal", error=True)]


# --------------------------------------------------------------------------------------------
# Hypothesis strategies (layer types with many inputs: sizes, strides, paddings, formats)
# --------------------------------------------------------------------------------------------

SIZE = st.one_of(st.integers(1, 12), st.none())
SMALL = st.integers(1, 4)


def _ints(rank: int, elements) -> st.SearchStrategy:
    return st.one_of(elements, st.lists(elements, min_size=rank, max_size=rank))


@st.composite
def feature_map(draw, rank: int, channels=st.integers(1, 6)):
    first = draw(st.booleans())
    spatial = draw(st.lists(SIZE, min_size=rank, max_size=rank))
    c = draw(channels)
    shape = (c, *spatial) if first else (*spatial, c)
    return t(*shape), ({"data_format": "channels_first"} if first else
                       draw(st.sampled_from([{}, {"data_format": "channels_last"}])))


@st.composite
def conv_configs(draw, layer: str):
    rank = int(re.search(r"(\d)D", layer).group(1))
    x, fmt = draw(feature_map(rank))
    args: dict[str, Any] = dict(fmt)
    args["kernel_size"] = draw(_ints(rank, st.integers(1, 5)))
    args["strides"] = draw(_ints(rank, st.integers(1, 3)))
    if draw(st.booleans()):
        args["dilation_rate"] = draw(_ints(rank, st.integers(1, 2)))
    paddings = ["valid", "same"] + (["causal"] if rank == 1 else [])
    args["padding"] = draw(st.sampled_from(paddings))
    args["use_bias"] = draw(st.booleans())
    if layer.startswith(("Conv", "Separable")):
        args["filters"] = draw(st.integers(1, 6))
    if layer.startswith(("Depthwise", "Separable")):
        args["depth_multiplier"] = draw(SMALL)
    if layer.startswith("Conv") and "Transpose" not in layer and draw(st.booleans()):
        args["groups"] = draw(st.integers(1, 3))
    if "Transpose" in layer and draw(st.booleans()):
        args["output_padding"] = draw(_ints(rank, st.integers(0, 2)))
    return Case(args, x)


@st.composite
def pool_configs(draw, layer: str):
    rank = int(layer[-2])
    x, fmt = draw(feature_map(rank))
    args: dict[str, Any] = dict(fmt)
    args["pool_size"] = draw(_ints(rank, st.integers(1, 4)))
    if draw(st.booleans()):
        args["strides"] = draw(_ints(rank, st.integers(1, 3)))
    args["padding"] = draw(st.sampled_from(["valid", "same"]))
    return Case(args, x)


@st.composite
def global_pool_configs(draw, layer: str):
    rank = int(layer[-2])
    x, fmt = draw(feature_map(rank, channels=st.one_of(st.integers(1, 6), st.none())))
    return Case({**fmt, "keepdims": draw(st.booleans())}, x)


@st.composite
def pad_crop_configs(draw, layer: str):
    rank = int(layer[-2])
    name = "cropping" if layer.startswith("Cropping") else "padding"
    has_format = rank > 1 or layer == "ZeroPadding1D"
    if has_format:
        x, args = draw(feature_map(rank))
        args = dict(args)
    else:
        x, args = t(draw(SIZE), draw(SMALL)), {}
    amount = st.integers(0, 4)
    if rank == 1:
        args[name] = draw(st.one_of(amount, st.lists(amount, min_size=2, max_size=2)))
    else:
        args[name] = draw(st.one_of(amount, st.lists(amount, min_size=rank, max_size=rank),
                                    st.lists(st.lists(amount, min_size=2, max_size=2), min_size=rank, max_size=rank)))
    return Case(args, x)


@st.composite
def upsampling_configs(draw, layer: str):
    rank = int(layer[-2])
    if rank == 1:
        return Case({"size": draw(SMALL)}, t(draw(SIZE), draw(SMALL)))
    x, fmt = draw(feature_map(rank))
    return Case({**fmt, "size": draw(_ints(rank, SMALL))}, x)


@st.composite
def dense_configs(draw, layer: str):
    shape = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
    if draw(st.booleans()) and len(shape) > 1:
        shape[0] = None
    return Case({"units": draw(st.integers(1, 8)), "use_bias": draw(st.booleans())}, t(*shape))


@st.composite
def elementwise_configs(draw, layer: str):
    count = 2 if layer == "Subtract" else draw(st.integers(2, 3))
    dims = st.sampled_from([1, 3, 4, None])
    shapes = [draw(st.lists(dims, min_size=0, max_size=3)) for _ in range(count)]
    return Case({}, [t(*s) for s in shapes])


@st.composite
def concatenate_configs(draw, layer: str):
    rank = draw(st.integers(1, 3))
    base = draw(st.lists(st.sampled_from([2, 3, None]), min_size=rank, max_size=rank))
    axis = draw(st.integers(-rank, rank))
    shapes = []
    for _ in range(draw(st.integers(2, 3))):
        shape = list(base)
        for i in range(rank):
            if draw(st.integers(0, 4)) == 0:  # sometimes differ, on the axis or elsewhere
                shape[i] = draw(st.sampled_from([1, 2, 5, None]))
        shapes.append(t(*shape))
    return Case({"axis": axis}, shapes)


@st.composite
def reshape_configs(draw, layer: str):
    shape = draw(st.lists(st.sampled_from([1, 2, 3, 4, 6, None]), min_size=1, max_size=3))
    known = [d for d in shape if d is not None]
    if draw(st.integers(0, 3)) == 0 or not known:  # arbitrary targets: mostly refused
        factors = draw(st.lists(st.sampled_from([1, 2, 3, 4, 6, 12]), min_size=1, max_size=3))
    else:  # a regrouping of the input's size: accepted
        total = math.prod(known)
        factors = []
        while total > 1 and len(factors) < 3:
            divisors = [d for d in range(2, total + 1) if total % d == 0]
            d = draw(st.sampled_from(divisors))
            factors.append(d)
            total //= d
        factors = factors or [1]
        factors[-1] *= total
        factors = draw(st.permutations(factors))
    factors = list(factors)
    if draw(st.booleans()):
        factors[draw(st.integers(0, len(factors) - 1))] = -1
    return Case({"target_shape": factors}, t(*shape))


@st.composite
def dot_configs(draw, layer: str):
    r1, r2 = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    a = draw(st.lists(st.sampled_from([2, 3]), min_size=r1, max_size=r1))
    b = draw(st.lists(st.sampled_from([2, 3]), min_size=r2, max_size=r2))
    axes = draw(st.one_of(st.integers(1, 3), st.integers(-1, -1),
                          st.tuples(st.integers(1, r1), st.integers(1, r2)).map(list)))
    return Case({"axes": axes}, [t(*a), t(*b)])


@st.composite
def recurrent_configs(draw, layer: str):
    args: dict[str, Any] = {"units": draw(st.integers(1, 6)), "return_sequences": draw(st.booleans()),
                            "return_state": draw(st.booleans()), "use_bias": draw(st.booleans())}
    if layer == "GRU":
        args["reset_after"] = draw(st.booleans())
    rank = 3 if draw(st.integers(0, 4)) else draw(st.sampled_from([2, 4]))  # mostly sequences
    shape = [draw(SIZE)] + [draw(SMALL) for _ in range(rank - 2)]
    return Case(args, t(*shape))


@st.composite
def bidirectional_configs(draw, layer: str):
    inner = {"type": draw(st.sampled_from(["LSTM", "GRU", "SimpleRNN"])), "units": draw(st.integers(1, 5)),
             "return_sequences": draw(st.booleans()), "return_state": draw(st.booleans())}
    args: dict[str, Any] = {"layer": inner, "merge_mode": draw(st.sampled_from(["concat", "sum", "mul", "ave", None]))}
    if draw(st.integers(0, 3)) == 0:
        args["backward_layer"] = {**inner, "units": inner["units"], "go_backwards": True}
    return Case(args, t(draw(SIZE), draw(SMALL)))


@st.composite
def time_distributed_configs(draw, layer: str):
    inner = draw(st.sampled_from([
        {"type": "Dense", "units": 3}, {"type": "Conv1D", "filters": 2, "kernel_size": 2},
        {"type": "MaxPooling1D", "pool_size": 2}, {"type": "Flatten"}, {"type": "Dropout", "rate": 0.1},
        {"type": "GlobalAveragePooling1D"}, {"type": "Embedding", "input_dim": 10, "output_dim": 3},
    ]))
    # Keras checks the wrapped layer's input rank only when the model runs: give it the rank it takes.
    per_step = 2 if inner["type"].endswith("1D") else draw(st.integers(1, 3))
    shape = [draw(SIZE)] + [draw(st.integers(1, 5)) for _ in range(per_step)]
    return Case({"layer": inner}, t(*shape))


@st.composite
def mha_configs(draw, layer: str):
    rank = draw(st.sampled_from([3, 3, 4]))
    q = [draw(SIZE) for _ in range(rank - 2)] + [draw(st.integers(1, 8))]
    v = [draw(SIZE) for _ in range(rank - 2)] + [draw(st.integers(1, 8))]
    inputs: dict[str, T] = {"query": t(*q), "value": t(*v)}
    if draw(st.booleans()):
        inputs["key"] = t(*v[:-1], draw(st.integers(1, 8)))
    args: dict[str, Any] = {"num_heads": draw(st.integers(1, 3)), "key_dim": draw(st.integers(1, 4)),
                            "use_bias": draw(st.booleans())}
    if draw(st.booleans()):
        args["value_dim"] = draw(st.integers(1, 4))
    if draw(st.booleans()):
        args["output_shape"] = draw(st.one_of(st.integers(1, 5), st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    if rank == 4 and draw(st.booleans()):
        args["attention_axes"] = draw(st.sampled_from([[1], [2], [1, 2]]))
    if draw(st.booleans()):
        args["use_gate"] = True
    return Case(args, inputs, {"return_attention_scores": draw(st.booleans())})


@st.composite
def norm_configs(draw, layer: str):
    shape = [draw(st.sampled_from([1, 2, 3, 4, 6, 8, None])) for _ in range(draw(st.integers(1, 3)))]
    rank = len(shape) + 1
    args: dict[str, Any] = {"center": draw(st.booleans()), "scale": draw(st.booleans())}
    if layer == "LayerNormalization" and draw(st.booleans()):
        args["axis"] = sorted(set(draw(st.lists(st.integers(1, rank - 1), min_size=1, max_size=rank - 1))))
    else:
        args["axis"] = draw(st.integers(-rank, rank - 1).filter(lambda a: a % rank != 0))
    if layer == "GroupNormalization":
        args["groups"] = draw(st.sampled_from([1, 2, 3, 4, -1]))
    return Case(args, t(*shape))


@st.composite
def embedding_configs(draw, layer: str):
    shape = [draw(SIZE) for _ in range(draw(st.integers(0, 3)))]
    args = {"input_dim": draw(st.integers(1, 50)), "output_dim": draw(st.integers(1, 8)),
            "mask_zero": draw(st.booleans())}
    return Case(args, t(*shape, dtype=draw(st.sampled_from(["int32", "int64"]))))


@st.composite
def permute_configs(draw, layer: str):
    shape = [draw(SIZE) for _ in range(draw(st.integers(1, 4)))]
    dims = draw(st.permutations(list(range(1, len(shape) + 1))))
    return Case({"dims": list(dims)}, t(*shape))


STRATEGIES: dict[str, tuple[Any, int]] = {}
for _name in ("LSTM", "GRU", "SimpleRNN"):
    STRATEGIES[_name] = (recurrent_configs(_name), 15)
STRATEGIES["Bidirectional"] = (bidirectional_configs("Bidirectional"), 20)
STRATEGIES["TimeDistributed"] = (time_distributed_configs("TimeDistributed"), 20)
STRATEGIES["MultiHeadAttention"] = (mha_configs("MultiHeadAttention"), 25)
for _name in ("BatchNormalization", "LayerNormalization", "GroupNormalization"):
    STRATEGIES[_name] = (norm_configs(_name), 20)
STRATEGIES["Embedding"] = (embedding_configs("Embedding"), 15)
STRATEGIES["Permute"] = (permute_configs("Permute"), 10)
for _rank in (1, 2, 3):
    for _name in (f"Conv{_rank}D", f"Conv{_rank}DTranspose"):
        STRATEGIES[_name] = (conv_configs(_name), 80)
    for _name in (f"MaxPooling{_rank}D", f"AveragePooling{_rank}D"):
        STRATEGIES[_name] = (pool_configs(_name), 50)
    for _name in (f"GlobalMaxPooling{_rank}D", f"GlobalAveragePooling{_rank}D"):
        STRATEGIES[_name] = (global_pool_configs(_name), 15)
    for _name in (f"ZeroPadding{_rank}D", f"Cropping{_rank}D"):
        STRATEGIES[_name] = (pad_crop_configs(_name), 30)
    STRATEGIES[f"UpSampling{_rank}D"] = (upsampling_configs(f"UpSampling{_rank}D"), 10)
for _rank in (1, 2):
    for _name in (f"DepthwiseConv{_rank}D", f"SeparableConv{_rank}D"):
        STRATEGIES[_name] = (conv_configs(_name), 60)
for _name in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
    STRATEGIES[_name] = (elementwise_configs(_name), 30)
STRATEGIES["Dense"] = (dense_configs("Dense"), 30)
STRATEGIES["Concatenate"] = (concatenate_configs("Concatenate"), 60)
STRATEGIES["Reshape"] = (reshape_configs("Reshape"), 50)
STRATEGIES["Dot"] = (dot_configs("Dot"), 50)


# --------------------------------------------------------------------------------------------
# Building with Keras and comparing
# --------------------------------------------------------------------------------------------

def _keras():
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    return keras


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


def build_layer(layer_type: str, args: dict[str, Any]):
    """The Keras layer for a spec-style configuration (nested layer configs become layers)."""
    keras = _keras()
    kwargs = {}
    for key, value in args.items():
        if key in ("layer", "backward_layer", "cell") and isinstance(value, dict):
            kwargs[key] = build_layer(value["type"], {k: v for k, v in value.items() if k != "type"})
        elif key in ("mean", "variance", "noise_shape", "shared_axes"):
            kwargs[key] = value
        else:
            kwargs[key] = _plain(value)
    return getattr(keras.layers, layer_type)(**kwargs)


def _keras_inputs(spec: InputSpec):
    keras = _keras()
    if isinstance(spec, T):
        return keras.Input(shape=spec.shape, dtype=spec.dtype, batch_size=spec.batch)
    if isinstance(spec, list):
        return [_keras_inputs(s) for s in spec]
    return {k: _keras_inputs(v) for k, v in spec.items()}


def _infos(spec: InputSpec):
    if isinstance(spec, T):
        return spec.info()
    if isinstance(spec, list):
        return [s.info() for s in spec]
    return {k: v.info() for k, v in spec.items()}


def _size(shape) -> int:
    return math.prod(int(d) for d in shape)


SEPARATE_TENSOR_ARGS = ("MultiHeadAttention", "GroupQueryAttention")


def keras_result(layer_type: str, c: Case):
    """(outputs as [(shape, dtype)], params, trainable, non_trainable) from Keras, or the exception it raised."""
    try:
        layer = build_layer(layer_type, c.args)
        inputs = _keras_inputs(c.inputs)
        if isinstance(inputs, dict):
            output = layer(**inputs, **c.call)
        elif layer_type in SEPARATE_TENSOR_ARGS and isinstance(inputs, list):
            output = layer(*inputs, **c.call)  # input: [query, value, key] are call(query, value, key)
        else:
            output = layer(inputs, **c.call)
    except Exception as exc:  # Keras refuses the configuration
        return exc
    settle_frozen(layer)  # what emit does after each call
    outputs = list(output) if isinstance(output, (list, tuple)) else [output]
    described = [(tuple(o.shape), o.dtype) for o in outputs]
    # As a keras.Model containing the layer counts them: by each variable's own flag (the layer's
    # trainable_weights is [] for a frozen layer even where its sublayers' weights still train).
    trainable = sum(_size(w.shape) for w in layer.weights if w.trainable)
    non_trainable = sum(_size(w.shape) for w in layer.weights if not w.trainable)
    return described, layer.count_params(), trainable, non_trainable


def check(layer_type: str, c: Case, *, drawn: bool = False) -> None:
    try:
        inferred = infer_layer(layer_type, c.args, _infos(c.inputs), c.call)
        rule_error = None
    except ShapeError as error:
        inferred, rule_error = None, error
    if rule_error is not None and rule_error.code == "dtype-mismatch" and _has_integers(c.inputs):
        # Refused by the integer-input policy: Keras builds it, but the model would keep the integers or
        # fail when it runs (test_integer_inputs_run_as_inferred checks the layers that are allowed).
        return
    if rule_error is not None and rule_error.code == "unknown-size-broadcast":
        # Keras builds a merge of a known size > 1 with an unknown one; the model runs only if they
        # happen to be equal, which check cannot promise (test_unknown_size_broadcast_fails_at_run).
        return
    expected = keras_result(layer_type, c)
    if c.stricter:
        assert rule_error is not None, f"{layer_type} {c}: the rule should refuse it ({c.stricter})"
        assert not isinstance(expected, Exception), f"{layer_type} {c}: Keras refuses it too: drop 'stricter'"
        return
    if isinstance(expected, Exception):
        assert rule_error is not None, (
            f"{layer_type} {c}: Keras refuses it ({type(expected).__name__}: {str(expected)[:300]}) "
            f"but the rule inferred {inferred}")
        if not drawn:
            assert c.error, f"{layer_type} {c}: unexpected Keras error {expected!r}"
        return
    assert rule_error is None, (f"{layer_type} {c}: Keras builds it ({expected[0]}) but the rule raised "
                                f"ShapeError: {rule_error.message}")
    assert not c.error, f"{layer_type} {c}: expected an error, but Keras and the rule both accept it"
    assert inferred is not None, f"{layer_type} {c}: the rule gave up (returned None)"
    outputs, params, trainable, non_trainable = expected
    got = inferred.outputs if isinstance(inferred.outputs, list) else [inferred.outputs]
    assert [(o.shape, o.dtype) for o in got] == outputs, f"{layer_type} {c}: outputs differ"
    assert (inferred.params + inferred.non_trainable_params, inferred.params, inferred.non_trainable_params) == (
        params, trainable, non_trainable), f"{layer_type} {c}: (total, trainable, non-trainable) params differ"


def _has_integers(spec: InputSpec) -> bool:
    if isinstance(spec, T):
        return not spec.dtype.startswith(("float", "bfloat", "string"))
    return any(_has_integers(s) for s in (spec if isinstance(spec, list) else spec.values()))


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------

def test_every_rule_has_configurations():
    missing = sorted(name for name in RULES if name not in CASES and name not in STRATEGIES)
    assert not missing, f"rules without configurations in this harness: {missing}"


@pytest.mark.parametrize("layer_type", sorted(RULES))
def test_rule_matches_keras(layer_type: str):
    cases = CASES.get(layer_type, [])
    drawn = STRATEGIES.get(layer_type)
    assert cases or drawn, f"{layer_type} has a rule but no configuration in this harness"
    assert any(not c.error for c in cases) or drawn, f"{layer_type}: only error configurations"
    for c in cases:
        check(layer_type, c)
    if drawn is not None:
        strategy, examples = drawn

        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        @given(strategy)
        def agrees_with_keras(c: Case) -> None:
            check(layer_type, c, drawn=True)

        agrees_with_keras()


@pytest.mark.parametrize("alias,canonical", [("MaxPool2D", "MaxPooling2D"), ("Convolution2D", "Conv2D"),
                                             ("GlobalAvgPool1D", "GlobalAveragePooling1D")])
def test_aliases_use_the_canonical_rule(alias: str, canonical: str):
    x = TensorInfo((None, 8, 8, 3)) if "2D" in alias else TensorInfo((None, 8, 3))
    args = {"filters": 2, "kernel_size": 3} if "Conv" in alias else {}
    assert infer_layer(alias, args, x) == infer_layer(canonical, args, x)


def _variants(layer_type: str) -> list[Case]:
    """The first accepted configuration in other dtype policies, frozen, and with integer inputs."""
    base = next((c for c in CASES.get(layer_type, []) if not c.error and not c.stricter), None)
    if base is None:
        return []

    def with_dtype(spec: InputSpec, dtype: str) -> InputSpec:
        if isinstance(spec, T):  # a string input (TextVectorization) stays one: only strings are tokenized
            return spec if spec.dtype == "string" else T(spec.shape, dtype, spec.batch)
        if isinstance(spec, list):
            return [with_dtype(s, dtype) for s in spec]
        return {k: with_dtype(v, dtype) for k, v in spec.items()}

    accepted = catalogue().layer(layer_type)["args"]  # e.g. SpatialDropout1D takes no 'trainable'
    variants = []
    if "dtype" in accepted:
        variants += [Case({**base.args, "dtype": dtype}, base.inputs, base.call)
                     for dtype in ("float16", "mixed_bfloat16", "float64")]
    if "trainable" in accepted:
        variants.append(Case({**base.args, "trainable": False}, base.inputs, base.call))
    if "autocast" in accepted:
        variants.append(Case({**base.args, "autocast": False}, with_dtype(base.inputs, "float16"), base.call))
    if layer_type not in INTEGER_INPUTS_REFUSED:
        variants.append(Case(dict(base.args), with_dtype(base.inputs, "int32"), base.call))
    return variants


INTEGER_INPUTS_REFUSED = {"AveragePooling1D", "AveragePooling2D", "AveragePooling3D"}


@pytest.mark.parametrize("layer_type", sorted(RULES))
def test_dtype_policies_and_frozen_layers(layer_type: str):
    for c in _variants(layer_type):
        check(layer_type, c, drawn=True)


def _with_integers(spec: InputSpec) -> InputSpec:
    if isinstance(spec, T):
        return T(spec.shape, "int32", spec.batch)
    if isinstance(spec, list):
        return [_with_integers(s) for s in spec]
    return {k: _with_integers(v) for k, v in spec.items()}


def _run_arrays(spec: InputSpec):
    import numpy as np

    if isinstance(spec, T):
        return np.ones((2, *[5 if d is None else d for d in spec.shape]), spec.dtype)
    if isinstance(spec, list):
        return [_run_arrays(s) for s in spec]
    return {k: _run_arrays(v) for k, v in spec.items()}


def _run_dtype(layer_type: str, c: Case):
    """The dtype of the layer's first output when it runs (eagerly) on ones, or the exception."""
    keras = _keras()
    layer = build_layer(layer_type, c.args)
    arrays = _run_arrays(c.inputs)
    try:
        if isinstance(arrays, dict):
            output = layer(**arrays, **c.call)
        elif layer_type in SEPARATE_TENSOR_ARGS and isinstance(arrays, list):
            output = layer(*arrays, **c.call)
        else:
            output = layer(arrays, **c.call)
    except Exception as exc:  # noqa: BLE001 - a failure is the answer
        return exc
    output = output[0] if isinstance(output, (list, tuple)) else output
    return keras.backend.standardize_dtype(output.dtype)


def _integer_base(layer_type: str) -> Case | None:
    """A configuration of the layer that Keras builds, to rerun on integers (None where Keras
    itself refuses integers for the layer, as for average pooling; check refuses them as well)."""
    if layer_type in INTEGER_INPUTS_REFUSED:
        return None
    return next((c for c in CASES.get(layer_type, []) if not c.error and not c.stricter), None)


@pytest.mark.parametrize("layer_type", sorted(t for t in RULES if _integer_base(t) is not None))
def test_integer_inputs_run_as_inferred(layer_type: str):
    """Integer inputs: a layer check accepts them for returns, when it runs, the dtype check inferred;
    a layer check refuses them for keeps the integers or fails when it runs (Keras builds both)."""
    from graphspec.infer import INTEGER_INPUT_LAYERS, STRING_LAYOUT_LAYERS

    base = _integer_base(layer_type)
    c = Case(dict(base.args), _with_integers(base.inputs), base.call)
    try:
        inferred = infer_layer(layer_type, c.args, _infos(c.inputs), c.call)
    except ShapeError as error:
        assert layer_type not in INTEGER_INPUT_LAYERS | STRING_LAYOUT_LAYERS, error.message
        run = _run_dtype(layer_type, c)
        symbolic = keras_result(layer_type, c)
        if isinstance(symbolic, Exception):
            return
        assert isinstance(run, Exception) or run != symbolic[0][0][1], (
            f"{layer_type} runs on integers as Keras says ({run}): add it to INTEGER_INPUT_LAYERS")
        return
    assert layer_type in INTEGER_INPUT_LAYERS | STRING_LAYOUT_LAYERS
    outputs = inferred.outputs if isinstance(inferred.outputs, list) else [inferred.outputs]
    run = _run_dtype(layer_type, c)
    assert not isinstance(run, Exception), f"{layer_type} fails on integers when it runs: {run!r}"
    assert run == outputs[0].dtype, f"{layer_type}: check infers {outputs[0].dtype}, the layer returns {run}"


def test_unknown_size_broadcast_fails_at_run():
    """Why check refuses merging a known size with an unknown one: Keras builds it, and the run fails
    for any other size."""
    import numpy as np

    keras = _keras()
    a, b = keras.Input((None, 3)), keras.Input((5, 3))
    model = keras.Model([a, b], keras.layers.Add()([a, b]))
    with pytest.raises(Exception):
        model([np.ones((2, 4, 3), "float32"), np.ones((2, 5, 3), "float32")])
    with pytest.raises(ShapeError) as info:
        infer_layer("Add", {}, [TensorInfo((None, None, 3)), TensorInfo((None, 5, 3))])
    assert info.value.code == "unknown-size-broadcast"


# --------------------------------------------------------------------------------------------
# op: nodes (keras.ops calls): every allow-listed op against Keras' own symbolic call
# --------------------------------------------------------------------------------------------

from graphspec.infer.rules.ops import FAMILY_RULES, bind_op, infer_op  # noqa: E402

OPS = catalogue().ops["allowed"]
X = t(3, 4)
OP_FAMILY_CASES: dict[str, list[Case]] = {
    "unary": [case(X), case(t(None, 4)), case(t(3, 4, dtype="int32")), case(t(3, dtype="float16")),
              case(t(2, 3, 4, dtype="float64"))],
    "binary": [case([X, X]), case([t(3, 1), t(1, 4)]), case(X, x2=2.0), case(X, x2=3),
               case([X, t(4)], stricter="ranks differ: the batch axis of (None, 4) would meet axis 1 of (None, 3, 4)"),
               case(t(3, 4, dtype="int32"), x2=2.0), case(t(3, dtype="float16"), x1=1.5),
               case([t(3, 4, dtype="int32"), t(3, 4, dtype="int32")]), case([X, t(3, 4, dtype="float16")]),
               case([t(None, 4), t(None, 4)]), case([X, t(5)], error=True)],
    "where": [case([t(3, 4, dtype="bool"), X, X]), case({"condition": t(3, 1, dtype="bool"), "x1": X}, x2=0.0),
              case([t(3, 1, dtype="bool"), t(3, 4, dtype="int32")], x2=1),
              case([t(4, dtype="bool"), t(3, 4, dtype="int32")], x2=1, stricter="ranks differ"),
              case([t(3, dtype="bool"), X, X], error=True)],
    "reduce": [case(X, axis=-1), case(X, axis=1, keepdims=True), case(X, axis=[1, 2]), case(t(None, 4), axis=1),
               case(t(3, 4, dtype="int32"), axis=2), case(X, axis=0, stricter="it reduces over the batch axis"),
               case(X, stricter="without an axis it reduces over the batch axis"), case(X, axis=3, error=True)],
    "reshape": [case(t(12), newshape=[-1, 3, 4]), case(t(3, 4), newshape=[-1, 12]),
                case(t(3, 4, dtype="int32"), newshape=[-1, 2, 6]),
                case(t(12), newshape=[-1, 5], error=True),
                case(t(12), newshape=[4, 3], stricter="it would change the batch axis")],
    "transpose": [case(t(3, 4), axes=[0, 2, 1]), case(t(2, 3, 4), axes=[0, 3, 1, 2]),
                  case(t(3, 4), stricter="without axes it moves the batch axis"),
                  case(t(3, 4), axes=[1, 0, 2], stricter="it moves the batch axis"),
                  case(t(3, 4), axes=[0, 1], error=True)],
    "expand_dims": [case(X, axis=1), case(X, axis=-1), case(X, axis=3), case(t(3, dtype="int32"), axis=2),
                    case(X, axis=0, stricter="a new axis before the batch axis")],
    "squeeze": [case(t(1, 4), axis=1), case(t(3, 1), axis=-1), case(t(1, 4, 1)), case(t(3, 4), axis=1, error=True)],
    "swapaxes": [case(t(2, 3, 4), axis1=1, axis2=3), case(t(3, 4), axis1=-1, axis2=1),
                 case(t(3, 4), axis1=0, axis2=1, stricter="it moves the batch axis")],
    "matmul": [case([t(3, 4), t(4, 5)]), case([t(2, 3, 4), t(1, 4, 5)]), case([t(3, 4), t(5, 6)], error=True),
               case([t(3, 4, dtype="float16"), t(4, 2)]),
               case([t(4), t(4)], stricter="a (batch, features) tensor is multiplied across the batch")],
    "einsum": [case([t(3, 4), t(4, 5)], subscripts="bij,bjk->bik"), case([t(3, 4), t(3, 4)], subscripts="bij,bij->bi"),
               case([t(3, 4)], subscripts="bij->bji"), case([t(3, 4), t(5, 6)], subscripts="bij,bjk->bik",
                                     stricter="Keras builds it; the run fails on axis 'j' (4 vs 5)"),
               case([t(3, 4)], subscripts="bij->ij", stricter="it sums over the batch axis")],
}
OP_EXTRA_ARGS: dict[str, dict] = {
    "clip": {"x_min": 0.0, "x_max": 1.0}, "full_like": {"fill_value": 2}, "cast": {"dtype": "int32"},
    "softmax": {"axis": -1}, "log_softmax": {"axis": 1}, "cumsum": {"axis": 1}, "cumprod": {"axis": -1},
}
OP_SPECIAL_CASES: dict[str, list[Case]] = {
    "cast": [case(X, dtype="float16"), case(t(3, dtype="bool"), dtype="float32")],
    "cumsum": [case(X, stricter="without an axis it flattens the batch axis")],
    "zeros_like": [case(X, dtype="int32")], "ones_like": [case(t(3, dtype="int32"), dtype="float32")],
    "argmax": [case(X, axis=-1, keepdims=True)], "softmax": [case(X, axis=0, stricter="the batch axis")],
    "leaky_relu": [case(X, negative_slope=0.3)], "round": [case(X, decimals=1)],
}


def _op_cases(name: str) -> list[Case]:
    extra = OP_EXTRA_ARGS.get(name, {})
    cases = [Case({**extra, **c.args}, c.inputs, c.call, c.error, c.stricter)
             for c in OP_FAMILY_CASES[OPS[name]["family"]]]
    for c in cases:
        if name in ("argmax", "argmin") and isinstance(c.args.get("axis"), list):
            c.stricter = "Keras builds it, but argmax takes one axis when it runs (TypeError, checked by hand)"
        if name == "reshape" and c.args.get("newshape") == [-1, 5]:
            c.error, c.stricter = False, ("Keras builds it (-1 is the batch axis), but the run fails unless the "
                                          "batch of 12 values per sample divides by 5")
    return cases + OP_SPECIAL_CASES.get(name, [])


def keras_op_result(name: str, c: Case):
    keras = _keras()
    try:
        positional, kwargs = bind_op(name, _keras_inputs(c.inputs), c.args)
        output = getattr(keras.ops, name)(*positional, **kwargs)
    except Exception as exc:  # Keras refuses the call
        return exc
    return tuple(output.shape), keras.backend.standardize_dtype(output.dtype)


def check_op(name: str, c: Case) -> None:
    try:
        inferred, rule_error = infer_op(name, c.args, _infos(c.inputs)), None
    except ShapeError as error:
        inferred, rule_error = None, error
    if rule_error is not None and rule_error.code == "unknown-size-broadcast":
        return
    if rule_error is not None and rule_error.code == "dtype-mismatch":
        return  # Keras may build it, but it fails or changes dtype when it runs (tests/test_ops.py runs them)
    expected = keras_op_result(name, c)
    if c.stricter:
        assert rule_error is not None, f"op {name} {c}: the rule should refuse it ({c.stricter})"
        assert not isinstance(expected, Exception), f"op {name} {c}: Keras refuses it too: drop 'stricter'"
        return
    if isinstance(expected, Exception):
        assert rule_error is not None, f"op {name} {c}: Keras refuses it ({expected!r:.300}) but the rule inferred " \
                                       f"{inferred}"
        assert c.error, f"op {name} {c}: unexpected Keras error {expected!r:.300}"
        return
    assert rule_error is None, f"op {name} {c}: Keras builds it ({expected}) but the rule raised {rule_error.message}"
    assert not c.error, f"op {name} {c}: expected an error, but Keras and the rule both accept it"
    assert (inferred.outputs.shape, inferred.outputs.dtype) == expected, f"op {name} {c}: outputs differ"
    assert (inferred.params, inferred.non_trainable_params) == (0, 0)


def test_every_op_family_has_a_rule_and_configurations():
    families = {entry["family"] for entry in OPS.values()}
    assert families == set(FAMILY_RULES) == set(OP_FAMILY_CASES)


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_rule_matches_keras(name: str):
    for c in _op_cases(name):
        check_op(name, c)
