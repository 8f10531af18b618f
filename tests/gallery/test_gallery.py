"""The gallery (``specs/``): each spec, built by graphspec, is the model its seed article writes by hand.

For every gallery spec there is a hand-written Keras functional model below (the
code of the seed article, corrected where the seed is wrong). The test builds the
spec with graphspec and checks that both models have the same layer types in the
same order, the same parameter counts, the same output shapes, and, with the same
weights (copied layer by layer), the same outputs for the same random input.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

keras = pytest.importorskip("keras")
layers = keras.layers

from graphspec.emit import emit  # noqa: E402
from graphspec.pipeline import check_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"
SCHEMA_COMMENT = "# yaml-language-server: $schema=../schemas/graphspec.schema.json"


def _tool(name: str):
    """A module of ``specs/tools`` (they are scripts, not a package)."""
    path = SPECS / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"gallery_tools_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------
# The seed articles' models, written by hand with the Keras functional API.
# --------------------------------------------------------------------------------------------

def seed000_conv_pool():
    input_img = keras.Input(shape=(28, 28, 3), name="input_img")
    conv1 = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(input_img)
    pool1 = layers.MaxPooling2D((2, 2))(conv1)
    return keras.Model(input_img, pool1)


def seed000_two_branch_concat():
    input_tensor = keras.Input(shape=(64, 64, 3), name="input_tensor")
    conv_branch_1 = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(input_tensor)
    pool_branch_1 = layers.MaxPooling2D((2, 2))(conv_branch_1)
    conv_branch_2 = layers.Conv2D(64, (5, 5), activation="relu", padding="same")(input_tensor)
    pool_branch_2 = layers.MaxPooling2D((2, 2))(conv_branch_2)
    merged = layers.concatenate([pool_branch_1, pool_branch_2])
    flattened = layers.Flatten()(merged)
    output_tensor = layers.Dense(10, activation="softmax")(flattened)
    return keras.Model(inputs=input_tensor, outputs=output_tensor)


def seed000_multimodal():
    input_img = keras.Input(shape=(28, 28, 3), name="image_input")
    input_text = keras.Input(shape=(100,), name="text_input")
    conv1 = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(input_img)
    pool1 = layers.MaxPooling2D((2, 2))(conv1)
    flattened_img = layers.Flatten()(pool1)
    dense_text = layers.Dense(64, activation="relu")(input_text)
    merged = layers.concatenate([flattened_img, dense_text])
    output_tensor = layers.Dense(1, activation="sigmoid")(merged)
    return keras.Model(inputs=[input_img, input_text], outputs=output_tensor)


def seed001_single_dense():
    input_tensor = keras.Input(shape=(784,), name="pixels")
    output_tensor = layers.Dense(units=64, activation="relu")(input_tensor)
    return keras.Model(inputs=input_tensor, outputs=output_tensor)


def seed001_ticket_priority():
    text_input = keras.Input(shape=(None,), dtype="int32", name="text")
    metadata_input = keras.Input(shape=(5,), dtype="float32", name="metadata")
    text_features = layers.Embedding(input_dim=10000, output_dim=64)(text_input)
    text_features = layers.LSTM(32)(text_features)
    metadata_features = layers.Dense(16, activation="relu")(metadata_input)
    combined_features = layers.Concatenate()([text_features, metadata_features])
    priority_output = layers.Dense(1, activation="sigmoid", name="priority")(combined_features)
    return keras.Model(inputs=[text_input, metadata_input], outputs=priority_output)


def seed001_multi_output_bbox():
    image_input = keras.Input(shape=(128, 128, 3), name="image")
    x = layers.Conv2D(32, 3, activation="relu")(image_input)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    base_output = layers.Flatten()(x)
    class_output = layers.Dense(10, activation="softmax", name="class_label")(base_output)
    bbox_output = layers.Dense(4, name="bounding_box")(base_output)
    return keras.Model(inputs=image_input, outputs={"class_label": class_output, "bounding_box": bbox_output})


def seed001_siamese_text():
    input_a = keras.Input(shape=(None,), dtype="int32", name="text_a")
    input_b = keras.Input(shape=(None,), dtype="int32", name="text_b")
    shared_embedding = layers.Embedding(input_dim=10000, output_dim=128, name="shared_embed")
    encoded_a = shared_embedding(input_a)
    encoded_b = shared_embedding(input_b)
    vector_a = layers.LSTM(64, name="lstm")(encoded_a)
    vector_b = layers.LSTM(64, name="lstm_b")(encoded_b)
    concatenated_vectors = layers.Concatenate()([vector_a, vector_b])
    output = layers.Dense(1, activation="sigmoid", name="similarity")(concatenated_vectors)
    return keras.Model(inputs=[input_a, input_b], outputs=output)


def seed001_residual_block():
    input_tensor = keras.Input(shape=(32, 32, 3), name="input_tensor")
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(input_tensor)
    residual = x
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(64, 3, padding="same")(x)
    x = layers.Add()([x, residual])
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    output_tensor = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs=input_tensor, outputs=output_tensor)


def seed002_inception_module():
    # The seed's code with its typos fixed (Conv2D2D, MaxPooling(128, 3, activation=...)) and
    # padding 'same' where a strided branch would otherwise lose a row (15 or 12 instead of 16).
    x = keras.Input(shape=(32, 32, 64), name="x")
    part_a = layers.Conv2D(128, 1, activation="relu", strides=2)(x)
    part_b = layers.Conv2D(128, 1, activation="relu")(x)
    part_b = layers.Conv2D(128, 3, activation="relu", strides=2, padding="same")(part_b)
    part_c = layers.Conv2D(128, 1, strides=2)(x)
    part_c = layers.Conv2D(128, 5, activation="relu", padding="same")(part_c)
    part_d = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    part_d = layers.Conv2D(128, 1, activation="relu")(part_d)
    output = layers.concatenate([part_a, part_b, part_c, part_d], axis=-1)
    return keras.Model(x, output)


def seed002_residual_block():
    x = keras.Input(shape=(32, 32, 128), name="x")
    y = layers.Conv2D(128, 3, activation="relu", padding="same")(x)
    y = layers.Conv2D(128, 3, activation="relu", padding="same")(y)
    y = layers.Conv2D(128, 3, activation="relu", padding="same")(y)
    y = layers.add([y, x])
    return keras.Model(x, y)


def seed002_model_as_layer(encoder_path: Path):
    mod = keras.saving.load_model(encoder_path, compile=False)
    mod.trainable = False
    x = keras.Input(shape=(32,), name="x")
    h = layers.Dense(32, activation="relu")(x)
    h = mod(h)
    y = layers.Dense(1, activation="sigmoid")(h)
    return keras.Model(x, y)


def seed003_multi_input_concat():
    input_a = keras.Input(shape=(10,), name="input_a")
    input_b = keras.Input(shape=(20,), name="input_b")
    x_a = layers.Dense(32, activation="relu")(input_a)
    x_b = layers.Dense(32, activation="relu")(input_b)
    x = layers.concatenate([x_a, x_b])
    output = layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs=[input_a, input_b], outputs=output)


def seed003_shared_two_outputs():
    # The seed's input_b has 20 features, which a Dense built for 10 rejects: both have 10 here.
    input_a = keras.Input(shape=(10,), name="input_a")
    input_b = keras.Input(shape=(10,), name="input_b")
    shared_layer = layers.Dense(16, activation="relu", name="shared_layer")
    x_a = shared_layer(input_a)
    x_b = shared_layer(input_b)
    output_a = layers.Dense(1, activation="sigmoid", name="output_a")(x_a)
    output_b = layers.Dense(1, activation="sigmoid", name="output_b")(x_b)
    return keras.Model(inputs=[input_a, input_b], outputs=[output_a, output_b])


def seed003_residual_conv():
    # The seed's third conv is 'valid' (22x22), which cannot be added to 24x24: 'same' here.
    input_tensor = keras.Input(shape=(28, 28, 1), name="input_tensor")
    x = layers.Conv2D(32, (3, 3), activation="relu")(input_tensor)
    x = layers.Conv2D(32, (3, 3), activation="relu")(x)
    residual = x
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(x)
    x = layers.add([x, residual])
    x = layers.Flatten()(x)
    x = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs=input_tensor, outputs=x)


def seed004_sequential():
    inputs = keras.Input(shape=(10,), name="inputs")
    block = keras.Sequential([
        layers.Dense(64, activation="relu", name="dense_1"),
        layers.Dense(10, activation="softmax", name="dense_2"),
    ])
    return keras.Model(inputs, block(inputs))


def seed004_functional():
    inputs = keras.Input(shape=(10,), name="inputs")
    dense1 = layers.Dense(64, activation="relu", name="dense_1")(inputs)
    outputs = layers.Dense(10, activation="softmax", name="dense_2")(dense1)
    return keras.Model(inputs=inputs, outputs=outputs)


def seed004_residual_add():
    # The seed adds the (10,) input to a (64,) output; a linear projection makes them agree.
    inputs = keras.Input(shape=(10,), name="inputs")
    dense1 = layers.Dense(64, activation="relu", name="dense_1")(inputs)
    projection = layers.Dense(64, use_bias=False, name="projection")(inputs)
    added_tensor = layers.add([projection, dense1])
    outputs = layers.Dense(10, activation="softmax", name="dense_2")(added_tensor)
    return keras.Model(inputs=inputs, outputs=outputs)


def seed004_sequential_blocks():
    block1 = keras.Sequential([layers.Dense(32, activation="relu"), layers.Dense(16, activation="relu")])
    block2 = keras.Sequential([layers.Dense(64, activation="relu"), layers.Dense(32, activation="relu")])
    inputs_block = keras.Input(shape=(10,), name="inputs_block")
    out_block1 = block1(inputs_block)
    out_block2 = block2(out_block1)
    outputs = layers.Dense(10, activation="softmax")(out_block2)
    return keras.Model(inputs=inputs_block, outputs=outputs)


# --------------------------------------------------------------------------------------------
# ResNet-18/34/50/101/152 (spec language 1.1: blocks, repeat, params, variants): specs/resnet*.yaml.
# ResNet-50/101/152 are keras.applications'; ResNet-18/34 (basic blocks) are not in
# keras.applications: written here by hand in the style of keras/src/applications/resnet.py.
# --------------------------------------------------------------------------------------------

def resnet50():
    # Keras' own functional code for this architecture is the reference.
    return keras.applications.ResNet50(weights=None)


def resnet101():
    return keras.applications.ResNet101(weights=None)


def resnet152():
    return keras.applications.ResNet152(weights=None)


def _resnet_basic(depths: tuple[int, ...], name: str):
    """ResNet v1 with basic blocks (3x3 + 3x3), named as keras.applications names its ResNets."""
    bn = {"axis": 3, "epsilon": 1.001e-5}
    image = keras.Input(shape=(224, 224, 3), name="image")
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(image)
    x = layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    x = layers.BatchNormalization(**bn, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, (filters, blocks) in enumerate(zip((64, 128, 256, 512), depths)):
        for b in range(blocks):
            prefix = f"conv{stage + 2}_block{b + 1}"
            strides = 2 if stage > 0 and b == 0 else 1
            shortcut = x
            if strides != 1:  # a projection where the shape changes
                shortcut = layers.Conv2D(filters, 1, strides=strides, name=f"{prefix}_0_conv")(x)
                shortcut = layers.BatchNormalization(**bn, name=f"{prefix}_0_bn")(shortcut)
            y = layers.Conv2D(filters, 3, strides=strides, padding="same", name=f"{prefix}_1_conv")(x)
            y = layers.BatchNormalization(**bn, name=f"{prefix}_1_bn")(y)
            y = layers.Activation("relu", name=f"{prefix}_1_relu")(y)
            y = layers.Conv2D(filters, 3, padding="same", name=f"{prefix}_2_conv")(y)
            y = layers.BatchNormalization(**bn, name=f"{prefix}_2_bn")(y)
            x = layers.Add(name=f"{prefix}_add")([shortcut, y])
            x = layers.Activation("relu", name=f"{prefix}_out")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dense(1000, activation="softmax", name="predictions")(x)
    return keras.Model(image, x, name=name)


def resnet18():
    return _resnet_basic((2, 2, 2, 2), "resnet18")


def resnet34():
    return _resnet_basic((3, 4, 6, 3), "resnet34")


# --------------------------------------------------------------------------------------------
# Spec language 1.1: a list of tensors in one call argument (initial_state: [h, c]).
# --------------------------------------------------------------------------------------------

def seq2seq_lstm():
    """The Keras seq2seq example's training model, with token embeddings instead of one-hot inputs."""
    encoder_tokens = keras.Input(shape=(None,), dtype="int32", name="encoder_tokens")
    decoder_tokens = keras.Input(shape=(None,), dtype="int32", name="decoder_tokens")
    x = layers.Embedding(5000, 64, name="encoder_embedding")(encoder_tokens)
    _, state_h, state_c = layers.LSTM(128, return_state=True, name="encoder")(x)
    y = layers.Embedding(6000, 64, name="decoder_embedding")(decoder_tokens)
    y = layers.LSTM(128, return_sequences=True, name="decoder")(y, initial_state=[state_h, state_c])
    next_token = layers.Dense(6000, activation="softmax", name="next_token")(y)
    return keras.Model([encoder_tokens, decoder_tokens], next_token)


