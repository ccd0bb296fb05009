"""The teacher inside the one trainer: what :func:`tltools.training.train` does differently when ``teacher_run`` is set.

With ``TrainConfig.teacher_run`` the trainer runs its usual phases (head, then
fine-tuning; checkpoints, early stopping, events, stop requests, evaluation as
always) and asks a :class:`Teacher` for three things only:

- the split: the teacher's own (its ``splits.csv``, :func:`tltools.runs.load_run_dataset`),
  so that no image the teacher learned from is a validation or test image of the student;
- the loss: :class:`tltools.distill.loss.DistillationLoss` (Hinton et al.) in place of
  the plain cross-entropy, with the same ``accuracy`` and ``crossentropy`` metrics, so
  ``loss`` in the history and ``metrics.json`` is still the plain cross-entropy on the labels;
- the batches: the trainer's own pipelines (images, or cached activations on the fast
  path) whose labels are each example's target row ``[one-hot | teacher logits | labelled]``
  (plus the class weight as a sample weight when class weights are on).

The teacher's logits for every image are computed once and kept in the feature cache
(:mod:`tltools.training.feature_cache`, keyed by the images, the teacher run's model file and its
input size), so distillation epochs cost what head epochs cost and a second student from the same
teacher computes nothing. Unlabelled images (``distill_unlabeled``) are labelled by the
teacher and join the training batches with soft targets only.
"""

import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tltools import runs
from tltools.data.dataset import Dataset
from tltools.data.images import is_image_name
from tltools.data.pipeline import decode_images, make_feature_dataset, make_tf_dataset
from tltools.data.split import SPLITS
from tltools.distill.loss import DistillationLoss, hard_metrics, targets
from tltools.errors import TLToolsError
from tltools.model.io import load_model
from tltools.training import feature_cache
from tltools.training.split_model import SplitModel

TEACHER_CUT = "teacher-logits"


