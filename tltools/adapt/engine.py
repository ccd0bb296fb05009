"""``adapt``: make a trained run work on images of a new domain, from unlabelled images of it.

Methods (``method``):

- ``adabn``: re-estimate the base's BatchNorm statistics on the target images,
  relative to those of the run's source training images (:mod:`tltools.adapt.adabn`);
  no weight changes, no labels, seconds.
- ``self-train``: a few rounds of pseudo-labelling: the model labels the
  target images, those it is at least ``thresholds[r]`` confident about (the
  threshold rises each round) join the run's labelled source training images,
  each target image also in ``views`` strongly augmented copies, and the head
  is trained on them. Augmentation consistency: the source training images
  also join in ``source_views`` copies under random colour casts, blur and
  JPEG compression (:mod:`tltools.adapt.corrupt`), their true labels kept, so
  that the head learns to ignore what such a shift does to the base's
  features. With ``unfreeze`` (``block:N``) the top base blocks train with
  the head (BatchNorm in inference mode, the run's fine-tuning rate), on
  activations cached below them. Head-only source activations come from the
  feature cache the run itself filled; everything else is computed once per method.
- ``both``: AdaBN first, then self-training on the adapted base.

``stop`` (an object with ``requested``) ends adaptation after the current
stage or self-training round; the run is then saved as ``stopped`` with the
model as adapted so far.

When some target images are labelled (``target_labels``: a folder in any
dataset layout, or a labels CSV beside images) they are used only to measure:
source-only vs adapted accuracy and, per round, how often the model is right
where it is confident enough to pseudo-label. Without them the report gives
the agreement with the source-only predictions and the confidence shift.

The result is a new run folder: the adapted ``model.keras``, the source run's
config, labels, dataset record and split (so ``evaluate`` and ``export`` work
on it) and ``adapt.json`` with the report. Nothing else is written, apart
from the feature cache.
"""

import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tltools import runs
from tltools.adapt.adabn import adapt_batchnorm
from tltools.adapt.corrupt import corrupt_images
from tltools.data.augment import AugmentOptions, build_augmenter
from tltools.data.images import is_image_name
from tltools.data.pipeline import decode_images
from tltools.errors import TLToolsError
from tltools.evaluation.metrics import classification_metrics
from tltools.export.run import training_images
from tltools.model.freezing import apply_unfreeze, block_names, freeze_base, preview_unfreeze
from tltools.model.io import load_model, save_model
from tltools.training.config import TrainConfig
from tltools.training.fast_path import FastPaths
from tltools.training.optimizers import make_optimizer
from tltools.training.split_model import split_at_pooling, split_for_fine_tuning
from tltools.training.trainer import prepare_data

METHODS = ("adabn", "self-train", "both")
# The method that helped on both measured shifts (README, Domain adaptation).
DEFAULT_METHOD = "self-train"
ADAPT_FILE = "adapt.json"
THRESHOLDS = (0.8, 0.9, 0.95)
# Corrupted copies of each source training image in self-training (augmentation consistency); 0: none.
SOURCE_VIEWS = 2
# Base layers self-training fine-tunes with the head: None, the head alone (helped on both measured
# shifts); TOP_BLOCK, the backbone's last named block (block:7 on EfficientNet-Lite: far better on
# flowers12's shift, worse than no adaptation on clothing10's; README, Domain adaptation).
TOP_BLOCK = "top-block"
UNFREEZE = None
# Strong augmentation of the pseudo-labelled target images (flips, rotation, zoom, shift, contrast).
STRONG = AugmentOptions(flip="horizontal", rotation=0.08, zoom=0.2, contrast=0.3, translation=0.1)


@dataclasses.dataclass
class AdaptResult:
    """What :func:`adapt` produced: the new run and its ``adapt.json`` report."""

    run: runs.RunInfo
    report: dict