# --------------------------------------------------------------------------------------------
# Spec language 1.1: op: nodes (keras.ops calls), written by hand with keras.ops.
# --------------------------------------------------------------------------------------------

def siamese_l1_distance():
    left = keras.Input(shape=(28, 28, 1), name="left")
    right = keras.Input(shape=(28, 28, 1), name="right")
    conv = layers.Conv2D(16, 3, activation="relu", name="conv")
    pool = layers.MaxPooling2D(2, name="pool")
    flatten = layers.Flatten(name="flatten")
    embed = layers.Dense(64, activation="relu", name="embed")
    left_embedding = embed(flatten(pool(conv(left))))
    right_embedding = embed(flatten(pool(conv(right))))
    l1_distance = keras.ops.abs(keras.ops.subtract(left_embedding, right_embedding))
    similarity = layers.Dense(1, activation="sigmoid", name="similarity")(l1_distance)
    return keras.Model([left, right], similarity, name="siamese_l1_distance")


def vae_dense():
    """The Keras VAE example's model (Dense encoder and decoder), sampling with a seeded GaussianNoise."""
    image = keras.Input(shape=(784,), name="image")
    h = layers.Dense(256, activation="relu", name="encoder_hidden")(image)
    z_mean = layers.Dense(2, name="z_mean")(h)
    z_log_var = layers.Dense(2, name="z_log_var")(h)
    epsilon = layers.GaussianNoise(1.0, seed=1337, name="epsilon")(keras.ops.zeros_like(z_mean))
    z = keras.ops.add(z_mean, keras.ops.multiply(keras.ops.exp(keras.ops.multiply(z_log_var, 0.5)), epsilon))
    d = layers.Dense(256, activation="relu", name="decoder_hidden")(z)
    reconstruction = layers.Dense(784, activation="sigmoid", name="reconstruction")(d)
    terms = keras.ops.subtract(keras.ops.add(keras.ops.subtract(keras.ops.exp(z_log_var), z_log_var),
                                             keras.ops.square(z_mean)), 1.0)
    kl = keras.ops.multiply(keras.ops.sum(terms, axis=-1, keepdims=True), 0.5)
    return keras.Model(image, {"reconstruction": reconstruction, "kl": kl}, name="vae_dense")


