"""The trainer's fast path: train on cached activations of the frozen part of the model.

Without augmentation, the frozen part of a transfer model computes the same
activations for an image in every epoch. :class:`FastPaths` decides, per phase,
whether to compute them once (or find them cached from an earlier run) and
train only the rest of the model on them:

- phase 1 (base frozen): the head trains on pooled features
  (:func:`tltools.training.split_model.split_at_pooling`);
- phase 2 (top of the base unfrozen): the unfrozen top, pooling and head train
  on the activations of the frozen lower part
  (:func:`tltools.training.split_model.split_for_fine_tuning`), when such a cut
  exists and its activations take no more values per image than the pixels.

When both phases miss the cache, one pass of the base fills both. A phase that
cannot use the fast path (augmentation on, ``unfreeze="all"``, a model that
is not a plain chain) trains on the decoded images as before. The trained
layers are the full model's own, so the run's checkpoint, evaluation and
exports see one ordinary Keras model.
"""

import dataclasses
import math
import time

import numpy as np
import tensorflow as tf

from tltools.data.dataset import Dataset
from tltools.data.pipeline import make_feature_dataset
from tltools.data.split import SPLITS
from tltools.errors import TLToolsError
from tltools.fileio import disk_error_message, is_disk_error
from tltools.model.freezing import apply_unfreeze, freeze_base
from tltools.training import feature_cache
from tltools.training.config import TrainConfig
from tltools.training.split_model import NotSplittable, SplitModel, split_at_pooling, split_for_fine_tuning



@dataclasses.dataclass(eq=False)
class CachedPhase:
    """One phase's cached activations and the model part that trains on them.

    Attributes:
        split: The model cut; ``split.head`` is what trains.
        key: The cache key of ``features``.
        features: Activations of every image at the cut, in cache order.
        rows: Per split, the row of ``features`` of each image, in the split's order.
        labels: Per split, the integer labels.
        hit: Whether the features were already cached.
        batch_size: Examples per batch.
        seed: Shuffle seed.
    """

    split: SplitModel
    key: feature_cache.FeatureKey
    features: object
    rows: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    hit: bool
    batch_size: int
    seed: int

    @property
    def model(self):
        """The part of the full model that trains on the cached activations."""
        return self.split.head

    def pipeline(self, split: str, *, shuffle: bool = False) -> tf.data.Dataset:
        """Return batches of (activations, integer labels) of one split."""
        return make_feature_dataset(self.features, self.labels[split], rows=self.rows[split],
                                    batch_size=self.batch_size, shuffle=shuffle, seed=self.seed)

    def predict(self, split: str) -> np.ndarray:
        """Return the full model's probabilities for one split, computed from the cached activations."""
        rows, size = self.rows[split], self.batch_size
        batches = [np.asarray(self.model.predict_on_batch(np.asarray(self.features[rows[start:start + size]])))
                   for start in range(0, len(rows), size)]
        return np.concatenate(batches).astype(np.float32) if batches else np.empty((0, self.model.output_shape[-1]))


