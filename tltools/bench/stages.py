"""The benchmark's stages; each also runs alone: ``python -m tltools.bench.stages NAME < context.json``.

Every stage takes the context :func:`tltools.bench.run.run_benchmark` builds
(a JSON object: data, split folders, settings, work folders) and returns a JSON
object with its wall time and results. Run as a module, it prints that object
with the process's peak resident set size added, so each stage's memory is
measured in a fresh process.
"""

import json
import os
import resource
import statistics
import sys
import time

STAGES = {}


def stage(function):
    """Register a stage under its function's name."""
    STAGES[function.__name__] = function
    return function


def _dataset(context):
    from tltools.data import load_dataset

    return load_dataset(context["data"], val_fraction=context["val_fraction"],
                        test_fraction=context["test_fraction"], seed=context["seed"])


def _config(context, **overrides):
    from tltools.data.augment import AugmentOptions
    from tltools.training import TrainConfig

    values = dict(backbone=context["backbone"], weights=context["weights"], image_size=context["image_size"],
                  batch_size=context["batch_size"], epochs=context["epochs"], learning_rate=context["learning_rate"],
                  unfreeze=context["unfreeze"], seed=context["seed"], val_fraction=context["val_fraction"],
                  test_fraction=context["test_fraction"], early_stopping_patience=0, augment=AugmentOptions())
    values.update(overrides)
    return TrainConfig(**values)


def _test_accuracy(metrics: dict) -> float | None:
    return None if metrics["test"] is None else metrics["test"]["accuracy"]


def _per_second(images: int, seconds: float) -> float:
    return round(images / seconds, 2) if seconds > 0 else 0.0


@stage
def ceiling(context) -> dict:
    """The base's ``predict`` throughput on decoded tensors already in memory (no decoding, no input pipeline)."""
    import keras
    import numpy as np

    from tltools.data.pipeline import decode_images
    from tltools.model import build_model
    from tltools.training.split_model import split_at_pooling

    keras.utils.set_random_seed(context["seed"])
    dataset = _dataset(context)
    model = build_model(context["backbone"], dataset.classes, weights=context["weights"],
                        input_size=context["image_size"])
    extractor = split_at_pooling(model).extractor
    paths = [dataset.root / relpath for relpath in dataset.items["relpath"][: context["ceiling_images"]]]
    images = np.asarray(decode_images(paths, context["image_size"]), dtype=np.float32)
    batch = context["batch_size"]
    extractor.predict(images[:batch], batch_size=batch, verbose=0)  # trace and warm up
    started = time.perf_counter()
    extractor.predict(images, batch_size=batch, verbose=0)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "images": len(images), "images_per_second": _per_second(len(images), seconds)}


@stage
def baseline_frozen(context) -> dict:
    """The tutorial: ``ImageDataGenerator`` + ``flow_from_directory`` + frozen base + ``fit``."""
    import keras

    from tltools.bench import baseline

    keras.utils.set_random_seed(context["seed"])
    started = time.perf_counter()
    train, val, test = baseline.generators(context["folders"], context["classes"], image_size=context["image_size"],
                                           batch_size=context["batch_size"], seed=context["seed"], augment=False)
    model, transfer = baseline.tutorial_model(context["backbone"], context["classes"], weights=context["weights"],
                                              image_size=context["image_size"])
    result = baseline.fit(model, train, val, test, learning_rate=context["learning_rate"], epochs=context["epochs"])
    seconds = time.perf_counter() - started
    transfer.save_weights(context["baseline_weights"])
    images = context["counts"]["train"] * context["epochs"]
    return {**result, "seconds": round(seconds, 2), "images_per_second": _per_second(images, seconds)}


@stage
def tltools_frozen_cold(context) -> dict:
    """tltools' frozen-base training from the image folder, feature cache empty: dataset check + ``train``."""
    from tltools.training import train

    started = time.perf_counter()
    dataset = _dataset(context)
    checked = time.perf_counter()
    result = train(_config(context), dataset, run_dir=context["frozen_run"])
    seconds = time.perf_counter() - started
    metrics = result.metrics
    images = context["counts"]["train"] * context["epochs"]
    return {
        "seconds": round(seconds, 2), "dataset_check_seconds": round(checked - started, 2),
        "images_per_second": _per_second(images, seconds), "val_accuracy": metrics["val"]["accuracy"],
        "test_accuracy": _test_accuracy(metrics),
        "val_loss": metrics["val"]["loss"], "fast_path": metrics["fast_path"],
        "feature_cache": metrics["feature_cache"],
        "feature_seconds": metrics["feature_seconds"], "feature_images": metrics["feature_images_computed"],
        "extract_images_per_second": _per_second(metrics["feature_images_computed"], metrics["feature_seconds"]),
    }


