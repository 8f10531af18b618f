"""Rules for attention layers: MultiHeadAttention, GroupedQueryAttention, Attention, AdditiveAttention.

MultiHeadAttention and GroupedQueryAttention take their tensors as call arguments:
``input: {query: q, value: v, key: k}`` (key optional), or a list ``[query, value, key]``.
Attention and AdditiveAttention take a list ``[query, value]`` or ``[query, value, key]``.
"""

from __future__ import annotations

import math

from graphspec.infer.rules import rule
from graphspec.infer.tensor import ArgumentError, LayerCall, RuleResult, ShapeError, TensorInfo

_TENSOR_ARGS = ("query", "value", "key")


def _qvk(call: LayerCall) -> tuple[TensorInfo, TensorInfo, TensorInfo | None]:
    inputs = call.inputs
    if isinstance(inputs, dict):
        missing = [name for name in ("query", "value") if name not in inputs]
        if missing:
            raise ShapeError(f"{call.layer_type} needs the call arguments query and value; "
                             f"'input:' lacks {' and '.join(missing)}",
                             hint="write input: {query: q, value: v} (key: optional, defaults to value)",
                             code="missing-call-argument")
        return inputs["query"], inputs["value"], inputs.get("key")
    if isinstance(inputs, list) and 2 <= len(inputs) <= 3:
        return inputs[0], inputs[1], inputs[2] if len(inputs) == 3 else None
    count = 1 if isinstance(inputs, TensorInfo) else len(inputs)
    raise ShapeError(f"{call.layer_type} needs a query and a value tensor, got {count} input(s)",
                     hint="write input: {query: q, value: v}; for self-attention give the same name twice",
                     code="wrong-input-count")


def _features(call: LayerCall, t: TensorInfo, name: str) -> int:
    call.require_rank(t, min_rank=3, what=name)
    if t.shape[-1] is None:
        raise ShapeError(f"{call.layer_type} needs a known feature size (last axis) of {name}, got shape {t}")
    return t.shape[-1]


def _check_key_value(call: LayerCall, value: TensorInfo, key: TensorInfo) -> None:
    if value.shape[1:-1] != key.shape[1:-1]:
        raise ShapeError(f"{call.layer_type}: key and value must agree on every axis but the last, got "
                         f"value {value} and key {key}",
                         hint="key[i] is paired with value[i]: they need the same sequence length")


def _flag(call: LayerCall, name: str) -> bool:
    return bool(call.call.get(name))


@rule("MultiHeadAttention")
def multi_head_attention(call: LayerCall) -> RuleResult:
    query, value, key = _qvk(call)
    key = key or value
    heads = call.positive("num_heads")
    key_dim = call.positive("key_dim")
    value_dim = call.positive("value_dim") if call.args.get("value_dim") else key_dim
    q_dim, v_dim = _features(call, query, "query"), _features(call, value, "value")
    k_dim = _features(call, key, "key")
    _check_key_value(call, value, key)
    if query.rank != value.rank:
        raise ShapeError(f"MultiHeadAttention needs query and value of the same rank, got query {query} and "
                         f"value {value}", code="rank-mismatch")
    raw_out = call.args.get("output_shape")
    if raw_out:
        out_dims = (raw_out,) if isinstance(raw_out, int) else tuple(raw_out)
    else:
        out_dims = (q_dim,)
    bias = bool(call.arg("use_bias", True))
    params = (q_dim * heads * key_dim + k_dim * heads * key_dim + v_dim * heads * value_dim
              + heads * value_dim * math.prod(out_dims))
    if bias:
        params += 2 * heads * key_dim + heads * value_dim + math.prod(out_dims)
    if call.arg("use_gate"):
        params += q_dim * heads * value_dim + (heads * value_dim if bias else 0)
    dtype = call.dtype()
    output = TensorInfo(query.shape[:-1] + out_dims, dtype)
    if _flag(call, "return_attention_scores"):
        # Keras' symbolic scores shape is (batch, heads, T, T), with T the query length, even where the key
        # length differs (MultiHeadAttention.compute_output_spec); the shape Keras reports is the one given here.
        length = query.shape[1]
        return RuleResult([output, TensorInfo((query.shape[0], heads, length, length), dtype)], params)
    return RuleResult(output, params)