def transformer_encoder_classifier(layer_count: int = 2, dim: int = 32, heads: int = 2, ff: int = 64):
    """Keras' "Text classification with Transformer" example, positions from the tokens by keras.ops."""
    tokens = keras.Input(shape=(200,), dtype="int32", name="tokens")
    token_embedding = layers.Embedding(20000, dim, name="token_embedding")(tokens)
    positions = keras.ops.subtract(keras.ops.cumsum(keras.ops.ones_like(tokens), axis=1), 1)
    position_embedding = layers.Embedding(200, dim, name="position_embedding")(positions)
    x = layers.Add(name="embedded")([token_embedding, position_embedding])
    for i in range(layer_count):
        p = f"encoder{i + 1}_"
        attention = layers.MultiHeadAttention(heads, dim, name=p + "attention")(x, x)
        attention = layers.Dropout(0.1, name=p + "attention_dropout")(attention)
        x = layers.Add(name=p + "attention_residual")([x, attention])
        x = layers.LayerNormalization(epsilon=1e-6, name=p + "attention_norm")(x)
        h = layers.Dense(ff, activation="relu", name=p + "ff_hidden")(x)
        h = layers.Dense(dim, name=p + "ff_out")(h)
        h = layers.Dropout(0.1, name=p + "ff_dropout")(h)
        x = layers.Add(name=p + "ff_residual")([x, h])
        x = layers.LayerNormalization(epsilon=1e-6, name=p + "ff_norm")(x)
    x = layers.GlobalAveragePooling1D(name="pooled")(x)
    x = layers.Dropout(0.1, name="pooled_dropout")(x)
    x = layers.Dense(20, activation="relu", name="hidden")(x)
    x = layers.Dropout(0.1, name="hidden_dropout")(x)
    label = layers.Dense(2, activation="softmax", name="label")(x)
    return keras.Model(tokens, label, name="transformer_encoder_classifier")


