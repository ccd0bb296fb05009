"""``TrainConfig``: every choice of a training run, declared and validated in one place.

Each field states its type, default, allowed range or choices and a one-line help.
The app and the CLI both build one and hand it to :func:`tltools.training.train`;
``python -m tltools train``'s options are generated from the fields
(:mod:`tltools.cli.train_cmd`) and the app's widgets take their bounds from them.
Everything is checked when the config is built, before any image is decoded,
including ``unfreeze`` against the chosen backbone's layers and blocks. The same
config, data and seed give the same split and, on CPU, the same metrics.
"""

import dataclasses
import functools
import json
from pathlib import Path
from typing import Literal

import pydantic
from pydantic import Field

from tltools.data.augment import AugmentOptions
from tltools.data.split import SplitSettings
from tltools.errors import TLToolsError

Optimizer = Literal["adam", "adamw", "sgd", "rmsprop"]
Pooling = Literal["avg", "max", "flatten"]
ClassWeights = Literal["off", "balanced"]
OPTIMIZERS = Optimizer.__args__
POOLINGS = Pooling.__args__
CLASS_WEIGHTS = ClassWeights.__args__
WEIGHTS_CHOICES = ("imagenet", "none")
_RATE = {"ge": 1e-8, "le": 10.0}
# What phase 2 unfreezes unless told: the backbone's top two blocks (resolved per backbone when the config is built).
DEFAULT_UNFREEZE = "top-blocks:2"
# Top weighted layers unfrozen by a top-blocks:K setting on a backbone without named blocks.
LAYERS_PER_BLOCK = 10
# Smallest fall of the validation cross-entropy that counts as an improvement for early stopping (and for
# auto mode's trials): without it a head on easy data creeps on by 1e-5 an epoch up to the epoch cap.
EARLY_STOPPING_MIN_DELTA = 1e-3


