"""The ``train:`` section of a spec: data, batching, callbacks, precision, distribution.

Pure Pydantic models (no TensorFlow): ``graphspec check`` validates the train
section with the rest of the spec, and CLI overrides (``--epochs 5``,
``--set train.batch_size=64``) are validated by these same models. Data paths
are relative to the spec's folder and may not leave it (checked when the data is
opened, see :mod:`graphspec.train.data`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Discriminator, Field, Tag, field_validator, model_validator

from graphspec.schema.model import NAME_PATTERN, ArgValue, Name, StrictModel, document_fields, keyed_form

PathText = Annotated[str, Field(min_length=1, max_length=1024)]
"""A file or folder path, relative to the spec's folder (it may not leave that folder)."""

KeyName = Annotated[str, Field(min_length=1, max_length=256)]
"""The name of an array, a CSV column or a TFRecord feature in a data file."""

Monitor = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
"""A quantity logged during training: ``loss``, ``val_loss``, ``val_accuracy``, ``val_<output>_loss``, ..."""

Mode = Literal["auto", "min", "max"]

BUILTIN_DATASETS = ("digits",)


class _Source(StrictModel):
    """Fields every data source has."""

    map: dict[Name, KeyName] = Field(default_factory=dict)
    """Spec input/output name -> name of the array (NPZ, built-in) or feature (TFRecord) holding it.
    Names not listed are looked up under their own name."""
    limit: int | None = Field(default=None, ge=1, le=2**40)
    """Use only the first ``limit`` examples (quick experiments, tests)."""
    cache: bool = False
    """Cache decoded examples in memory after the first epoch (for sources that decode files)."""


class NpzSource(_Source):
    """Arrays in a ``.npz`` file (``numpy.savez``), one per input/output, the first axis the examples."""

    npz: PathText
    """Path of the ``.npz`` file, relative to the spec's folder."""


class BuiltinSource(_Source):
    """A dataset shipped inside graphspec (no download): ``digits`` is scikit-learn's 8x8 digits.

    Its arrays: ``image`` (8, 8, 1) uint8 0..16, ``pixels`` (64,) float32 0..1, ``label`` int32 0..9,
    ``onehot`` (10,) float32, ``parity`` (1,) float32 (1 for odd digits), ``ink`` (1,) float32
    (mean pixel intensity 0..1), ``rows`` (8,) and ``cols`` (8,) float32 (ink profile per row/column),
    ``profile`` (16,) float32 (``rows`` then ``cols``)."""

    builtin: Literal["digits"]
    """Name of the built-in dataset."""


class CsvSource(_Source):
    """A CSV file with a header row; columns are mapped to inputs and outputs by ``columns``."""

    csv: PathText
    """Path of the ``.csv`` file, relative to the spec's folder."""
    columns: dict[Name, Union[KeyName, Annotated[list[KeyName], Field(min_length=1)]]] = Field(min_length=1)
    """Spec input/output name -> a column name, or a list of columns gathered (in order) into one vector."""
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    """The field separator."""


class ImageDirSource(_Source):
    """A folder with one sub-folder of images (PNG, JPEG, GIF, BMP) per class: ``root/cat/1.png``."""

    images: PathText
    """Path of the folder, relative to the spec's folder."""
    input: Name | None = None
    """The spec input that receives the image (resized to its shape); omitted: the only input."""
    label: Name | None = None
    """The spec output that receives the class; omitted: the only output."""
    classes: list[KeyName] | None = Field(default=None, min_length=1)
    """Class folder names in label order; omitted: every sub-folder, sorted by name."""
    one_hot: bool = False
    """Give labels as one-hot vectors (for ``categorical_crossentropy``) instead of class indices."""


class FeatureSpec(StrictModel):
    """One feature of a TFRecord ``tf.train.Example`` (a ``tf.io.FixedLenFeature``)."""

    shape: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(default_factory=list, max_length=8)
    """Shape of the feature in one example (``[]`` for a scalar)."""
    dtype: Literal["float32", "int64", "string"] = "float32"
    """Stored type: ``float32`` (float_list), ``int64`` (int64_list) or ``string`` (bytes_list)."""
    decode: Literal["image", "raw"] | None = None
    """Decode a ``string`` feature: ``image`` (PNG/JPEG/GIF/BMP bytes) or ``raw`` (bytes of the input's dtype)."""


class TfrecordSource(_Source):
    """TFRecord files of ``tf.train.Example`` with a feature description."""

    tfrecord: Union[PathText, Annotated[list[PathText], Field(min_length=1, max_length=10_000)]]
    """A file or a list of files, relative to the spec's folder."""
    features: dict[KeyName, FeatureSpec] = Field(min_length=1)
    """Feature name -> its shape and type; mapped to inputs/outputs by name or through ``map``."""
    compression: Literal["none", "gzip", "zlib"] = "none"
    """Compression of the files."""