def mobilenet_v3_small():
    """Keras' own MobileNetV3Small: its hard-sigmoid gates, ReLU(6)(x + 3) * (1/6), call keras.ops."""
    return keras.applications.MobileNetV3Small(input_shape=(224, 224, 3), weights=None)


OP_GALLERY = {"siamese_l1_distance": siamese_l1_distance, "vae_dense": vae_dense,
              "transformer_encoder_classifier": transformer_encoder_classifier,
              "mobilenet_v3_small": mobilenet_v3_small}


HAND_WRITTEN: dict[str, Callable] = {
    "seq2seq_lstm": seq2seq_lstm,
    "seed000_conv_pool": seed000_conv_pool,
    "seed000_two_branch_concat": seed000_two_branch_concat,
    "seed000_multimodal": seed000_multimodal,
    "seed001_single_dense": seed001_single_dense,
    "seed001_ticket_priority": seed001_ticket_priority,
    "seed001_multi_output_bbox": seed001_multi_output_bbox,
    "seed001_siamese_text": seed001_siamese_text,
    "seed001_residual_block": seed001_residual_block,
    "seed002_inception_module": seed002_inception_module,
    "seed002_residual_block": seed002_residual_block,
    "seed002_model_as_layer": seed002_model_as_layer,
    "seed003_multi_input_concat": seed003_multi_input_concat,
    "seed003_shared_two_outputs": seed003_shared_two_outputs,
    "seed003_residual_conv": seed003_residual_conv,
    "seed004_sequential": seed004_sequential,
    "seed004_functional": seed004_functional,
    "seed004_residual_add": seed004_residual_add,
    "seed004_sequential_blocks": seed004_sequential_blocks,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "resnet152": resnet152,
    "convnext_tiny": lambda: keras.applications.ConvNeXtTiny(weights=None),
}
HAND_WRITTEN.update(OP_GALLERY)
NEEDS_SAVED_MODEL = {"seed002_model_as_layer"}
SLOW = {"resnet18", "resnet34", "resnet50"}
COMPARED_BY_NAME_ONLY = {"resnet101", "resnet152", "convnext_tiny"}
"""Large: compared in test_resnet_spec_is_keras_applications_resnet (names, parameters, one small batch);
convnext_tiny in tests/gallery/test_convnext.py."""