class TrainConfig(SplitSettings):
    """A training run's settings; the split settings (``val_fraction``, ``test_fraction``,
    ``seed``) come from :class:`tltools.data.split.SplitSettings`. Field descriptions are the help.

    Raises (when built or a field is set):
        TLToolsError: One line naming the first bad field, its value and what is allowed.
    """

    backbone: str = Field("efficientnet_lite0", description="backbone name (see `python -m tltools backbones`)")
    weights: str = Field("imagenet", description="starting weights of the base: imagenet, none, or a path to a "
                                                  "weights file saved with base.save_weights")
    image_size: int | None = Field(None, ge=32, le=1024,
                                   description="square input size in pixels; unset: the backbone's own")
    pooling: Pooling = Field("avg", description="pooling of the base's feature map")
    dense_units: int = Field(0, ge=0, le=65_536, description="units of an extra ReLU layer in the head; 0: none")
    dropout: float = Field(0.2, ge=0.0, le=0.95, description="dropout before the classifier; 0 turns it off")
    epochs: int = Field(200, ge=0, le=10_000,
                        description="at most this many phase-1 epochs (the new head on the frozen base); "
                                    "early stopping ends it when validation stops improving")
    learning_rate: float = Field(1e-3, **_RATE, description="phase-1 learning rate")
    optimizer: Optimizer = Field("adam", description="optimizer (sgd uses momentum, adamw weight decay)")
    momentum: float = Field(0.9, ge=0.0, le=0.999, description="SGD momentum")
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0, description="AdamW weight decay")
    batch_size: int = Field(32, ge=1, le=4096, description="images per step")
    augment: AugmentOptions = Field(default_factory=AugmentOptions,
                                    description="augmentations applied to training batches")
    label_smoothing: float = Field(0.0, ge=0.0, le=0.5, description="cross-entropy label smoothing")
    class_weights: ClassWeights = Field("off", description="class weights: off, or balanced from the training split")
    early_stopping_patience: int = Field(10, ge=0, le=10_000,
                                         description="epochs without val-loss improvement before stopping "
                                                     "(best weights restored); 0 turns early stopping off")
    reduce_lr_patience: int = Field(4, ge=0, le=10_000,
                                    description="epochs without improvement before the learning rate is "
                                                "multiplied by reduce_lr_factor; 0 turns it off")
    reduce_lr_factor: float = Field(0.2, ge=0.01, le=0.99, description="factor of reduce-LR-on-plateau")
    fine_tune_epochs: int = Field(0, ge=0, le=10_000,
                                  description="at most this many phase-2 epochs with part of the base unfrozen; "
                                              "0 skips phase 2")
    fine_tune_learning_rate: float | None = Field(None, **_RATE,
                                                  description="phase-2 learning rate; unset: learning_rate / 10")
    unfreeze: str = Field(DEFAULT_UNFREEZE,
                          description="what phase 2 unfreezes: all, none, the top N weighted base layers, "
                                      "block:N (from block N on) or top-blocks:K (the backbone's top K blocks; "
                                      "the default, a safe start on small data)")
    train_batchnorm: bool = Field(False, description="also train BatchNorm layers in phase 2 (ruins their "
                                                     "statistics on small data)")
    gradual_unfreeze: bool = Field(False, description="phase 2 unfreezes one block more at a time from the top, "
                                                      "each deeper block at a 2.6x lower learning rate, the rate "
                                                      "decaying along a cosine (ULMFiT's recipe)")
    tensorboard: bool = Field(False, description="also write TensorBoard logs into the run folder")
    workers: int = Field(1, ge=1, le=256,
                         description="data-parallel worker processes (tf.distribute MultiWorkerMirroredStrategy "
                                     "through Ray Train: TLTOOLS_RAY_ADDRESS's cluster, else a local Ray; needs "
                                     "requirements-ray.txt); batch_size stays the global batch; 1: this process")
    top_k: int = Field(5, ge=1, le=100, description="k of the top-k accuracy in evaluation")
    teacher_run: str | None = Field(None, description="knowledge distillation: a trained run (folder or run id) "
                                                      "whose softened probabilities the model also learns, on "
                                                      "the teacher's own split; unset: plain training")
    distill_temperature: float = Field(4.0, ge=1.0, le=100.0,
                                       description="distillation temperature T softening the teacher's and the "
                                                   "model's probabilities (with teacher_run)")
    distill_alpha: float = Field(0.5, ge=0.0, le=1.0,
                                 description="weight of the true labels in distillation; the rest goes to the "
                                             "teacher's soft targets (with teacher_run)")
    distill_unlabeled: str | None = Field(None, description="a folder of unlabelled images the teacher labels for "
                                                            "the model, soft targets only (with teacher_run)")

    @pydantic.field_validator("unfreeze", mode="before")
    @classmethod
    def _unfreeze_as_text(cls, value):
        return str(value).strip().lower() if isinstance(value, (int, str)) and not isinstance(value, bool) else value

    @pydantic.model_validator(mode="before")
    @classmethod
    def _unfreeze_resolved(cls, values):  # top-blocks:K (the default) becomes the backbone's own block:N
        if isinstance(values, dict):
            backbone = values.get("backbone", cls.model_fields["backbone"].default)
            setting = values.get("unfreeze", DEFAULT_UNFREEZE)
            if isinstance(backbone, str) and isinstance(setting, str):
                values = {**values, "unfreeze": resolve_unfreeze(backbone, setting)}
        return values

    @pydantic.field_validator("augment", mode="before")
    @classmethod
    def _augment_checked(cls, value):  # as a dict, so that the ranges declared on AugmentOptions' fields apply
        return dataclasses.asdict(value) if isinstance(value, AugmentOptions) else value

    @pydantic.field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value):
        from tltools.backbones import list_backbones

        names = [spec.name for spec in list_backbones()]
        if value not in names:
            raise ValueError(f"unknown backbone; use one of {', '.join(names)}")
        return value

    @pydantic.field_validator("weights")
    @classmethod
    def _usable_weights(cls, value):
        if value not in WEIGHTS_CHOICES and not Path(value).expanduser().is_file():
            raise ValueError("is neither imagenet, none nor an existing weights file; use one of those")
        return value

    @pydantic.model_validator(mode="after")
    def _consistent(self):
        if self.epochs + self.fine_tune_epochs == 0:
            raise ValueError("epochs and fine_tune_epochs are both 0; train for at least one epoch")
        from tltools.backbones import get_backbone

        spec = get_backbone(self.backbone)
        if self.image_size is not None and self.image_size < spec.min_size:
            raise ValueError(f"image_size={self.image_size} is too small for {spec.name}; "
                             f"use a whole number from {spec.min_size} to 1024")
        problem = unfreeze_problem(self.backbone, self.unfreeze)
        if problem:
            raise ValueError(problem)
        if self.distill_unlabeled and not self.teacher_run:
            raise ValueError("distill_unlabeled is set without teacher_run; unlabelled images need a teacher "
                             "to label them: set teacher_run too")
        self.__dict__["unfreeze"] = resolve_unfreeze(self.backbone, self.unfreeze)  # also when set on its own
        return self

    @property
    def phase2_learning_rate(self) -> float:
        """The fine-tuning learning rate: as set, or a tenth of the phase-1 rate."""
        return self.fine_tune_learning_rate or self.learning_rate / 10

    def validate(self) -> None:
        """Check every setting again (they are checked when set; this is for callers that ask).

        Raises:
            TLToolsError: A setting is out of range.
        """
        type(self)(**dict(self))

    def to_dict(self) -> dict:
        """Return the settings as plain JSON values."""
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        """Return the settings as a JSON document."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Build a config from :meth:`to_dict` output; unknown keys are an error.

        Raises:
            TLToolsError: A key is unknown or a value is out of range.
        """
        if not isinstance(values, dict):
            raise TLToolsError(f"a config is a JSON object of settings, not {type(values).__name__}")
        return cls(**values)

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