@stage
def tltools_frozen_warm(context) -> dict:
    """Retraining the head on the warm cache with a new learning rate: ``train`` on a dataset already loaded."""
    from tltools.training import train

    dataset = _dataset(context)
    timings, metrics = [], []
    for factor in (1.0, 2.0):  # the first retrain in a fresh process, then one more (an app moving a slider)
        config = _config(context, epochs=context["warm_epochs"], learning_rate=context["warm_learning_rate"] * factor)
        started = time.perf_counter()
        metrics.append(train(config, dataset).metrics)
        timings.append(time.perf_counter() - started)
    first = metrics[0]
    images = context["counts"]["train"] * context["warm_epochs"]
    return {
        "seconds": round(timings[0], 2), "seconds_again": round(timings[1], 2),
        "images_per_second": _per_second(images, timings[0]), "val_accuracy": first["val"]["accuracy"],
        "test_accuracy": _test_accuracy(first),
        "feature_cache": first["feature_cache"], "epochs": context["warm_epochs"],
        "learning_rate": context["warm_learning_rate"],
    }


@stage
def baseline_fine_tune(context) -> dict:
    """The tutorial's fine-tuning: its frozen-phase model, the same layers unfrozen, ``fit`` at a tenth of the LR."""
    import keras

    from tltools.bench import baseline

    keras.utils.set_random_seed(context["seed"])
    started = time.perf_counter()
    train, val, test = baseline.generators(context["folders"], context["classes"], image_size=context["image_size"],
                                           batch_size=context["batch_size"], seed=context["seed"],
                                           augment=context["augment"])
    model, transfer = baseline.tutorial_model(context["backbone"], context["classes"], weights=context["weights"],
                                              image_size=context["image_size"])
    transfer.load_weights(context["baseline_weights"])
    baseline.unfreeze(transfer, context["unfreeze"])
    result = baseline.fit(model, train, val, test, learning_rate=context["learning_rate"] / 10,
                          epochs=context["fine_tune_epochs"])
    seconds = time.perf_counter() - started
    images = context["counts"]["train"] * context["fine_tune_epochs"]
    return {**result, "seconds": round(seconds, 2), "images_per_second": _per_second(images, seconds),
            "mean_epoch_seconds": round(statistics.mean(result["epoch_seconds"]), 2)}


@stage
def tltools_fine_tune(context) -> dict:
    """tltools' fine-tuning, continuing its frozen-phase run with the same layers unfrozen."""
    from tltools.data.augment import AugmentOptions
    from tltools.training import TrainingLog, train

    dataset = _dataset(context)
    log = TrainingLog()
    config = _config(context, epochs=0, fine_tune_epochs=context["fine_tune_epochs"],
                     augment=AugmentOptions.light() if context["augment"] else AugmentOptions())
    started = time.perf_counter()
    result = train(config, dataset, log=log, from_run=context["frozen_run"])
    seconds = time.perf_counter() - started
    epochs = [round(epoch["seconds"], 3) for epoch in log.snapshot()["epochs"]]
    metrics = result.metrics
    images = context["counts"]["train"] * context["fine_tune_epochs"]
    return {
        "seconds": round(seconds, 2), "images_per_second": _per_second(images, seconds), "epoch_seconds": epochs,
        "mean_epoch_seconds": round(statistics.mean(epochs), 2), "val_accuracy": metrics["val"]["accuracy"],
        "test_accuracy": _test_accuracy(metrics),
        "fine_tune_fast_path": metrics["fine_tune_fast_path"], "feature_cache": metrics["fine_tune_feature_cache"],
        "feature_seconds": metrics["feature_seconds"],
    }


@stage
def tltools_auto(context) -> dict:
    """Auto mode (:func:`tltools.auto.run_auto`) within ``auto_budget`` seconds from an empty feature cache:
    extraction, head search, final run and fine-tuning when it pays; what it chose and how it scored."""
    from tltools.auto import describe, run_auto
    from tltools.training import TrainConfig

    dataset = _dataset(context)
    base = TrainConfig(backbone=context["backbone"], weights=context["weights"], batch_size=context["batch_size"],
                       seed=context["seed"], val_fraction=context["val_fraction"],
                       test_fraction=context["test_fraction"])
    started = time.perf_counter()
    outcome = run_auto(dataset, time_budget_s=context["auto_budget"], base_config=base)
    seconds = time.perf_counter() - started
    metrics = outcome.result.metrics
    return {
        "seconds": round(seconds, 2), "budget_seconds": context["auto_budget"],
        "within_budget": seconds <= 1.1 * context["auto_budget"],
        "val_accuracy": metrics["val"]["accuracy"], "test_accuracy": _test_accuracy(metrics),
        "test_macro_f1": None if metrics["test"] is None else metrics["test"]["macro_f1"],
        "trials": len(outcome.trials), "chosen": describe(outcome.chosen.params),
        "fine_tuning": outcome.summary["fine_tuning"], "why": outcome.why,
    }