def adapt(
    run_path,
    target,
    *,
    method: str = DEFAULT_METHOD,
    target_labels=None,
    thresholds=THRESHOLDS,
    epochs_per_round: int = 5,
    views: int = 2,
    source_views: int = SOURCE_VIEWS,
    unfreeze: str | None = UNFREEZE,
    learning_rate: float | None = None,
    runs_root: Path | None = None,
    run_dir: Path | None = None,
    on_message=None,
    stop=None,
) -> AdaptResult:
    """Adapt a run's model to the unlabelled images in ``target``; write a new run folder.

    Args:
        run_path: The source run folder or run id.
        target: A folder or ``.zip`` of unlabelled target-domain images.
        method: ``adabn``, ``self-train`` or ``both`` (AdaBN, then self-training).
        target_labels: Labelled target images for measuring only: a folder in any dataset
            layout, or a labels CSV beside its images; None when there are none.
        thresholds: Confidence threshold of each self-training round (rising).
        epochs_per_round: Head epochs per self-training round.
        views: Strongly augmented copies of each pseudo-labelled target image.
        source_views: Randomly corrupted copies of each source training image (colour cast, blur,
            JPEG; labels kept) in self-training; 0 trains on the plain source images only.
        unfreeze: Base layers self-training fine-tunes with the head (``top-block``: the backbone's
            last named block; ``block:N``; a number of top layers; BatchNorm stays in inference
            mode); None or ``none``: the head alone.
        learning_rate: Self-training's learning rate; None: a third of the run's for the head alone,
            the run's fine-tuning rate (default a tenth of its rate) with base layers.
        runs_root: Where the new run folder is made (default: the runs folder).
        run_dir: The exact new run folder instead.
        on_message: Optional ``callable(line)`` for progress lines.
        stop: Optional object whose ``requested`` turns true to end after the current stage or round.

    Returns:
        The :class:`AdaptResult`.

    Raises:
        TLToolsError: A run that does not exist or has no model, an unknown method, a target
            without images, labelled images whose classes the model does not know, or (for
            self-training) source training images that are gone or an ``unfreeze`` setting the
            backbone does not have.
    """
    say = on_message or (lambda _line: None)
    if method not in METHODS:
        raise TLToolsError(f"method={method!r} is unknown; use one of {', '.join(METHODS)}")
    if unfreeze is not None and str(unfreeze).strip().lower() in ("none", "0", ""):
        unfreeze = None
    if int(source_views) < 0:
        raise TLToolsError(f"source_views={source_views} must be 0 or more corrupted copies per source image")
    thresholds = tuple(float(value) for value in thresholds)
    if not thresholds or any(not 0.0 < value < 1.0 for value in thresholds) or list(thresholds) != sorted(thresholds):
        raise TLToolsError(f"thresholds={thresholds} must be rising numbers between 0 and 1, e.g. 0.8 0.9 0.95")
    source = runs.read_trained_run(run_path)
    with tempfile.TemporaryDirectory(prefix="tltools-adapt-") as scratch:
        target_paths = target_images(target, Path(scratch))
        model, classes, _ = load_model(source.path)
        size = int(model.input_shape[1])
        if unfreeze == TOP_BLOCK:
            names = block_names(model)
            unfreeze = f"block:{names[-1]}" if names else None
            if unfreeze is None:
                say(f"{model.name}'s backbone has no named blocks: self-training trains the head alone")
        if unfreeze is not None and method != "adabn":
            try:  # a setting the backbone does not have: one line, before any run folder is made
                preview_unfreeze(model, unfreeze)
            except TLToolsError as error:
                raise TLToolsError(f"unfreeze={unfreeze!r}: {error}") from None
        labelled = _labelled_target(target_labels, classes, size) if target_labels is not None else None
        say(f"{len(target_paths)} unlabelled target images"
            + (f", {len(labelled[1])} labelled target images for measuring" if labelled is not None else ""))
        unlabelled = decode_images(target_paths, size)
        writer = runs.RunWriter(run_dir) if run_dir is not None else runs.RunWriter.create(
            f"{source.config.get('backbone', model.name)}-adapted", root=runs_root)
        writer.set_status(runs.RUNNING)
        try:
            return _adapt(source, model, classes, unlabelled, labelled, method, thresholds, epochs_per_round, views,
                          int(source_views), unfreeze, learning_rate, writer, target, target_labels, say, stop)
        except BaseException as error:
            writer.log(f"failed: {error}")
            writer.set_status(runs.FAILED, error=str(error) or type(error).__name__)
            raise