def unlabeled_images(folder) -> list[Path]:
    """Return the image files below ``folder`` (hidden files and folders left out), sorted.

    Raises:
        TLToolsError: The folder does not exist or holds no image file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TLToolsError(f"unlabelled image folder not found: {folder}; give a folder of images")
    found = sorted(path for path in folder.rglob("*") if path.is_file() and is_image_name(path.name)
                   and not any(part.startswith(".") for part in path.relative_to(folder).parts))
    if not found:
        raise TLToolsError(f"no image files below {folder}; give a folder of unlabelled images (JPEG, PNG, …)")
    return found


def teacher_logits_model(teacher: keras.Model) -> keras.Model:
    """Return pixels → the teacher's logits (its ``predictions`` layer without the softmax).

    Raises:
        TLToolsError: The teacher has no ``predictions`` layer (not a tltools model).
    """
    try:
        predictions = teacher.get_layer("predictions")
    except ValueError:
        raise TLToolsError(f"the teacher model {teacher.name} has no 'predictions' layer; "
                           "use a run trained by tltools as the teacher") from None
    logits = keras.layers.Dense(predictions.units, name="teacher_logits")
    output = logits(predictions.input)
    logits.set_weights(predictions.get_weights())
    return keras.Model(teacher.input, output, name=f"{teacher.name}_logits")


@dataclasses.dataclass(eq=False)
class Teacher:
    """A teacher run, loaded for one student's training.

    Build it with :meth:`load`; the trainer then calls :meth:`dataset_for`,
    :meth:`prepare` (once the student's input size is known), :meth:`compile_args`
    and, per phase, :meth:`cached_pipelines` or :meth:`image_pipelines`.

    Attributes:
        run: The teacher's run.
        model: The teacher's model.
        classes: Its class names.
        temperature: T of the softened probabilities.
        alpha: Weight of the true labels.
        label_smoothing: Smoothing of the true labels' one-hot part.
        unlabeled_paths: Unlabelled images the teacher labels for the student.
    """

    run: runs.RunInfo
    model: keras.Model
    classes: list[str]
    temperature: float
    alpha: float
    label_smoothing: float = 0.0
    unlabeled_paths: list[Path] = dataclasses.field(default_factory=list)
    cache_hit: bool | None = None
    _tables: dict = dataclasses.field(default_factory=dict)
    _unlabeled_pixels: np.ndarray | None = None
    _unlabeled_logits: np.ndarray | None = None
    _unlabeled_inputs: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def load(cls, config) -> "Teacher":
        """Read the teacher run ``config.teacher_run`` names, its model and the unlabelled images' list.

        Called before the student's run folder is made, so a bad teacher leaves nothing behind.

        Raises:
            TLToolsError: No run there, a run without a model, an unlabelled folder without images.
        """
        teacher = runs.read_trained_run(config.teacher_run, role="teacher run")
        paths = unlabeled_images(config.distill_unlabeled) if config.distill_unlabeled else []
        model, classes, _ = load_model(teacher.path)
        return cls(teacher, model, list(classes), config.distill_temperature, config.distill_alpha,
                   config.label_smoothing, paths)

    def dataset_for(self, dataset: Dataset | None) -> Dataset:
        """Return the images the student trains on, split as the teacher's ``splits.csv`` says.

        ``dataset`` is used as it is when it already holds exactly the teacher's split (as
        :func:`tltools.distill.distill` passes it); otherwise the teacher's images are read again.

        Raises:
            TLToolsError: ``dataset`` has other classes than the teacher; the teacher's images are
                gone or changed; the teacher model's classes differ from its data's.
        """
        if dataset is not None and list(dataset.classes) != self.classes:
            raise TLToolsError(f"the data's classes ({', '.join(dataset.classes)}) differ from teacher run "
                               f"{self.run.run_id}'s ({', '.join(self.classes)}); distil on the teacher's data")
        recorded = runs.read_split(self.run)
        wanted = set(zip(recorded["relpath"], recorded["split"]))
        if dataset is None or set(zip(dataset.items["relpath"], dataset.items["split"])) != wanted:
            dataset = runs.load_run_dataset(self.run)
        if list(dataset.classes) != self.classes:
            raise TLToolsError(f"teacher run {self.run.run_id}'s model classes differ from its data's; "
                               "retrain the teacher")
        return dataset

    def prepare(self, dataset: Dataset, image_size: int, batch_size: int) -> None:
        """Get the teacher's logits for every image (feature cache) and for the unlabelled images.

        Args:
            dataset: The split data (from :meth:`dataset_for`).
            image_size: The student's input size (unlabelled images are decoded at it).
            batch_size: Images per teacher batch.
        """
        logits, self.cache_hit = self._logits(dataset, batch_size)
        table = feature_cache.image_table(dataset)
        position = dict(zip(table["relpath"], table["row"]))
        count = len(self.classes)
        for split in SPLITS:
            rows = np.array([position[path] for path in dataset.split(split)["relpath"]], dtype=np.int64)
            self._tables[split] = (dataset.labels(split), logits[rows] if len(rows) else np.zeros((0, count)))
        if self.unlabeled_paths:
            self._unlabeled_pixels = decode_images(self.unlabeled_paths, image_size)
            teacher_pixels = decode_images(self.unlabeled_paths, int(self.model.input_shape[1]))
            self._unlabeled_logits = np.asarray(teacher_logits_model(self.model).predict(
                np.asarray(teacher_pixels, np.float32), batch_size=batch_size, verbose=0))

    def compile_args(self) -> dict:
        """Return ``loss`` and ``metrics`` for ``model.compile``: the distillation loss, the run's usual metrics."""
        return {"loss": DistillationLoss(len(self.classes), self.temperature, self.alpha,
                                         label_smoothing=self.label_smoothing),
                "metrics": hard_metrics(len(self.classes))}

    def cached_pipelines(self, cached, class_weight: dict | None) -> tuple[tf.data.Dataset, tf.data.Dataset]:
        """Return (train, val) batches of a phase on cached activations, with target rows as labels.

        Args:
            cached: The phase's :class:`tltools.training.fast_path.CachedPhase`.
            class_weight: Class weights (as sample weights of the labelled images), or None.
        """
        rows = cached.rows["train"]
        features = cached.features
        if self.unlabeled_paths:
            cut = cached.split.cut
            if cut not in self._unlabeled_inputs:
                self._unlabeled_inputs[cut] = np.asarray(cached.split.extractor.predict(
                    np.asarray(self._unlabeled_pixels, np.float32), batch_size=cached.batch_size, verbose=0))
            features = np.concatenate([np.asarray(features[rows]), self._unlabeled_inputs[cut]])
            rows = None
        train_table, weights = self._train_table(class_weight)
        train = make_feature_dataset(features, np.arange(len(train_table)), rows=rows, batch_size=cached.batch_size,
                                     shuffle=True, seed=cached.seed)
        val = make_feature_dataset(cached.features, np.arange(len(cached.rows["val"])), rows=cached.rows["val"],
                                   batch_size=cached.batch_size)
        return _with_targets(train, train_table, weights), _with_targets(val, self._table("val"))

    def image_pipelines(self, arrays: dict, config, class_weight: dict | None) -> tuple[tf.data.Dataset,
                                                                                        tf.data.Dataset]:
        """Return (train, val) batches of a phase on images (augmented as configured), with target rows as labels.

        Args:
            arrays: The decoded ``uint8`` images per split (the trainer's ``PreparedData.arrays``).
            config: The run's settings (batch size, seed, augmentation).
            class_weight: Class weights (as sample weights of the labelled images), or None.
        """
        images = arrays["train"]
        if self.unlabeled_paths:
            images = np.concatenate([np.asarray(images), self._unlabeled_pixels])
        train_table, weights = self._train_table(class_weight)
        train = make_tf_dataset(images, np.arange(len(images)), batch_size=config.batch_size, shuffle=True,
                                seed=config.seed, augment=config.augment)
        val = make_tf_dataset(arrays["val"], np.arange(len(arrays["val"])), batch_size=config.batch_size)
        return _with_targets(train, train_table, weights), _with_targets(val, self._table("val"))

    def summary(self) -> dict:
        """Return what the student's ``metrics.json`` records about its teacher (``distillation``)."""
        return {"teacher": self.run.run_id, "teacher_path": str(self.run.path.resolve()),
                "teacher_backbone": self.model.name, "teacher_image_size": int(self.model.input_shape[1]),
                "temperature": self.temperature, "alpha": self.alpha,
                "unlabeled_images": len(self.unlabeled_paths), "teacher_logits_cache": (
                    None if self.cache_hit is None else "hit" if self.cache_hit else "miss")}

    def unlabeled_label_counts(self) -> dict:
        """Return how many unlabelled images the teacher put in each class (its top-1)."""
        if self._unlabeled_logits is None:
            return {}
        counts = np.bincount(self._unlabeled_logits.argmax(axis=1), minlength=len(self.classes))
        return {name: int(count) for name, count in zip(self.classes, counts)}

    def _table(self, split: str) -> np.ndarray:
        labels, logits = self._tables[split]
        return targets(labels, logits, len(self.classes))

    def _train_table(self, class_weight) -> tuple[np.ndarray, np.ndarray | None]:
        labels, _ = self._tables["train"]
        table = self._table("train")
        weights = None if class_weight is None else np.array([class_weight[int(label)] for label in labels],
                                                             np.float32)
        if self._unlabeled_logits is not None:
            count = len(self._unlabeled_logits)
            table = np.concatenate([table, targets(np.zeros(count, np.int64), self._unlabeled_logits,
                                                   len(self.classes), labelled=np.zeros(count))])
            if weights is not None:
                weights = np.concatenate([weights, np.ones(count, np.float32)])
        return table, weights

    def _logits(self, dataset: Dataset, batch_size: int) -> tuple[np.ndarray, bool]:
        """The teacher's logits for every image in cache order, from the feature cache or computed once into it."""
        extractor = teacher_logits_model(self.model)
        size = int(self.model.input_shape[1])
        split = SplitModel(cut=TEACHER_CUT, extractor=extractor, head=None,
                           feature_shape=(int(extractor.output_shape[-1]),))
        table = feature_cache.image_table(dataset)
        stat = self.run.model_path.stat()  # a teacher model changed in place never reuses its old logits
        key = feature_cache.feature_key(dataset, split, backbone=self.model.name, image_size=size, table=table,
                                        weights=f"run:{self.run.run_id}:{stat.st_mtime_ns}:{stat.st_size}")
        found = feature_cache.load_features(key)
        if found is not None:
            return np.asarray(found), True
        position = dict(zip(table["relpath"], table["row"]))
        sources = [(decode_images(dataset.paths(name), size),
                    [position[path] for path in dataset.split(name)["relpath"]])
                   for name in SPLITS if len(dataset.split(name))]
        feature_cache.extract_features(extractor, [key], sources, batch_size=batch_size)
        found = feature_cache.load_features(key)
        if found is None:
            raise TLToolsError(f"the feature cache in {feature_cache.features_dir()} could not be read back; "
                               "check the disk")
        return np.asarray(found), False


def _with_targets(pipeline: tf.data.Dataset, table: np.ndarray, weights: np.ndarray | None = None):
    """Replace each example's index (its label in ``pipeline``) by its target row (and sample weight)."""
    rows = tf.constant(table, tf.float32)
    if weights is None:
        return pipeline.map(lambda inputs, index: (inputs, tf.gather(rows, index)))
    sample = tf.constant(weights, tf.float32)
    return pipeline.map(lambda inputs, index: (inputs, tf.gather(rows, index), tf.gather(sample, index)))