@stage
def scale(context) -> dict:
    """tltools' training from scratch (dataset check + both phases) on a large generated dataset."""
    from tltools.data import load_dataset
    from tltools.training import train

    started = time.perf_counter()
    dataset = load_dataset(context["scale_data"], val_fraction=context["val_fraction"], seed=context["seed"])
    config = _config(context, fine_tune_epochs=context["fine_tune_epochs"], test_fraction=0.0)
    result = train(config, dataset)
    seconds = time.perf_counter() - started
    metrics = result.metrics
    return {
        "seconds": round(seconds, 2), "images": len(dataset.items), "val_accuracy": metrics["val"]["accuracy"],
        "fast_path": metrics["fast_path"], "fine_tune_fast_path": metrics["fine_tune_fast_path"],
        "feature_seconds": metrics["feature_seconds"],
    }


@stage
def compile_options(context) -> dict:
    """``jit_compile`` and ``steps_per_execution`` on head training and on fine-tuning the unfrozen top."""
    import keras

    from tltools.bench.baseline import EpochTimer
    from tltools.model import build_model
    from tltools.model.freezing import apply_unfreeze, freeze_base
    from tltools.training.fast_path import FastPaths
    from tltools.training.trainer import prepare_data

    dataset = _dataset(context).with_splits(val_fraction=context["val_fraction"],
                                            test_fraction=context["test_fraction"], seed=context["seed"])
    config = _config(context, fine_tune_epochs=max(context["fine_tune_epochs"], 1))
    model = build_model(context["backbone"], dataset.classes, weights=context["weights"],
                        input_size=context["image_size"])
    data = prepare_data(config, dataset, context["image_size"])
    fast = FastPaths.plan(model, config, dataset, lambda: data.arrays)
    num_classes = len(dataset.classes)

    def pipelines(cached, limit=None):
        import tensorflow as tf

        def one_hot(pipeline):
            pipeline = pipeline.map(lambda x, y: (x, tf.one_hot(y, num_classes)))
            return pipeline.take(limit) if limit else pipeline

        return one_hot(cached.pipeline("train", shuffle=True)), one_hot(cached.pipeline("val"))

    def timed_fit(trained, cached, *, jit, steps, epochs, limit=None):
        trained.compile(optimizer=keras.optimizers.Adam(1e-4), loss="categorical_crossentropy",
                        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")], jit_compile=jit,
                        steps_per_execution=steps)
        train_data, val_data = pipelines(cached, limit)
        timer = EpochTimer()
        started = time.perf_counter()
        trained.fit(train_data, validation_data=val_data, epochs=epochs, callbacks=[timer], verbose=0)
        return {"jit_compile": jit, "steps_per_execution": steps, "seconds": round(time.perf_counter() - started, 2),
                "first_epoch_seconds": round(timer.seconds[0], 2),
                "later_epoch_seconds": round(statistics.mean(timer.seconds[1:]), 3) if len(timer.seconds) > 1 else None}

    results = {"head": [], "fine_tune": []}
    freeze_base(model)
    head = fast.phase(1)
    for jit, steps in ((False, 1), (True, 1), (False, 8), (False, 32)):
        results["head"].append(timed_fit(head.model, head, jit=jit, steps=steps, epochs=context["warm_epochs"]))
    apply_unfreeze(model, context["unfreeze"])
    tail = fast.phase(2)
    if tail is not None:
        for jit, steps in ((False, 1), (True, 1), (False, 4)):
            results["fine_tune"].append(timed_fit(tail.model, tail, jit=jit, steps=steps, epochs=3, limit=8))
    return results


def peak_rss_mb() -> float:
    """Return this process's peak resident set size in MiB (``ru_maxrss``; the reports' ``peak_rss_mb``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 1024 if sys.platform != "darwin" else peak / 1024**2, 1)


def main() -> int:
    """Run the stage named in ``argv[1]`` on the JSON context from stdin; print its result as one JSON line."""
    from tltools.cli import _native_stderr_silenced

    name, context = sys.argv[1], json.load(sys.stdin)
    with _native_stderr_silenced():
        import tensorflow  # noqa: F401 - loaded quietly before the stage's own imports
    result = STAGES[name](context)
    result["peak_rss_mb"] = peak_rss_mb()
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