source_form = keyed_form({"npz": "npz-source", "builtin": "builtin-source", "csv": "csv-source",
                          "images": "images-source", "tfrecord": "tfrecord-source"})
"""Which kind of data source a mapping is, by the one key naming its kind."""


DataSource = Annotated[
    Union[
        Annotated[NpzSource, Tag("npz-source")],
        Annotated[BuiltinSource, Tag("builtin-source")],
        Annotated[CsvSource, Tag("csv-source")],
        Annotated[ImageDirSource, Tag("images-source")],
        Annotated[TfrecordSource, Tag("tfrecord-source")],
    ],
    Discriminator(
        source_form,
        custom_error_type="data-source-form",
        custom_error_message="a data source needs exactly one of 'npz', 'builtin', 'csv', 'images' or 'tfrecord'",
    ),
]
"""Where examples come from; which kind is said by the one key naming it."""


class ValidationSpec(StrictModel):
    """Validation data: a fraction held out of the training data, or a source of its own."""

    split: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Fraction of the training examples held out for validation (e.g. ``0.2``)."""
    data: DataSource | None = None
    """A separate validation source (same forms as ``train.data``)."""
    shuffle_before_split: bool = True
    """Choose the held-out examples by a seeded shuffle (``true``) or take the last ones in file order."""
    frequency: int = Field(default=1, ge=1, le=1_000_000)
    """Validate every this many epochs."""

    @model_validator(mode="after")
    def _one_of(self) -> "ValidationSpec":
        if (self.split is None) == (self.data is None):
            raise ValueError("validation needs exactly one of 'split' or 'data'")
        return self


class EarlyStoppingSpec(StrictModel):
    """Stop when a monitored quantity stops improving (``keras.callbacks.EarlyStopping``)."""

    monitor: Monitor = "val_loss"
    """Quantity to watch."""
    patience: int = Field(default=5, ge=0, le=1_000_000)
    """Epochs without improvement before stopping."""
    min_delta: float = Field(default=0.0, ge=0.0)
    """Smallest change counted as an improvement."""
    mode: Mode = "auto"
    """Whether the quantity should go down (``min``) or up (``max``); ``auto`` infers it from the name."""
    restore_best_weights: bool = True
    """End with the weights of the best epoch rather than the last."""
    start_from_epoch: int = Field(default=0, ge=0)
    """Epochs to wait before watching."""


class ReduceLROnPlateauSpec(StrictModel):
    """Lower the learning rate when a quantity stops improving (``keras.callbacks.ReduceLROnPlateau``)."""

    monitor: Monitor = "val_loss"
    """Quantity to watch."""
    factor: float = Field(default=0.1, gt=0.0, lt=1.0)
    """Multiply the learning rate by this."""
    patience: int = Field(default=10, ge=0, le=1_000_000)
    """Epochs without improvement before lowering."""
    min_delta: float = Field(default=1e-4, ge=0.0)
    """Smallest change counted as an improvement."""
    cooldown: int = Field(default=0, ge=0)
    """Epochs to wait after a reduction before watching again."""
    min_lr: float = Field(default=0.0, ge=0.0)
    """Lower bound of the learning rate."""
    mode: Mode = "auto"
    """``min``, ``max`` or ``auto``."""


class BestModelSpec(StrictModel):
    """Keep the best model seen so far as ``best.keras`` in the run directory."""

    monitor: Monitor | None = None
    """Quantity deciding "best"; omitted: ``val_loss`` with validation data, else ``loss``."""
    mode: Mode = "auto"
    """``min``, ``max`` or ``auto``."""


class LrScheduleSpec(BaseModel):
    """A Keras learning-rate schedule evaluated once per epoch (its ``step`` counts epochs):
    ``{type: ExponentialDecay, initial_learning_rate: 0.001, decay_steps: 1, decay_rate: 0.9}``.
    (A schedule counting optimizer steps belongs in ``compile.optimizer.learning_rate``.)"""

    model_config = StrictModel.model_config.copy() | {"extra": "allow"}
    __pydantic_extra__: dict[str, ArgValue]

    type: str
    """A class of ``keras.optimizers.schedules``: ``ExponentialDecay``, ``CosineDecay``,
    ``PiecewiseConstantDecay``, ``PolynomialDecay``, ``InverseTimeDecay``, ``CosineDecayRestarts``."""

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        from graphspec.catalogue import catalogue

        classes = list(catalogue().namespace("schedules")["classes"])
        if value not in classes:
            raise ValueError(f"unknown learning-rate schedule '{value}' (one of {', '.join(classes)})")
        return value

    @model_validator(mode="after")
    def _arguments(self) -> "LrScheduleSpec":
        from graphspec.catalogue import catalogue

        known = catalogue().namespace("schedules")["classes"][self.type]["args"]
        unknown = [k for k in (self.model_extra or {}) if k not in known or k == "name"]
        if unknown:
            raise ValueError(f"{self.type} has no argument '{unknown[0]}' (it takes {', '.join(a for a in known if a != 'name')})")
        missing = [k for k, a in known.items() if a.get("required") and k not in (self.model_extra or {})]
        if missing:
            raise ValueError(f"{self.type} needs '{missing[0]}'")
        return self

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TensorBoardSpec(StrictModel):
    """TensorBoard logs in ``logs/`` of the run directory (``keras.callbacks.TensorBoard``)."""

    update_freq: Literal["epoch", "batch"] | int = "epoch"
    """Write scalars every epoch, every batch, or every N batches."""
    histogram_freq: int = Field(default=0, ge=0)
    """Epochs between weight histograms (0: none)."""
    write_graph: bool = False
    """Also write the model graph."""


class CallbacksSpec(StrictModel):
    """Callbacks by name; each is off unless given (``best_model`` and ``tensorboard`` are on by default)."""

    early_stopping: EarlyStoppingSpec | None = None
    """Stop when the monitored quantity stops improving."""
    reduce_lr_on_plateau: ReduceLROnPlateauSpec | None = None
    """Lower the learning rate on a plateau."""
    best_model: BestModelSpec | Literal[False] = Field(default_factory=BestModelSpec)
    """Keep the best model as ``best.keras``; ``false`` to turn it off."""
    lr_schedule: LrScheduleSpec | None = None
    """Set the learning rate at the start of every epoch from a Keras schedule of the epoch number."""
    tensorboard: TensorBoardSpec | Literal[False] = Field(default_factory=TensorBoardSpec)
    """TensorBoard logs; ``false`` to turn them off."""


class TrainSpec(StrictModel):
    """How to train the model: ``graphspec train spec.yaml``. Every field can be overridden on the
    command line (``--epochs 5``, ``--set train.batch_size=64``)."""

    data: DataSource | None = None
    """Training examples, mapped to the spec's inputs and outputs by name (or ``--data`` on the command line)."""
    validation: ValidationSpec | None = None
    """Validation data: ``{split: 0.2}`` or ``{data: {npz: val.npz}}``."""
    batch_size: int = Field(default=32, ge=1, le=2**20)
    """Examples per batch (per replica under a distribution strategy; the global batch is scaled)."""
    epochs: int = Field(default=10, ge=1, le=1_000_000)
    """Number of passes over the training data."""
    steps_per_epoch: int | None = Field(default=None, ge=1, le=2**40)
    """Batches per epoch; omitted: one full pass over the data."""
    shuffle: bool = True
    """Shuffle the training examples every epoch (seeded by ``seed``)."""
    shuffle_buffer: int = Field(default=10_000, ge=1, le=2**31 - 1)
    """Buffer size when shuffling a streamed source (TFRecord); in-memory data is shuffled completely."""
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    """Random seed (weights, dropout, shuffling); omitted: a random one, recorded in the run directory."""
    deterministic: bool = False
    """Enable TensorFlow's op determinism (bit-identical reruns, somewhat slower; turns XLA off)."""
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    """Keras dtype policy: ``mixed_float16`` (GPUs) or ``mixed_bfloat16`` (TPUs, recent CPUs)."""
    jit_compile: bool | Literal["auto"] = "auto"
    """XLA compilation of the training step; ``auto`` is Keras' choice (off on CPU-only machines)."""
    strategy: Literal["default", "mirrored", "multi-worker"] = "default"
    """``mirrored``: all local GPUs (or ``cpu_devices`` logical CPUs); ``multi-worker``: the cluster in
    ``TF_CONFIG`` (``MultiWorkerMirroredStrategy``)."""
    cpu_devices: int | None = Field(default=None, ge=1, le=64)
    """With ``strategy: mirrored`` and no GPU, split the CPU into this many logical devices."""
    callbacks: CallbacksSpec = Field(default_factory=CallbacksSpec)
    """Callbacks by name."""
    verbose: Literal[0, 1, 2] = 1
    """Keras' progress output: 0 silent, 1 progress bar, 2 one line per epoch."""

    @model_validator(mode="after")
    def _cpu_devices(self) -> "TrainSpec":
        if self.cpu_devices is not None and self.strategy != "mirrored":
            raise ValueError("cpu_devices is only used with strategy: mirrored")
        return self


document_fields(globals())  # the models above: descriptions for the JSON Schema

TRAIN_FIELDS = tuple(TrainSpec.model_fields)
"""Top-level keys of the train section (for ``--set`` hints)."""

__all__ = [
    "BUILTIN_DATASETS", "BuiltinSource", "CallbacksSpec", "CsvSource", "DataSource", "FeatureSpec",
    "ImageDirSource", "NpzSource", "TfrecordSource", "TrainSpec", "ValidationSpec", "source_form", "NAME_PATTERN",
]
