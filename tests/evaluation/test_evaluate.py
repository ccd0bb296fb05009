"""evaluate_split on tiny generated datasets: a transfer model with a fixed answer, a toy model of the same shape."""

from pathlib import Path

import keras
import numpy as np
import pytest

from tests.factories import class_images, image_bytes, write_tree
from tltools.data import load_dataset
from tltools.errors import TLToolsError
from tltools.data.pipeline import decode_images
from tltools.evaluation import evaluate_dataset, evaluate_split, split_metrics
from tltools.model import build_model

CLASSES = ["ant", "bee", "cat"]
CONFIDENCE = np.exp(4.0) / (np.exp(4.0) + 2)  # softmax of logits (4, 0, 0)

COLOUR_CLASSES = ["blue", "green", "red"]
COLOURS = {"blue": (0, 0, 255), "green": (0, 255, 0), "red": (255, 0, 0)}
# (folder, number, colour): val/blue/1 is dark red and val/green/2 is blue, so both are misclassified.
VAL_IMAGES = [
    ("blue", 0, (0, 0, 255)),
    ("blue", 1, (200, 0, 0)),
    ("green", 0, (0, 255, 0)),
    ("green", 1, (0, 230, 0)),
    ("green", 2, (0, 0, 255)),
    ("red", 0, (255, 0, 0)),
]


def confidence_of(level: int) -> float:
    """Softmax probability of the winning class when one channel is at ``level`` and the others 0."""
    logit = 8 * level / 255
    return float(np.exp(logit) / (np.exp(logit) + 2))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = write_tree(tmp_path_factory.mktemp("data"), class_images(CLASSES, per_class=6))
    return load_dataset(root, val_fraction=0.5, test_fraction=0.0, seed=0)


@pytest.fixture(scope="module")
def always_ant():
    """A random MobileNetV3-Small transfer model whose head always answers "ant" with CONFIDENCE."""
    model = build_model("mobilenet_v3_small", CLASSES, weights="none", input_size=64)
    kernel, _ = model.get_layer("predictions").get_weights()
    model.get_layer("predictions").set_weights([np.zeros_like(kernel), np.array([4.0, 0.0, 0.0], "float32")])
    return model


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    """A pre-split dataset of solid colours; two val images are in the wrong colour's folder."""
    files = {f"train/{name}/{n}.png": image_bytes(color=rgb, size=(20, 20))
             for name, rgb in COLOURS.items() for n in range(2)}
    files.update({f"val/{name}/{n}.png": image_bytes(color=rgb, size=(20, 20)) for name, n, rgb in VAL_IMAGES})
    return load_dataset(write_tree(tmp_path_factory.mktemp("colours"), files))


@pytest.fixture(scope="module")
def dominant_colour():
    """Input -> Rescaling -> nested 1x1 conv "base" -> GAP -> Dense: the class is the strongest channel."""
    base_input = keras.Input((16, 16, 3))
    identity = keras.layers.Conv2D(3, 1, use_bias=False, name="identity")
    base = keras.Model(base_input, identity(base_input), name="base")
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(keras.layers.Rescaling(1 / 255)(inputs), training=False))
    head = keras.layers.Dense(3, activation="softmax", name="predictions")
    model = keras.Model(inputs, head(x), name="dominant_colour")
    identity.set_weights([np.eye(3, dtype="float32").reshape(1, 1, 3, 3)])
    # Channels R, G, B score classes red (2), green (1), blue (0).
    head.set_weights([8 * np.eye(3, dtype="float32")[::-1], np.zeros(3, "float32")])
    return model


@pytest.mark.slow
def test_known_answers_of_a_constant_model(always_ant, dataset):
    metrics = evaluate_split(always_ant, CLASSES, dataset, "val")
    counts = dataset.class_counts("val")
    total = sum(counts.values())
    assert metrics["num_images"] == total
    assert metrics["accuracy"] == pytest.approx(counts["ant"] / total)
    assert metrics["confusion_matrix"] == [[counts[name], 0, 0] for name in CLASSES]
    assert metrics["per_class"]["ant"]["recall"] == 1.0 and metrics["per_class"]["bee"]["recall"] == 0.0
    wrong_share = 1 - counts["ant"] / total
    expected_loss = -(1 - wrong_share) * np.log(CONFIDENCE) - wrong_share * np.log((1 - CONFIDENCE) / 2)
    assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert metrics["ece"] == pytest.approx(abs(CONFIDENCE - counts["ant"] / total), rel=1e-5)


