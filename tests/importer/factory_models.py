"""A user's model factory for tests/test_import.py (imported only with allow_code=True)."""

import keras


def small(width: int = 4):
    x = keras.Input((3,), name="x")
    y = keras.layers.Dense(width, activation="relu", name="hidden")(x)
    return keras.Model(x, keras.layers.Dense(1, name="out")(y), name="small")