@rule("GroupQueryAttention")
def grouped_query_attention(call: LayerCall) -> RuleResult:
    query, value, key = _qvk(call)
    given_key = key
    key = key or value
    head_dim = call.positive("head_dim")
    q_heads = call.positive("num_query_heads")
    kv_heads = call.positive("num_key_value_heads")
    if q_heads % kv_heads:
        raise ArgumentError(f"GroupQueryAttention: num_query_heads ({q_heads}) must be a multiple of "
                         f"num_key_value_heads ({kv_heads})", argument="num_key_value_heads")
    for t, name in ((query, "query"), (value, "value"), (key, "key")):
        call.require_rank(t, 3, what=name)
    q_dim, v_dim, k_dim = (_features(call, t, n) for t, n in ((query, "query"), (value, "value"), (key, "key")))
    if q_dim != v_dim:
        raise ShapeError(f"GroupQueryAttention needs query and value with the same feature size, got query "
                         f"{query} and value {value}", hint="project one of them first (a Dense)")
    _check_key_value(call, value, key)
    bias = bool(call.arg("use_bias", True))
    params = (q_dim * q_heads * head_dim + (k_dim + v_dim) * kv_heads * head_dim + q_heads * head_dim * q_dim)
    if bias:
        params += q_heads * head_dim + 2 * kv_heads * head_dim + q_dim
    if call.arg("use_gate"):
        params += q_dim * q_heads * head_dim + (q_heads * head_dim if bias else 0)
    dtype = call.dtype()
    output = TensorInfo(query.shape, dtype)
    if _flag(call, "return_attention_scores"):
        kv_len = (given_key or value).shape[1]
        return RuleResult([output, TensorInfo((query.shape[0], q_heads, query.shape[1], kv_len), dtype)], params)
    return RuleResult(output, params)


@rule("Attention", "AdditiveAttention")
def attention(call: LayerCall) -> RuleResult:
    tensors = call.inputs
    if not isinstance(tensors, list) or not 2 <= len(tensors) <= 3:
        count = 1 if isinstance(tensors, TensorInfo) else len(tensors)
        raise ShapeError(f"{call.layer_type} takes a list [query, value] or [query, value, key], got {count} "
                         "input(s)", hint="write input: [query, value]", code="wrong-input-count")
    query, value = tensors[0], tensors[1]
    key = tensors[2] if len(tensors) == 3 else value
    for t, name in ((query, "query"), (value, "value"), (key, "key")):
        call.require_rank(t, min_rank=2, what=name)
    if None not in (query.shape[-1], key.shape[-1]) and query.shape[-1] != key.shape[-1]:
        raise ShapeError(f"{call.layer_type} scores query against key, so their feature sizes must match; got "
                         f"query {query} and key {key}", hint="project one of them first (a Dense)")
    if None not in (value.shape[-2], key.shape[-2]) and value.shape[-2] != key.shape[-2]:
        raise ShapeError(f"{call.layer_type}: key and value need the same length, got value {value} and key {key}")
    params = 0
    if call.layer_type == "Attention":
        score_mode = call.args.get("score_mode", "dot")
        if score_mode not in ("dot", "concat"):
            raise ArgumentError(f"Attention: score_mode must be 'dot' or 'concat', got {score_mode!r}",
                             argument="score_mode")
        params = int(bool(call.arg("use_scale"))) + int(score_mode == "concat")
    elif call.args.get("use_scale", True):
        if query.shape[-1] is None:
            raise ShapeError(f"AdditiveAttention with use_scale needs a known query feature size, got {query}",
                             argument="use_scale")
        params = query.shape[-1]
    dtype = call.dtype()
    output = TensorInfo((*query.shape[:-1], value.shape[-1]), dtype)
    if _flag(call, "return_attention_scores"):
        return RuleResult([output, TensorInfo((*query.shape[:-1], key.shape[-2]), dtype)], params)
    return RuleResult(output, params)
