"""``TrainConfig``: every choice of a training run, serialisable to JSON.

The app and the CLI both build one and hand it to :func:`tltools.training.train`;
the same config, data and seed give the same split and, on CPU, the same metrics.
"""

import dataclasses
import json
from pathlib import Path

from tltools.data.augment import AugmentOptions
from tltools.errors import TLToolsError

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
POOLINGS = ("avg", "max", "flatten")
CLASS_WEIGHTS = ("off", "balanced")


@dataclasses.dataclass
class TrainConfig:
    """A training run's settings.

    Attributes:
        backbone: Registry name of the pretrained base (``python -m tltools backbones``).
        weights: ``"imagenet"``, ``"none"`` or a path to a weights file for the base.
        image_size: Square input size; None uses the backbone's default.
        pooling: ``avg``, ``max`` or ``flatten`` over the base's feature map.
        dense_units: Units of an extra ReLU layer in the head; 0 for none.
        dropout: Dropout before the classifier (0 turns it off).
        epochs: Phase-1 epochs: the new head trains on the frozen base.
        learning_rate: Phase-1 learning rate.
        optimizer: ``adam``, ``adamw``, ``sgd`` (with momentum) or ``rmsprop``.
        momentum: SGD momentum.
        weight_decay: AdamW weight decay.
        batch_size: Images per step.
        augment: Augmentations applied to training batches.
        label_smoothing: Cross-entropy label smoothing, 0..0.5.
        class_weights: ``off`` or ``balanced`` (weights from the training split).
        early_stopping_patience: Epochs without val-loss improvement before
            stopping (best weights restored); 0 turns early stopping off.
        reduce_lr_patience: Epochs without improvement before the learning rate
            is multiplied by ``reduce_lr_factor``; 0 turns it off.
        reduce_lr_factor: Factor of reduce-LR-on-plateau.
        fine_tune_epochs: Phase-2 epochs with part of the base unfrozen; 0 skips phase 2.
        fine_tune_learning_rate: Phase-2 learning rate; None means ``learning_rate / 10``.
        unfreeze: What phase 2 unfreezes: ``"all"``, a number of top weighted
            base layers (``"30"`` or 30), or ``"block:N"`` (from block N on).
        train_batchnorm: Also unfreeze BatchNorm layers in phase 2 (off by default:
            on small data their statistics would be ruined).
        val_fraction: Share of each class for validation when the data has no val split.
        test_fraction: Share of each class held out for testing when the data has no test split.
        seed: Seed of the split, the shuffle, augmentation and weight init.
        tensorboard: Also write TensorBoard logs into the run folder.
        top_k: k of the top-k accuracy in evaluation.
    """

    backbone: str = "efficientnet_lite0"
    weights: str = "imagenet"
    image_size: int | None = None
    pooling: str = "avg"
    dense_units: int = 0
    dropout: float = 0.2
    epochs: int = 10
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 32
    augment: AugmentOptions = dataclasses.field(default_factory=AugmentOptions)
    label_smoothing: float = 0.0
    class_weights: str = "off"
    early_stopping_patience: int = 5
    reduce_lr_patience: int = 0
    reduce_lr_factor: float = 0.2
    fine_tune_epochs: int = 0
    fine_tune_learning_rate: float | None = None
    unfreeze: str = "all"
    train_batchnorm: bool = False
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    seed: int = 42
    tensorboard: bool = False
    top_k: int = 5

    def __post_init__(self):
        if isinstance(self.augment, dict):
            self.augment = AugmentOptions(**self.augment)
        self.unfreeze = str(self.unfreeze)
        self.validate()

    @property
    def phase2_learning_rate(self) -> float:
        """The fine-tuning learning rate: as set, or a tenth of the phase-1 rate."""
        return self.fine_tune_learning_rate or self.learning_rate / 10

    def validate(self) -> None:
        """Raise TLToolsError naming the first setting that is out of range."""
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("pooling", self.pooling, POOLINGS)
        _choice("class_weights", self.class_weights, CLASS_WEIGHTS)
        _within("learning_rate", self.learning_rate, 1e-8, 10.0)
        if self.fine_tune_learning_rate is not None:
            _within("fine_tune_learning_rate", self.fine_tune_learning_rate, 1e-8, 10.0)
        _within("epochs", self.epochs, 0, 10_000)
        _within("fine_tune_epochs", self.fine_tune_epochs, 0, 10_000)
        if self.epochs + self.fine_tune_epochs == 0:
            raise TLToolsError("epochs and fine_tune_epochs are both 0; train for at least one epoch")
        _within("batch_size", self.batch_size, 1, 4096)
        _within("dropout", self.dropout, 0.0, 0.95)
        _within("label_smoothing", self.label_smoothing, 0.0, 0.5)
        _within("dense_units", self.dense_units, 0, 65_536)
        _within("early_stopping_patience", self.early_stopping_patience, 0, 10_000)
        _within("reduce_lr_patience", self.reduce_lr_patience, 0, 10_000)
        _within("reduce_lr_factor", self.reduce_lr_factor, 0.01, 0.99)
        _within("top_k", self.top_k, 1, 100)
        if self.image_size is not None:
            _within("image_size", self.image_size, 32, 1024)

    def to_dict(self) -> dict:
        """Return the settings as plain JSON values."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Return the settings as a JSON document."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Build a config from :meth:`to_dict` output; unknown keys are an error.

        Raises:
            TLToolsError: A key is unknown or a value is out of range.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TLToolsError(f"unknown config setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        try:
            return cls(**values)
        except TypeError as error:
            raise TLToolsError(f"bad config: {error}") from None

    @classmethod
    def from_file(cls, path: Path | str) -> "TrainConfig":
        """Read a config written by :meth:`to_json`.

        Raises:
            TLToolsError: The file is missing, not JSON, or has bad settings.
        """
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise TLToolsError(f"config file not found: {path}") from None
        except json.JSONDecodeError as error:
            raise TLToolsError(f"config file {path} is not valid JSON ({error})") from None


def _choice(name: str, value, choices) -> None:
    if value not in choices:
        raise TLToolsError(f"{name}={value!r} is not one of {', '.join(choices)}")


def _within(name: str, value, low, high) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise TLToolsError(f"{name}={value!r} must be a number from {low} to {high}")
