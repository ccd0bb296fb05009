"""predict_images: every kind of source, top-k, flip TTA, unreadable images, and the table."""

import io

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tltools.data.images import load_image
from tltools.errors import TLToolsError
from tltools.prediction import Prediction, predict_images, predictions_csv, predictions_table

SIZE = 16
CLASSES = ["ant", "bee", "cat"]


@pytest.fixture(scope="module")
def model():
    """A small random classifier whose output changes when the image is mirrored."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu")(x))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(x), name="tiny")


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def reference(model, array: np.ndarray) -> np.ndarray:
    return model.predict(array[None].astype("float32"), verbose=0)[0]


def test_every_source_kind_gives_the_same_probabilities(model, pixels, tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(png(pixels))
    sources = [str(path), path, png(pixels), io.BytesIO(png(pixels)), Image.fromarray(pixels), pixels]
    predictions = predict_images(model, CLASSES, sources, batch_size=4)
    assert len(predictions) == len(sources)
    for prediction in predictions:
        np.testing.assert_allclose(prediction.probabilities, reference(model, pixels), rtol=1e-5, atol=1e-7)
    assert [p.source for p in predictions] == [str(path), str(path), "image_2", "image_3", "image_4", "image_5"]


def test_images_are_loaded_at_the_model_input_size_as_in_training(model, pixels):
    large = np.asarray(Image.fromarray(pixels).resize((40, 30)))
    [prediction] = predict_images(model, CLASSES, large)
    expected = reference(model, load_image(large, SIZE))
    np.testing.assert_allclose(prediction.probabilities, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["array", "bytes", "pil", "file"])
def test_a_single_source_gives_a_one_element_list(model, pixels, kind):
    source = {"array": pixels, "bytes": png(pixels), "pil": Image.fromarray(pixels), "file": io.BytesIO(png(pixels))}
    predictions = predict_images(model, CLASSES, source[kind])
    assert len(predictions) == 1 and isinstance(predictions[0], Prediction)
    assert predictions[0].source == "image_0"
    np.testing.assert_allclose(predictions[0].probabilities, reference(model, pixels), rtol=1e-5, atol=1e-7)


def test_any_iterable_of_sources(model, pixels, tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(png(pixels))
    predictions = predict_images(model, CLASSES, pd.Series([str(path), str(path)]))
    assert [p.source for p in predictions] == [str(path), str(path)]


def test_uploaded_files_keep_their_name(model, pixels):
    upload = io.BytesIO(png(pixels))
    upload.name = "holiday.png"
    assert predict_images(model, CLASSES, [upload])[0].source == "holiday.png"


def test_top_k_is_sorted_and_capped(model, pixels):
    [prediction] = predict_images(model, CLASSES, pixels, top_k=10)
    probs = reference(model, pixels)
    assert [item["index"] for item in prediction.top] == list(np.argsort(-probs))
    assert [item["label"] for item in prediction.top] == [CLASSES[i] for i in np.argsort(-probs)]
    assert [item["prob"] for item in prediction.top] == sorted((float(p) for p in probs), reverse=True)
    assert len(predict_images(model, CLASSES, pixels, top_k=2)[0].top) == 2


def test_flip_tta_averages_the_image_and_its_mirror(model, pixels):
    [tta] = predict_images(model, CLASSES, pixels, tta_flip=True)
    plain, mirrored = reference(model, pixels), reference(model, pixels[:, ::-1].copy())
    assert not np.allclose(plain, mirrored, atol=1e-4)  # the model is not mirror-symmetric
    np.testing.assert_allclose(tta.probabilities, (plain + mirrored) / 2, rtol=1e-5, atol=1e-7)


def test_batches_do_not_change_the_order(model):
    images = [np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for seed in range(5)]
    batched = predict_images(model, CLASSES, images, batch_size=2)
    for image, prediction in zip(images, batched):
        np.testing.assert_allclose(prediction.probabilities, reference(model, image), rtol=1e-5, atol=1e-7)


def test_table_and_csv(model, pixels, tmp_path):
    predictions = predict_images(model, CLASSES, [pixels, pixels[::-1].copy()], top_k=2)
    table = predictions_table(predictions)
    assert list(table.columns) == [
        "image", "predicted", "confidence", "top1_label", "top1_prob", "top2_label", "top2_prob"
    ]
    assert list(table["image"]) == ["image_0", "image_1"]
    assert table.loc[0, "predicted"] == predictions[0].top[0]["label"]
    assert table.loc[1, "confidence"] == pytest.approx(predictions[1].top[0]["prob"])
    table.to_csv(tmp_path / "predictions.csv", index=False)
    again = pd.read_csv(tmp_path / "predictions.csv")
    assert list(again.columns) == list(table.columns) and len(again) == 2
    assert list(predictions_table([]).columns) == ["image", "predicted", "confidence"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [({"top_k": 0}, "top_k=0"), ({"batch_size": 0}, "batch_size=0"), ({"class_names": ["a", "b"]}, "2 class names")],
)
def test_bad_arguments_are_refused(model, pixels, arguments, message):
    arguments = {"class_names": CLASSES, **arguments}
    with pytest.raises(TLToolsError, match=message):
        predict_images(model, arguments.pop("class_names"), pixels, **arguments)


def test_unreadable_image_is_a_tltools_error(model):
    with pytest.raises(TLToolsError, match="not a picture"):
        predict_images(model, CLASSES, [b"not an image"])


def test_unreadable_images_are_reported_in_place_and_the_rest_predicted_in_one_batch(model, pixels, monkeypatch):
    import tltools.prediction

    calls = []
    real = tltools.prediction.predict_probabilities
    monkeypatch.setattr(tltools.prediction, "predict_probabilities",
                        lambda model, images, **kwargs: calls.append(len(images)) or real(model, images, **kwargs))
    broken = io.BytesIO(b"not an image")
    broken.name = "broken.png"
    results = predict_images(model, CLASSES, [png(pixels), broken, pixels, png(pixels)], skip_unreadable=True)
    assert calls == [3]  # one forward batch for the three readable images
    assert [type(result).__name__ for result in results] == ["Prediction", "Unreadable", "Prediction", "Prediction"]
    assert results[1].source == "broken.png" and "not a picture" in results[1].reason
    for result in (results[0], results[2], results[3]):
        np.testing.assert_allclose(result.probabilities, reference(model, pixels), rtol=1e-5, atol=1e-7)
    assert [result.source for result in results] == ["image_0", "broken.png", "image_2", "image_3"]


@pytest.mark.hostile
def test_class_and_file_names_that_look_like_formulas_are_written_as_text():
    top = [{"index": 0, "label": "=HYPERLINK(\"http://x\")", "prob": 0.75},
           {"index": 1, "label": "+1", "prob": 0.25}]
    table = predictions_table([Prediction("@evil.png", top, np.array([0.75, 0.25]))])
    frame = pd.read_csv(io.StringIO(predictions_csv(table)))
    assert frame.loc[0, "predicted"] == "'=HYPERLINK(\"http://x\")" and frame.loc[0, "top2_label"] == "'+1"
    assert frame.loc[0, "image"] == "'@evil.png"
    assert frame.loc[0, "confidence"] == 0.75, "numbers stay numbers"