def gallery_specs() -> list[Path]:
    """The gallery: every spec in specs/ except the digits_* specs (owned by the training examples)."""
    return sorted(p for p in SPECS.glob("*.yaml") if not p.name.startswith("digits_"))


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------

def _random_inputs(model, rng: np.random.Generator, batch: int = 2, length: int = 7) -> list[np.ndarray]:
    arrays = []
    for tensor in model.inputs:
        shape = (batch,) + tuple(length if d is None else d for d in tensor.shape[1:])
        if "int" in str(tensor.dtype):
            arrays.append(rng.integers(0, 1000, size=shape).astype(str(tensor.dtype)))
        else:
            arrays.append(rng.standard_normal(shape).astype("float32"))
    return arrays


def _flat_outputs(value, names: list[str] | None = None) -> list[np.ndarray]:
    if isinstance(value, dict):
        return [np.asarray(value[k]) for k in (names or sorted(value))]
    if isinstance(value, (list, tuple)):
        return [np.asarray(v) for v in value]
    return [np.asarray(value)]


def assert_same_model(built, hand, *, rng_seed: int = 0, atol: float = 1e-5) -> None:
    """Same layer types in order, parameter counts, output shapes, and outputs for the same weights."""
    built_types = [type(layer).__name__ for layer in built.layers]
    hand_types = [type(layer).__name__ for layer in hand.layers]
    assert built_types == hand_types

    assert built.count_params() == hand.count_params()
    trainable = lambda m: sum(int(np.prod(w.shape)) for w in m.trainable_weights)  # noqa: E731
    assert trainable(built) == trainable(hand)

    assert [tuple(t.shape) for t in built.inputs] == [tuple(t.shape) for t in hand.inputs]
    assert [str(t.dtype) for t in built.inputs] == [str(t.dtype) for t in hand.inputs]
    assert [tuple(t.shape) for t in built.outputs] == [tuple(t.shape) for t in hand.outputs]

    for built_layer, hand_layer in zip(built.layers, hand.layers):
        hand_layer.set_weights(built_layer.get_weights())

    arrays = _random_inputs(built, np.random.default_rng(rng_seed))
    built_out = built(arrays if len(arrays) > 1 else arrays[0], training=False)
    hand_out = hand(arrays if len(arrays) > 1 else arrays[0], training=False)
    names = list(built_out) if isinstance(built_out, dict) else None
    if names is not None:
        assert isinstance(hand_out, dict) and sorted(hand_out) == sorted(names)
    built_flat, hand_flat = _flat_outputs(built_out, names), _flat_outputs(hand_out, names)
    assert len(built_flat) == len(hand_flat)
    for b, h in zip(built_flat, hand_flat):
        assert b.shape == h.shape
        assert np.all(np.isfinite(b))
        np.testing.assert_allclose(b, h, rtol=1e-5, atol=atol)


def build_spec(path: Path):
    checked = check_file(path)
    assert not checked.warnings, [w.message for w in checked.warnings]
    model = emit(checked)
    assert model.optimizer is not None, "every gallery spec has a compile: section"
    return checked, model


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Keras' automatic layer names restart at each test, so no test depends on the ones before it."""
    keras.backend.clear_session(free_memory=False)  # no gc.collect(): 0.5 s a test otherwise
    yield


def _params():
    for name in HAND_WRITTEN:
        if name in COMPARED_BY_NAME_ONLY:
            continue
        marks = [pytest.mark.slow] if name in SLOW else []
        yield pytest.param(name, id=name, marks=marks)


@pytest.mark.parametrize("name", list(_params()))
def test_spec_builds_the_hand_written_model(name: str, tmp_path: Path) -> None:
    spec_path = SPECS / f"{name}.yaml"
    hand_args = ()
    if name in NEEDS_SAVED_MODEL:
        # The saved model is made here, next to a copy of the spec: nothing binary is committed.
        shutil.copy(spec_path, tmp_path / spec_path.name)
        spec_path = tmp_path / spec_path.name
        encoder = _tool("make_encoder").write_encoder(tmp_path / "encoder.keras")
        hand_args = (encoder,)
    keras.utils.set_random_seed(1)
    checked, built = build_spec(spec_path)
    hand = HAND_WRITTEN[name](*hand_args)

    assert built.name == checked.spec.name
    assert built.count_params() == checked.spec.expect.params
    inferred = checked.inferred.total_params
    if inferred is not None:  # pure-Python inference agrees with Keras
        assert inferred == built.count_params()
    assert_same_model(built, hand, atol=1e-4 if name in SLOW else 1e-5)


def test_every_gallery_spec_has_a_hand_written_model() -> None:
    names = {p.stem for p in gallery_specs()}
    assert names == set(HAND_WRITTEN), "add the hand-written model of a new gallery spec to HAND_WRITTEN"