def target_images(target, scratch: Path) -> list[Path]:
    """Return the image files of a target folder, or of a ``.zip`` extracted safely into ``scratch``.

    Raises:
        TLToolsError: The target is missing, or holds no image files.
    """
    target = Path(target)
    if target.is_file() and target.suffix.lower() == ".zip":
        from tltools.data.archive import extract_zip

        extract_zip(target, scratch / "target")
        folder = scratch / "target"
    elif target.is_dir():
        folder = target
    else:
        raise TLToolsError(f"target images not found: {target}; give a folder or a .zip of images of the new domain")
    found = sorted(path for path in folder.rglob("*") if path.is_file() and is_image_name(path.name)
                   and not any(part.startswith(".") for part in path.relative_to(folder).parts))
    if not found:
        raise TLToolsError(f"no image files in {target}; give a folder or a .zip of images of the new domain "
                           "(JPEG, PNG, …)")
    return found


def _labelled_target(source, classes, size) -> tuple[np.ndarray, np.ndarray]:
    """Decode labelled target images; return (pixels, integer labels in the model's class order)."""
    from tltools.data import load_dataset

    source = Path(source)
    folder = source.parent if source.is_file() and source.suffix.lower() == ".csv" else source
    if not folder.exists():
        raise TLToolsError(f"target labels not found: {source}; give a folder of class folders or a labels CSV")
    dataset = load_dataset(folder)
    unknown = sorted(set(dataset.items["label"]) - set(classes))
    if unknown:
        raise TLToolsError(f"the labelled target images have classes the model does not know ({', '.join(unknown[:3])}); "
                           f"use the run's classes: {', '.join(classes[:6])}{'…' if len(classes) > 6 else ''}")
    index = {name: position for position, name in enumerate(classes)}
    paths = [dataset.root / relpath for relpath in dataset.items["relpath"]]
    return decode_images(paths, size), np.array([index[label] for label in dataset.items["label"]], np.int64)


def _adapt(source, model, classes, unlabelled, labelled, method, thresholds, epochs_per_round, views, source_views,
           unfreeze, learning_rate, writer, target, target_labels, say, stop) -> AdaptResult:
    started = time.time()
    stopped = lambda: stop is not None and stop.requested  # noqa: E731
    for name in ("config.json", "labels.txt", runs.DATASET_FILE, runs.SPLITS_FILE):
        if (source.path / name).is_file():
            shutil.copyfile(source.path / name, writer.path / name)
    writer.log(f"adapting run {source.run_id} to {len(unlabelled)} images of {target} with {method}")
    original = _predict(model, unlabelled)
    stages = {"source-only": _measure(model, unlabelled, labelled, original, classes)}
    notes = []
    if method in ("adabn", "both") and not stopped():
        paths, problem = training_images(source)
        source_pixels = decode_images(paths, int(model.input_shape[1])) if len(paths) >= 2 else None
        if source_pixels is None:
            notes.append(f"AdaBN without source statistics (plain AdaBN): {problem or 'too few training images'}")
        layers = adapt_batchnorm(model, unlabelled, source_images=source_pixels)
        say(f"AdaBN: statistics of {layers} BatchNorm layers re-estimated on the target images"
            + (f", relative to {len(source_pixels)} source training images" if source_pixels is not None else ""))
        stages["adabn"] = _measure(model, unlabelled, labelled, original, classes)
    rounds = []
    if method in ("self-train", "both") and not stopped():
        rounds = _self_train(source, model, classes, unlabelled, labelled, thresholds, epochs_per_round, views,
                             source_views, unfreeze, learning_rate, say, stopped)
        stages["adabn + self-train" if method == "both" else "self-train"] = _measure(
            model, unlabelled, labelled, original, classes)
    save_model(model, writer.model_path, classes, metadata={"run_id": writer.path.name,
                                                            "adapted_from": source.run_id, "method": method})
    final = list(stages)[-1]
    report = {"source_run": source.run_id, "method": method, "target": str(target),
              "target_labels": None if target_labels is None else str(target_labels),
              "unlabelled_images": len(unlabelled), "labelled_images": 0 if labelled is None else len(labelled[1]),
              "source_views": source_views if method != "adabn" else 0,
              "unfreeze": unfreeze if method != "adabn" else None, "stages": stages, "rounds": rounds,
              "notes": notes, "stopped": stopped(), "seconds": round(time.time() - started, 1)}
    writer.write_json(ADAPT_FILE, report)
    # Not the source's val/test metrics: those were the unadapted model's (`evaluate` measures this one).
    writer.write_json("metrics.json", {"adaptation": {"method": method, **stages[final]}})
    writer.log(f"completed: {final}: " + ", ".join(f"{key} {value}" for key, value in stages[final].items()
                                                  if isinstance(value, (int, float))))
    writer.set_status(runs.STOPPED if report["stopped"] else runs.COMPLETED)
    return AdaptResult(runs.read_run(writer.path), report)