def test_misclassified_images_are_named_by_relative_path(always_ant, dataset):
    metrics = evaluate_split(always_ant, CLASSES, dataset, "val")
    val = dataset.split("val")
    wrong = val[val["label"] != "ant"]
    assert sorted(entry["path"] for entry in metrics["misclassified"]) == sorted(wrong["relpath"])
    for entry in metrics["misclassified"]:
        assert entry["true"] == Path(entry["path"]).parent.name
        assert entry["predicted"] == "ant"
        assert entry["confidence"] == pytest.approx(CONFIDENCE, rel=1e-5)


def test_known_answers_of_an_image_dependent_model(dominant_colour, colours):
    metrics = evaluate_split(dominant_colour, COLOUR_CLASSES, colours, "val", batch_size=4)
    assert metrics["num_images"] == 6
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["confusion_matrix"] == [[1, 0, 1], [1, 2, 0], [0, 0, 1]]
    assert metrics["per_class"]["red"]["precision"] == pytest.approx(0.5)
    assert metrics["per_class"]["green"]["recall"] == pytest.approx(2 / 3)


def test_misclassified_images_line_up_with_their_paths_and_labels(dominant_colour, colours):
    metrics = evaluate_split(dominant_colour, COLOUR_CLASSES, colours, "val", batch_size=4)
    rows = colours.split("val")
    assert [{key: entry[key] for key in ("path", "true", "predicted")} for entry in metrics["misclassified"]] == [
        {"path": "val/green/2.png", "true": "green", "predicted": "blue"},
        {"path": "val/blue/1.png", "true": "blue", "predicted": "red"},
    ]
    assert [entry["confidence"] for entry in metrics["misclassified"]] == pytest.approx(
        [confidence_of(255), confidence_of(200)], rel=1e-5
    )
    for entry in metrics["misclassified"]:
        assert rows.iloc[entry["index"]]["relpath"] == entry["path"]


def test_empty_split_gives_none(always_ant, dataset):
    assert dataset.split("test").empty
    assert evaluate_split(always_ant, CLASSES, dataset, "test") is None


def test_split_metrics_from_given_probabilities_equal_those_predicted_from_the_images(dominant_colour, colours):
    images = {split: decode_images(colours.paths(split), 16) for split in ("val",)}
    from_probabilities = split_metrics(COLOUR_CLASSES, colours,
                                       lambda split: dominant_colour.predict(images[split].astype("float32"), verbose=0))
    assert from_probabilities == evaluate_dataset(dominant_colour, COLOUR_CLASSES, colours)
    assert from_probabilities["val"] == evaluate_split(dominant_colour, COLOUR_CLASSES, colours, "val")
    assert from_probabilities["test"] is None and from_probabilities["classes"] == COLOUR_CLASSES


def test_top_k_is_capped(always_ant, dataset):
    metrics = evaluate_split(always_ant, CLASSES, dataset, "val", top_k=2)
    assert metrics["top_k"] == 2
    assert evaluate_split(always_ant, CLASSES, dataset, "val", top_k=7)["top_k"] == 3


@pytest.mark.parametrize(
    ("model_classes", "message"),
    [
        (["ant", "bee", "dog"], r"classes don't match .*different names.*'dog'.*'cat'"),
        (["bee", "ant", "cat"], r"classes don't match .*different order"),
    ],
)
def test_class_mismatch_is_refused(always_ant, dataset, model_classes, message):
    with pytest.raises(TLToolsError, match=message):
        evaluate_split(always_ant, model_classes, dataset, "val")


@pytest.mark.parametrize(("arguments", "message"), [({"top_k": 0}, "top_k=0"), ({"batch_size": 0}, "batch_size=0")])
def test_bad_arguments_are_refused(always_ant, dataset, arguments, message):
    with pytest.raises(TLToolsError, match=message):
        evaluate_split(always_ant, CLASSES, dataset, "val", **arguments)
