"""A small "trained" transfer model and a fabricated run folder of its training images, for export tests."""

import csv
from pathlib import Path

import keras
import numpy as np

from tests.factories import class_images, write_tree
from tltools.backbones import get_backbone, preprocessing_layer
from tltools.data.images import load_image
from tltools.model import build_model, save_model
from tltools.runs import COMPLETED, RunWriter

BACKBONE = "efficientnet_lite0"  # the default backbone; mobilenet_v3_small is smaller but cannot be saved as .h5
CLASSES = ["a", "b", "c"]
SIZE = 64
PER_CLASS = 5  # images per class: the first 4 train, the last val
IMAGE_SIZE = (40, 30)  # generated images are resized to SIZE, as real ones are


def image_files() -> dict[str, bytes]:
    """Return the dataset's PNG files: ``<class>/<n>.png`` of distinct seeded noise."""
    return class_images(CLASSES, per_class=PER_CLASS, size=IMAGE_SIZE)


def train_relpaths() -> list[str]:
    """Return the training split's files, class by class."""
    return [f"{name}/{n}.png" for name in CLASSES for n in range(PER_CLASS - 1)]


def train_paths(image_root: Path) -> list[Path]:
    """Return the training images of a dataset written by :func:`fabricate_run` below ``image_root``."""
    return [image_root / relpath for relpath in train_relpaths()]


def transfer_model() -> keras.Model:
    """Return ``build_model(BACKBONE, CLASSES, weights="none", input_size=SIZE)`` fitted to the training images.

    Random weights with BatchNorm's initial statistics (mean 0, variance 1) make
    the features vanish (~1e-12) and every prediction 1/3 each, so each
    BatchNorm's statistics are set from the training images, as training-mode
    BatchNorm would. The head is then set to a nearest-class-mean classifier
    on those images, so the model is confident and right on them like a
    trained one (int8 is judged on such a model, not on near-ties).
    """
    keras.utils.set_random_seed(0)
    model = build_model(BACKBONE, CLASSES, weights="none", input_size=SIZE)
    files = image_files()
    pixels = np.stack([load_image(files[relpath], SIZE) for relpath in train_relpaths()]).astype("float32")
    normalise = preprocessing_layer(get_backbone(BACKBONE).preprocessing)
    _set_batchnorm_statistics(model.get_layer("base"), normalise(pixels))
    features = keras.Model(model.input, model.get_layer("pooling").output).predict(pixels, verbose=0)
    labels = np.repeat(np.arange(len(CLASSES)), PER_CLASS - 1)
    mean = features.mean(axis=0)
    centroids = np.stack([features[labels == k].mean(axis=0) for k in range(len(CLASSES))]) - mean
    kernel = centroids.T
    scale = 4.0 / np.abs((features - mean) @ kernel).max()  # logits within +-4
    bias = -(mean @ kernel)
    model.get_layer("predictions").set_weights([(kernel * scale).astype("float32"), (bias * scale).astype("float32")])
    return model


def _set_batchnorm_statistics(base: keras.Model, inputs) -> None:
    """Set every BatchNorm's moving mean and variance to those of ``inputs``' activations."""
    norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0  # the moving statistics become this batch's
    base.trainable = True  # a frozen BatchNorm ignores training=True
    base(inputs, training=True)
    base.trainable = False
    for layer in norms:
        layer.momentum = 0.99


def fabricate_run(run_folder: Path, image_root: Path, model: keras.Model) -> Path:
    """Write a completed run of ``model`` whose dataset is :func:`image_files` below ``image_root``.

    Returns:
        ``run_folder``, holding status, labels, config, metrics, ``dataset.json``,
        ``splits.csv`` and ``model.keras``.
    """
    write_tree(image_root, image_files())
    writer = RunWriter(run_folder)
    writer.set_status(COMPLETED)
    writer.write_labels(CLASSES)
    writer.write_json("config.json", {"backbone": BACKBONE, "image_size": SIZE, "epochs": 3, "learning_rate": 0.001})
    writer.write_json("metrics.json", {"val": {"accuracy": 0.8125, "loss": 0.52}})
    writer.write_json("dataset.json", {"root": str(image_root)})
    train = set(train_relpaths())
    with open(run_folder / "splits.csv", "w", newline="", encoding="utf-8") as handle:
        rows = csv.writer(handle)
        rows.writerow(["relpath", "label", "split"])
        for relpath in image_files():
            rows.writerow([relpath, relpath.split("/")[0], "train" if relpath in train else "val"])
    save_model(model, writer.model_path, CLASSES)
    return run_folder