@pytest.mark.parametrize("path", gallery_specs(), ids=lambda p: p.stem)
def test_gallery_spec_conventions(path: Path) -> None:
    """Schema comment on line 1, a description, a compile section and the expected parameter count."""
    text = path.read_text()
    assert text.splitlines()[0] == SCHEMA_COMMENT
    checked = check_file(path)
    spec = checked.spec
    assert spec.description and len(spec.description) > 20
    assert spec.compile is not None and spec.compile.loss is not None
    assert spec.expect is not None and spec.expect.params is not None
    assert re.fullmatch(r"(siamese_[a-z0-9_]+|vae_[a-z0-9_]+|transformer_[a-z0-9_]+|mobilenet_[a-z0-9_]+|convnext_[a-z0-9_]+|seed\d{3}_[a-z0-9_]+|resnet\d+|seq2seq_[a-z0-9_]+)", path.stem)
    if checked.inferred.total_params is not None:
        assert checked.inferred.total_params == spec.expect.params


def test_shared_layers_are_one_instance() -> None:
    """A shared layer is one Keras layer called several times: one set of weights."""
    _, siamese = build_spec(SPECS / "seed001_siamese_text.yaml")
    embeddings = [layer for layer in siamese.layers if isinstance(layer, layers.Embedding)]
    assert len(embeddings) == 1 and embeddings[0].name == "shared_embed"
    assert len(embeddings[0]._inbound_nodes) == 2
    assert siamese.count_params() == 10000 * 128 + 2 * 49408 + 129

    _, two_outputs = build_spec(SPECS / "seed003_shared_two_outputs.yaml")
    shared = two_outputs.get_layer("shared_layer")
    assert len(shared._inbound_nodes) == 2
    # Changing the one kernel changes both outputs' inputs: the calls share their weights.
    x = [np.ones((1, 10), "float32"), np.ones((1, 10), "float32")]
    before = [np.asarray(v) for v in two_outputs(x)]
    kernel, bias = shared.get_weights()
    shared.set_weights([kernel + 1.0, bias])
    after = [np.asarray(v) for v in two_outputs(x)]
    assert all(not np.allclose(b, a) for b, a in zip(before, after))


def test_sequential_spec_matches_the_seed_sequential_model() -> None:
    """seed004_sequential.yaml computes what the seed's plain keras.Sequential computes."""
    _, built = build_spec(SPECS / "seed004_sequential.yaml")
    seed_model = keras.Sequential([
        keras.Input(shape=(10,)),
        layers.Dense(64, activation="relu", name="dense_1"),
        layers.Dense(10, activation="softmax", name="dense_2"),
    ])
    seed_model.set_weights(built.get_weights())
    x = np.random.default_rng(3).standard_normal((4, 10)).astype("float32")
    np.testing.assert_allclose(np.asarray(built(x)), np.asarray(seed_model(x)), rtol=1e-6, atol=1e-6)


def test_saved_model_node_is_frozen(tmp_path: Path) -> None:
    shutil.copy(SPECS / "seed002_model_as_layer.yaml", tmp_path)
    _tool("make_encoder").write_encoder(tmp_path / "encoder.keras")
    checked, model = build_spec(tmp_path / "seed002_model_as_layer.yaml")
    encoded = model.get_layer("encoded")
    assert not encoded.trainable
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == checked.spec.expect.trainable_params == 32 * 32 + 32 + 8 + 1


@pytest.mark.slow
def test_resnet50_layer_names_match_keras_applications() -> None:
    checked = check_file(SPECS / "resnet50.yaml")
    reference = keras.applications.ResNet50(weights=None)
    names = [layer.name for layer in reference.layers[1:]]
    assert sorted(checked.graph.nodes) == sorted(names)  # Keras lists a block's 1_conv before its 0_conv
    for name, node in checked.graph.nodes.items():
        assert node.layer_type == type(reference.get_layer(name)).__name__
    assert checked.inferred.total_params == reference.count_params() == 25_636_712


@pytest.mark.parametrize("path", gallery_specs(), ids=lambda p: p.stem)
def test_gallery_spec_satisfies_the_editor_schema(path: Path) -> None:
    """The JSON Schema that line 1 points editors at accepts every gallery spec (no false squiggles)."""
    jsonschema = pytest.importorskip("jsonschema")
    import json

    from graphspec.loader import load

    schema_file = (path.parent / SCHEMA_COMMENT.split("$schema=", 1)[1]).resolve()
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'.'.join(map(str, e.path))}: {e.message[:200]}" for e in validator.iter_errors(load(path).data)]
    assert not errors


def test_checked_in_encoder_builds_the_gallery_spec() -> None:
    """specs/encoder.keras (checked in for 'graphspec check specs/') is the encoder the spec expects."""
    checked, model = build_spec(SPECS / "seed002_model_as_layer.yaml")
    assert model.count_params() == checked.spec.expect.params
    reference = _tool("make_encoder").make_encoder()
    loaded = keras.saving.load_model(SPECS / "encoder.keras", compile=False)
    assert [w.shape for w in loaded.weights] == [w.shape for w in reference.weights]