def _predict(model, pixels) -> np.ndarray:
    return np.asarray(model.predict(np.asarray(pixels, np.float32), batch_size=32, verbose=0))


def _measure(model, unlabelled, labelled, original, classes) -> dict:
    """Agreement with the source-only predictions and mean confidence on the unlabelled images; accuracy on the labelled ones."""
    probs = _predict(model, unlabelled)
    facts = {"agreement_with_source_only": round(float(np.mean(probs.argmax(1) == original.argmax(1))), 4),
             "mean_confidence": round(float(probs.max(1).mean()), 4)}
    if labelled is not None:
        pixels, labels = labelled
        predicted = _predict(model, pixels)
        metrics = classification_metrics(labels, predicted, classes, top_k=1)
        facts["labelled_accuracy"] = round(float(metrics["accuracy"]), 4)
        facts["labelled_macro_f1"] = round(float(metrics["macro_f1"]), 4)
    return facts


def _self_train(source, model, classes, unlabelled, labelled, thresholds, epochs_per_round, views, source_views,
                unfreeze, learning_rate, say, stopped) -> list[dict]:
    """Rounds of pseudo-labelling on the head, source features from the cache; returns one record per round."""
    config = TrainConfig.from_dict(source.config)
    try:
        dataset = runs.load_run_dataset(source)
    except TLToolsError as error:
        raise TLToolsError(f"self-training needs the run's labelled source images: {error}") from None
    plan_config = config.replace(epochs=1, fine_tune_epochs=0, augment=AugmentOptions())
    data = prepare_data(plan_config, dataset, int(model.input_shape[1]))
    source_y = np.asarray(data.labels["train"], np.int64)
    if unfreeze is None:
        split = split_at_pooling(model)
        # Source activations with the run's own (unadapted) base: from the cache its training filled.
        source_model = load_model(source.path)[0]
        cached = FastPaths.plan(source_model, plan_config, dataset, lambda: data.arrays).phase(1)
        if cached is None:
            raise TLToolsError("self-training could not cut the run's model at its pooling layer; use --method adabn")
        source_x = np.asarray(cached.features[cached.rows["train"]], np.float32)
    else:
        apply_unfreeze(model, unfreeze, train_batchnorm=False)  # BatchNorm stays in inference mode
        split = split_for_fine_tuning(model)
        if split is None or split.cut == "pooling":
            raise TLToolsError(f"unfreeze={unfreeze!r} leaves no frozen part below the trainable layers to cache; "
                               "use block:N for one of the top blocks, or none")
        say(f"fine-tuning the base from {unfreeze} on: computing activations below it of the {len(source_y)} "
            "source training images")
        source_x = _features(split.extractor, data.arrays["train"])
    target_x = _features(split.extractor, unlabelled)
    augmenter = build_augmenter(STRONG, seed=config.seed)
    augmented = [_features(split.extractor, np.asarray(augmenter(unlabelled.astype(np.float32), training=True)))
                 for _ in range(views)]
    if source_views:
        say(f"computing features of {source_views} corrupted copies (colour cast, blur, JPEG) of each of the "
            f"{len(source_y)} source training images")
    corrupted = [_corrupted_features(split.extractor, data.arrays["train"], config.seed + view)
                 for view in range(source_views)]
    source_x = np.concatenate([source_x, *corrupted])
    source_y = np.concatenate([source_y] * (1 + source_views))
    head = split.head
    # The head alone: a third of the run's rate; with base layers: the fine-tuning rate (a tenth by default).
    rate = learning_rate or (config.learning_rate / 3 if unfreeze is None
                             else config.fine_tune_learning_rate or config.learning_rate / 10)
    records = []
    for number, threshold in enumerate(thresholds, start=1):
        if stopped():
            say(f"stopped before self-training round {number}")
            break
        probs = np.asarray(head.predict(target_x, batch_size=256, verbose=0))
        chosen = probs.max(1) >= threshold
        pseudo = probs.argmax(1)
        record = {"round": number, "threshold": threshold, "pseudo_labels": int(chosen.sum()),
                  "of_images": int(len(chosen))}
        if labelled is not None:
            labelled_probs = _predict(model, labelled[0])
            confident = labelled_probs.max(1) >= threshold
            record["labelled_confident"] = int(confident.sum())
            record["confident_accuracy_on_labelled"] = (
                round(float(np.mean(labelled_probs[confident].argmax(1) == labelled[1][confident])), 4)
                if confident.any() else None)
        if chosen.any():
            x = np.concatenate([source_x, target_x[chosen], *[view[chosen] for view in augmented]])
            y = np.concatenate([source_y, *[pseudo[chosen]] * (1 + views)])
            batches = (tf.data.Dataset.from_tensor_slices((x, tf.one_hot(y, len(classes))))
                       .shuffle(len(x), seed=config.seed + number).batch(config.batch_size))
            head.compile(optimizer=make_optimizer(config.optimizer, rate, momentum=config.momentum,
                                                  weight_decay=config.weight_decay),
                         loss=keras.losses.CategoricalCrossentropy())
            head.fit(batches, epochs=epochs_per_round, shuffle=False, verbose=0)
        say(f"self-training round {number}: threshold {threshold:g}, {record['pseudo_labels']} of "
            f"{len(chosen)} target images pseudo-labelled"
            + (f", confident predictions right on {record['confident_accuracy_on_labelled']:.1%} of the labelled ones"
               if record.get("confident_accuracy_on_labelled") is not None else ""))
        records.append(record)
    if unfreeze is not None:
        freeze_base(model)
    return records


def _corrupted_features(extractor, pixels, seed: int, chunk: int = 256) -> np.ndarray:
    """Features of ``pixels`` (an array or NpyRows), each image randomly corrupted, ``chunk`` images in memory at a time."""
    rng = np.random.default_rng(seed)
    return np.concatenate([_features(extractor, corrupt_images(pixels[start:start + chunk], rng))
                           for start in range(0, len(pixels), chunk)])


def _features(extractor, pixels, chunk: int = 256) -> np.ndarray:
    """Activations of ``extractor`` for ``pixels`` (an array or NpyRows), ``chunk`` images in memory at a time."""
    return np.concatenate([np.asarray(extractor.predict(np.asarray(pixels[start:start + chunk], np.float32),
                                                        batch_size=32, verbose=0), np.float32)
                           for start in range(0, len(pixels), chunk)])


def stages_table(report: dict):
    """Return ``adapt.json``'s stages (source-only, then each method) as a pandas DataFrame, one row per stage."""
    import pandas as pd

    return pd.DataFrame([{"stage": stage, **{key.replace("_", " "): value for key, value in facts.items()}}
                         for stage, facts in report["stages"].items()])
