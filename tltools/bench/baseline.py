"""The classic tutorial pipeline, kept here as the benchmark's baseline and used nowhere else.

``ImageDataGenerator(rescale=1./255).flow_from_directory(...)`` reads, decodes
and rescales every image in Python, one batch at a time, in every epoch, and
``fit`` runs the whole frozen backbone over every batch, every epoch. Keras 3
keeps the generator at ``keras.src.legacy.preprocessing.image``.

To compare speed and not preprocessing mistakes, the model is tltools' own
transfer model (same backbone, weights, head) behind a ``Rescaling(255)`` layer
that undoes the tutorial's ``1/255``, so the backbone gets its own
normalisation, exactly as in tltools. With ``augment``, the generator applies
the closest equivalent of tltools' light augmentation (horizontal flip, 18°
rotation, 10 % zoom; it has no contrast change).
"""

import time

import keras

from tltools.model.builder import build_model
from tltools.model.freezing import apply_unfreeze


class EpochTimer(keras.callbacks.Callback):
    """Records each epoch's duration in seconds (validation included)."""

    def __init__(self):
        super().__init__()
        self.seconds = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def generators(folders: dict, classes: list[str], *, image_size: int, batch_size: int, seed: int, augment: bool):
    """Return the tutorial's (train, validation, test or None) iterators over ``split/class/file`` folders."""
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    extra = dict(horizontal_flip=True, rotation_range=18, zoom_range=0.1) if augment else {}
    common = dict(target_size=(image_size, image_size), classes=list(classes), class_mode="categorical",
                  batch_size=batch_size)
    train = ImageDataGenerator(rescale=1.0 / 255, **extra).flow_from_directory(
        str(folders["train"]), shuffle=True, seed=seed, **common)
    plain = ImageDataGenerator(rescale=1.0 / 255)
    val = plain.flow_from_directory(str(folders["val"]), shuffle=False, **common)
    test = plain.flow_from_directory(str(folders["test"]), shuffle=False, **common) if "test" in folders else None
    return train, val, test


def tutorial_model(backbone: str, classes: list[str], *, weights, image_size: int, pooling: str = "avg",
                   dense_units: int = 0, dropout: float = 0.2) -> tuple[keras.Model, keras.Model]:
    """Return (the model ``fit`` trains on 0..1 pixels, the tltools transfer model inside it)."""
    transfer = build_model(backbone, classes, weights=weights, input_size=image_size, pooling=pooling,
                           dense_units=dense_units, dropout=dropout)
    inputs = keras.Input((image_size, image_size, 3))
    outputs = transfer(keras.layers.Rescaling(255.0, name="undo_rescale")(inputs))
    return keras.Model(inputs, outputs, name="tutorial"), transfer


def fit(model: keras.Model, train, val, test=None, *, learning_rate: float, epochs: int) -> dict:
    """Compile with Adam and categorical cross-entropy, ``fit``, evaluate ``test``; return timings and accuracies."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="categorical_crossentropy",
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    timer = EpochTimer()
    history = model.fit(train, validation_data=val, epochs=epochs, callbacks=[timer], verbose=0)
    test_accuracy = None if test is None else float(model.evaluate(test, verbose=0, return_dict=True)["accuracy"])
    return {
        "test_accuracy": test_accuracy,
        "epoch_seconds": [round(s, 3) for s in timer.seconds],
        "val_accuracy": float(history.history["val_accuracy"][-1]),
        "best_val_accuracy": float(max(history.history["val_accuracy"])),
        "val_loss": float(history.history["val_loss"][-1]),
    }


def unfreeze(transfer: keras.Model, setting: str) -> None:
    """Unfreeze the same base layers tltools' phase 2 would (BatchNorm stays frozen, as there)."""
    apply_unfreeze(transfer, setting)