def test_seq2seq_spec_is_the_hand_written_model_exactly() -> None:
    """initial_state: [h, c] builds the hand-written seq2seq model: same layer names, parameter
    counts and, with the weights copied, bit-identical outputs."""
    checked, built = build_spec(SPECS / "seq2seq_lstm.yaml")
    hand = seq2seq_lstm()
    assert [layer.name for layer in built.layers] == [layer.name for layer in hand.layers]
    assert [layer.count_params() for layer in built.layers] == [layer.count_params() for layer in hand.layers]
    assert built.count_params() == hand.count_params() == checked.inferred.total_params == 1_675_632
    decoder = built.get_layer("decoder")
    # The decoder's call received the encoder's two states as its initial_state list.
    assert [t._keras_history.operation.name for t in decoder._inbound_nodes[0].input_tensors] == \
        ["decoder_embedding", "encoder", "encoder"]
    hand.set_weights(built.get_weights())
    rng = np.random.default_rng(3)
    arrays = [rng.integers(0, 5000, size=(3, 9)).astype("int32"), rng.integers(0, 6000, size=(3, 11)).astype("int32")]
    built_out, hand_out = np.asarray(built(arrays)), np.asarray(hand(arrays))
    assert built_out.shape == (3, 11, 6000)
    assert np.array_equal(built_out, hand_out)
    # The states matter: other encoder weights change the decoder's outputs.
    encoder = built.get_layer("encoder")
    encoder.set_weights([w + 0.1 for w in encoder.get_weights()])
    assert not np.allclose(np.asarray(built(arrays)), hand_out)


# --------------------------------------------------------------------------------------------
# ResNet specs (spec language 1.1)
# --------------------------------------------------------------------------------------------

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


def _spec_lines(path: Path) -> list[str]:
    """Lines that count: not blank, not comments."""
    return [line for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_resnet50_spec_is_hand_written_in_at_most_60_lines() -> None:
    assert len(_spec_lines(SPECS / "resnet50.yaml")) <= 60
    assert not (SPECS / "tools" / "gen_resnet50.py").exists()


@pytest.mark.parametrize("name", [n for n in RESNETS if n != "resnet50"])
def test_resnet_specs_differ_from_resnet50_in_one_line(name: str) -> None:
    """One set of block definitions: every ResNet spec is resnet50.yaml with another 'variant:'."""
    base = (SPECS / "resnet50.yaml").read_text().splitlines()
    other = (SPECS / f"{name}.yaml").read_text().splitlines()
    assert len(base) == len(other)
    assert [(a, b) for a, b in zip(base, other) if a != b] == [("variant: resnet50", f"variant: {name}")]


def test_resnet_variants_of_one_spec_are_the_resnet_specs() -> None:
    """resnet50.yaml --variant X checks to the same graph as resnetX.yaml (pure Python)."""
    from graphspec.canonical import graph_hash

    for name in RESNETS:
        chosen = check_file(SPECS / "resnet50.yaml", variant=name)
        assert graph_hash(chosen) == graph_hash(check_file(SPECS / f"{name}.yaml"))
        assert chosen.spec.name == name


def _copy_weights_by_name(source, target) -> int:
    copied = 0
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())
            copied += 1
    return copied