class FastPaths:
    """Which phases of a run train on cached activations, and those activations.

    Build it with :meth:`plan` before phase 1; ask :meth:`phase` at the start of each phase.
    """

    def __init__(self):
        self._phases: dict[int, CachedPhase] = {}
        self._reasons: dict[int, str] = {}
        self.seconds = 0.0
        self.extracted_images = 0

    @classmethod
    def plan(cls, model, config: TrainConfig, dataset: Dataset, images, *, release_images=None, writer=None,
             log=None) -> "FastPaths":
        """Decide the fast path of each phase and get its activations (from the cache or by one pass of the base).

        Args:
            model: The full transfer model, before phase 1 (its base frozen or not).
            config: The run's settings.
            dataset: The data, already split.
            images: ``callable()`` returning the decoded ``uint8`` images per split;
                called only when activations must be computed.
            release_images: Optional ``callable()`` that drops those images; called after
                computing activations when no phase trains on images.
            writer: The run's :class:`tltools.runs.RunWriter` for log lines, or None.
            log: The run's :class:`tltools.training.TrainingLog`, or None.

        Raises:
            TLToolsError: The unfreeze setting does not fit the model.
        """
        fast = cls()
        splits = fast._choose_splits(model, config)
        if not splits:
            fast._announce(writer, log)
            return fast
        started = time.time()
        size = int(model.input_shape[1])
        table = feature_cache.image_table(dataset)
        position = dict(zip(table["relpath"], table["row"]))
        rows = {name: np.array([position[path] for path in dataset.split(name)["relpath"]], dtype=np.int64)
                for name in SPLITS}
        labels = {name: dataset.labels(name) for name in SPLITS}
        keys = {phase: feature_cache.feature_key(dataset, split, backbone=config.backbone, weights=config.weights,
                                                 image_size=size, table=table)
                for phase, split in splits.items()}
        found = {phase: feature_cache.load_features(key) for phase, key in keys.items()}
        missing = {phase for phase, features in found.items() if features is None}
        if missing:
            def progress(done, total):
                if log is not None:
                    log.update(phase_name=f"computing features of the frozen layers ({done}/{total} images)")

            try:
                fast._extract(splits, keys, missing, images, rows, config.batch_size, progress)
            except OSError as error:
                if not is_disk_error(error):
                    raise
                fast._on_images_instead(splits, keys, missing, error)
            else:
                fast.extracted_images = len(table)
            if release_images is not None and not fast.needs_images:
                release_images()  # before the activations are read in: never both in memory
            loaded = {}
            for phase in missing & set(splits):
                if keys[phase].digest not in loaded:
                    loaded[keys[phase].digest] = feature_cache.load_features(keys[phase])
                found[phase] = loaded[keys[phase].digest]
            if any(found[phase] is None for phase in splits):
                raise TLToolsError(f"the feature cache in {feature_cache.features_dir()} could not be read back "
                                   "after writing it; check the disk")
        for phase, split in splits.items():
            fast._phases[phase] = CachedPhase(split, keys[phase], found[phase], rows, labels, phase not in missing,
                                              config.batch_size, config.seed)
        fast.seconds = time.time() - started
        fast._announce(writer, log)
        return fast

    def phase(self, phase: int) -> CachedPhase | None:
        """Return phase ``phase``'s cached activations, or None when it trains on images."""
        return self._phases.get(phase)

    @property
    def needs_images(self) -> bool:
        """Whether some planned phase trains on decoded images."""
        return bool(self._reasons)

    def report(self) -> dict:
        """Return what ``metrics.json`` records about the fast path."""
        def cache(phase):
            cached = self._phases.get(phase)
            return None if cached is None else ("hit" if cached.hit else "miss")

        return {
            "fast_path": 1 in self._phases,
            "feature_cache": cache(1),
            "fine_tune_fast_path": 2 in self._phases,
            "fine_tune_feature_cache": cache(2),
            "feature_seconds": round(self.seconds, 2),
            "feature_images_computed": self.extracted_images,
        }

    def _choose_splits(self, model, config: TrainConfig) -> dict[int, SplitModel]:
        """Return the cut of each phase that can use the fast path; note why the others cannot."""
        wanted = {phase: epochs for phase, epochs in ((1, config.epochs), (2, config.fine_tune_epochs)) if epochs}
        size = int(model.input_shape[1])
        if config.augment.enabled:
            self._reasons = {phase: "augmentation is on, so every epoch sees different pixels" for phase in wanted}
            return {}
        splits = {}
        for phase in wanted:
            try:
                if phase == 1:
                    splits[1] = split_at_pooling(model)
                else:
                    apply_unfreeze(model, config.unfreeze, train_batchnorm=config.train_batchnorm)
                    try:
                        splits[2] = split_for_fine_tuning(model)
                    finally:
                        freeze_base(model)
            except NotSplittable:
                splits[phase] = None
            if splits[phase] is None:
                self._reasons[phase] = ("nothing before the first unfrozen layer can be cached"
                                        if phase == 2 else "the model cannot be split at its pooling layer")
            elif splits[phase].values_per_image > size * size * 3:
                self._reasons[phase] = (f"the activations at {splits[phase].cut} "
                                        f"({math.prod(splits[phase].feature_shape)} values per image) "
                                        "would be larger than the images")
                splits[phase] = None
        return {phase: split for phase, split in splits.items() if split is not None}

    def _extract(self, splits, keys, missing, images, rows, batch_size, progress) -> None:
        """Compute and store the missing activations, both phases in one pass of the base when possible."""
        arrays = images()
        sources = [(arrays[name], rows[name]) for name in SPLITS if len(rows[name])]

        def extract(extractor, wanted):
            feature_cache.extract_features(extractor, wanted, sources, batch_size=batch_size, on_progress=progress)

        shared = splits[2].shared_extractor if 2 in splits else None
        if missing == {1, 2} and shared is not None:
            extract(shared, [keys[2], keys[1]])
        elif missing == {1, 2} and keys[1].digest == keys[2].digest:  # nothing unfrozen in the base: one array
            extract(splits[1].extractor, [keys[1]])
        else:
            for phase in sorted(missing):
                extract(splits[phase].extractor, [keys[phase]])

    def _on_images_instead(self, splits, keys, missing, error: OSError) -> None:
        """After the disk refused the feature cache: phases whose activations are not cached train on images."""
        problem = disk_error_message(error, feature_cache.features_dir(), variable="TLTOOLS_CACHE")
        for phase in sorted(missing):
            stored = keys[phase].npy_path.is_file() and keys[phase].json_path.is_file()
            if not stored:  # an earlier pass (the other phase's) may have been stored before the disk refused
                del splits[phase]
                self._reasons[phase] = f"the feature cache could not be written ({problem})"

    def _announce(self, writer, log) -> None:
        """Say in the run log and the live log which path each phase takes."""
        lines = []
        for phase, cached in sorted(self._phases.items()):
            what = "the head trains" if phase == 1 else f"the layers after {cached.split.cut} train"
            source = ("found in the cache" if cached.hit
                      else f"computed once in {self.seconds:.0f} s for all epochs and later runs")
            lines.append(f"Fast path for phase {phase}: {what} on features of the frozen layers, {source}.")
        for phase, reason in sorted(self._reasons.items()):
            lines.append(f"Phase {phase} trains on images: {reason}.")
        for line in lines:
            if writer is not None:
                writer.log(line)
            if log is not None:
                log.add_message(line)
