"""Write the small encoder that ``specs/seed002_model_as_layer.yaml`` loads as a layer.

    python specs/tools/make_encoder.py specs/encoder.keras

The file is checked in (20 KB) so that `graphspec check specs/` and `graphspec build` work on a
fresh checkout; the gallery test writes its own copy in a temporary folder.

The encoder maps 32 features to 8 (Dense 16 relu, Dense 8): 664 parameters. Its
weights come from a fixed seed.
"""

from __future__ import annotations

import sys
from pathlib import Path


def make_encoder(seed: int = 0):
    """The encoder as a functional keras.Model (not saved)."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(32,), name="encoder_input")
    hidden = keras.layers.Dense(16, activation="relu", name="encoder_hidden")(inputs)
    code = keras.layers.Dense(8, name="encoder_code")(hidden)
    return keras.Model(inputs, code, name="encoder")


def write_encoder(path: str | Path, seed: int = 0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    make_encoder(seed).save(path)
    return path


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parent.parent / "encoder.keras")
    print(f"wrote {write_encoder(target)}")