def _assert_same_by_name(built, reference, *, params: int) -> None:
    """Same layer names and types, same parameter count, bit-identical outputs with weights copied by name."""
    built_layers = {layer.name: type(layer).__name__ for layer in built.layers[1:]}
    reference_layers = {layer.name: type(layer).__name__ for layer in reference.layers[1:]}
    assert built_layers == reference_layers
    assert built.count_params() == reference.count_params() == params
    assert _copy_weights_by_name(built, reference) > 0
    x = np.random.default_rng(5).standard_normal((1, 224, 224, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(built(x, training=False)), np.asarray(reference(x, training=False)))


@pytest.mark.slow
@pytest.mark.parametrize("name, params", [("resnet50", 25_636_712), ("resnet101", 44_707_176),
                                          ("resnet152", 60_419_944)])
def test_resnet_spec_is_keras_applications_resnet(name: str, params: int) -> None:
    checked = check_file(SPECS / f"{name}.yaml")
    assert checked.inferred.total_params == params
    built = emit(checked)
    _assert_same_by_name(built, HAND_WRITTEN[name](), params=params)


@pytest.mark.slow
@pytest.mark.parametrize("name, params", [("resnet18", 11_703_912), ("resnet34", 21_823_208)])
def test_resnet_basic_spec_is_the_hand_written_keras_model(name: str, params: int) -> None:
    built = emit(check_file(SPECS / f"{name}.yaml"))
    _assert_same_by_name(built, HAND_WRITTEN[name](), params=params)


# --------------------------------------------------------------------------------------------
# op: node gallery specs (spec language 1.1): exact comparisons with the hand-written models
# --------------------------------------------------------------------------------------------

def _copy_weights(built, hand) -> None:
    for built_layer, hand_layer in zip(built.layers, hand.layers):
        hand_layer.set_weights(built_layer.get_weights())


@pytest.mark.parametrize("name", sorted(OP_GALLERY))
def test_op_gallery_spec_is_the_hand_written_model_bit_for_bit(name: str, tmp_path: Path) -> None:
    """Same layer names and types, parameter counts, and bit-identical outputs for copied weights; the
    built artifact loads in Keras with safe_mode=True and computes the same."""
    keras.utils.set_random_seed(1)
    checked, built = build_spec(SPECS / f"{name}.yaml")
    hand = OP_GALLERY[name]()
    assert [type(layer).__name__ for layer in built.layers] == [type(layer).__name__ for layer in hand.layers]
    for built_layer, hand_layer in zip(built.layers[len(hand.inputs):], hand.layers[len(hand.inputs):]):
        automatic = keras.src.utils.naming.to_snake_case(type(hand_layer).__name__)
        if not re.fullmatch(rf"{automatic}(_\d+)?", hand_layer.name):  # a name Keras' model gives itself
            assert built_layer.name == hand_layer.name
    assert built.count_params() == hand.count_params() == checked.inferred.total_params
    _copy_weights(built, hand)
    arrays = _random_inputs(built, np.random.default_rng(5), batch=3)
    args = arrays if len(arrays) > 1 else arrays[0]
    built_out, hand_out = built(args, training=False), hand(args, training=False)
    for b, h in zip(_flat_outputs(built_out, sorted(checked.graph.outputs)),
                    _flat_outputs(hand_out, sorted(checked.graph.outputs))):
        assert np.array_equal(b, h)
    path = tmp_path / f"{name}.keras"
    built.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    for b, h in zip(_flat_outputs(loaded(args, training=False), sorted(checked.graph.outputs)),
                    _flat_outputs(built_out, sorted(checked.graph.outputs))):
        assert np.array_equal(b, h)


def test_vae_sampling_is_seeded_and_only_in_training() -> None:
    """training=True: z_mean + exp(0.5 z_log_var) * epsilon with GaussianNoise(seed=1337), the same draw as
    the hand-written model's; training=False (predict, evaluate): the deterministic z = z_mean."""
    keras.utils.set_random_seed(1)
    _, built = build_spec(SPECS / "vae_dense.yaml")
    hand = vae_dense()
    _copy_weights(built, hand)
    x = np.random.default_rng(2).uniform(0, 1, (4, 784)).astype("float32")
    sampled_built = np.asarray(built(x, training=True)["reconstruction"])
    sampled_hand = np.asarray(hand(x, training=True)["reconstruction"])
    assert np.array_equal(sampled_built, sampled_hand)
    mean_only = np.asarray(built(x, training=False)["reconstruction"])
    assert not np.allclose(sampled_built, mean_only)
    # the deterministic part, written out with the weights: decoder(z_mean)
    encoder = keras.Model(built.inputs, built.get_layer("z_mean").output)
    decoder_input = keras.Input((2,))
    decoded = built.get_layer("reconstruction")(built.get_layer("decoder_hidden")(decoder_input))
    decoder = keras.Model(decoder_input, decoded)
    np.testing.assert_allclose(mean_only, np.asarray(decoder(encoder(x))), rtol=1e-6, atol=1e-6)
    kl = np.asarray(built(x, training=False)["kl"])
    assert kl.shape == (4, 1) and np.all(kl >= 0)


def test_vae_trains_on_its_two_losses() -> None:
    """The KL output trains toward zero targets with mean_absolute_error (KL is never negative)."""
    keras.utils.set_random_seed(3)
    _, built = build_spec(SPECS / "vae_dense.yaml")
    x = np.random.default_rng(4).uniform(0, 1, (64, 784)).astype("float32")
    targets = {"reconstruction": x, "kl": np.zeros((64, 1), "float32")}
    history = built.fit(x, targets, epochs=3, batch_size=16, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert set(history) >= {"reconstruction_loss", "kl_loss"}


def test_transformer_positions_are_arange_over_the_sequence() -> None:
    """The op nodes give each token its position 0..199 (what arange over the length gives), and the
    number of encoder layers is the 'layers' parameter (repeat:)."""
    keras.utils.set_random_seed(1)
    checked, built = build_spec(SPECS / "transformer_encoder_classifier.yaml")
    probe = keras.Model(built.inputs, built.get_layer("position_embedding").input)
    tokens = np.random.default_rng(0).integers(0, 20000, (3, 200)).astype("int32")
    assert np.array_equal(np.asarray(probe(tokens)), np.tile(np.arange(200), (3, 1)))
    four = check_file(SPECS / "transformer_encoder_classifier.yaml", params={"layers": 4})
    assert sum(1 for name in four.graph.nodes if name.endswith("_ff_norm")) == 4
    assert four.inferred.total_params == checked.inferred.total_params + 2 * 12_736
