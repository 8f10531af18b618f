"""Seed 000's two-branch model (docs/import.md's migration example), as a team's functional-API code has it."""

from tensorflow import keras
from tensorflow.keras import layers


def two_branch():
    input_tensor = layers.Input(shape=(64, 64, 3), name="image")

    # First branch: Convolution and Pooling
    conv_branch_1 = layers.Conv2D(32, (3, 3), activation="relu", padding="same", name="conv_branch_1")(input_tensor)
    pool_branch_1 = layers.MaxPooling2D((2, 2), name="pool_branch_1")(conv_branch_1)

    # Second branch: Another Convolution with different parameters
    conv_branch_2 = layers.Conv2D(64, (5, 5), activation="relu", padding="same", name="conv_branch_2")(input_tensor)
    pool_branch_2 = layers.MaxPooling2D((2, 2), name="pool_branch_2")(conv_branch_2)

    # Concatenate the outputs of both branches
    merged = layers.concatenate([pool_branch_1, pool_branch_2], name="merged")
    flattened = layers.Flatten(name="flattened")(merged)
    output = layers.Dense(10, activation="softmax", name="output")(flattened)
    model = keras.Model(inputs=input_tensor, outputs=output, name="two_branch")
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model