def resolve_unfreeze(backbone: str, setting: str) -> str:
    """Return ``setting`` with a ``top-blocks:K`` form replaced by what it means for ``backbone``.

    ``top-blocks:K`` is ``block:N`` for the K-th block from the top of the registry's
    block list (the first block when it has fewer), or the top ``K *`` :data:`LAYERS_PER_BLOCK`
    weighted layers for a backbone without named blocks. Any other setting (and an
    unknown backbone or a malformed K) is returned as it is, for validation to judge.
    """
    from tltools.backbones import list_backbones

    text = setting.strip().lower()
    count = text.removeprefix("top-blocks:")
    specs = {spec.name: spec for spec in list_backbones()}
    if text == count or not count.isdigit() or int(count) < 1 or backbone not in specs:
        return setting
    blocks = specs[backbone].blocks
    if not blocks:
        return str(int(count) * LAYERS_PER_BLOCK)
    return f"block:{blocks[max(len(blocks) - int(count), 0)]}"


def unfreeze_problem(backbone: str, setting: str) -> str | None:
    """Return why ``setting`` cannot be an unfreeze setting of ``backbone``, or None when it can.

    Block names come from the registry; the number of weighted base layers from
    building the model once per backbone with random weights (cached).
    """
    from tltools.backbones import get_backbone

    setting = resolve_unfreeze(backbone, setting)
    if setting in ("all", "none", "0"):
        return None
    spec = get_backbone(backbone)
    if setting.startswith("block:"):
        block = setting.split(":", 1)[1]
        if block in spec.blocks:
            return None
        if not spec.blocks:
            return f"unfreeze={setting!r}: {backbone} has no named blocks; use all, none or a number of top layers"
        return (f"unfreeze={setting!r}: {backbone} has no block {block}; "
                f"use block:N with N one of {', '.join(spec.blocks)}")
    if setting.isdigit():
        largest = weighted_layer_count(backbone)
        if int(setting) <= largest:
            return None
        return (f"unfreeze={setting!r}: {backbone} has {largest} base layers with weights; "
                f"use a number from 0 to {largest}")
    return (f"unfreeze={setting!r} is not understood; use all, none, a number of top layers (0 to "
            f"{weighted_layer_count(backbone)}) or block:N")


@functools.cache
def weighted_layer_count(backbone: str) -> int:
    """Return how many base layers of ``backbone`` have weights: the largest ``unfreeze`` number."""
    from tltools.model.builder import build_model
    from tltools.model.freezing import weighted_layers

    return len(weighted_layers(build_model(backbone, 2, weights="none")))
