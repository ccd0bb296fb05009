"""The Predict page, driven through AppTest with a real run's model and with uploaded model files."""

from pathlib import Path

import keras
import pytest
from streamlit.testing.v1 import AppTest

from tests.factories import fast_config, image_bytes
from tltools import app_state, paths
from tltools.training import train

TIMEOUT = 120
APP = str(Path(__file__).resolve().parents[2] / "app.py")
RED = image_bytes((200, 40, 40), size=(40, 40))


@pytest.fixture(scope="module")
def run(colours):
    """One epoch at a high learning rate: enough to tell red from green and blue."""
    return train(fast_config(epochs=1, learning_rate=3e-2), colours).run


def open_predict(run) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.session_state[app_state.SELECTED_RUN] = str(run.path)
    app.run().switch_page("pages/predict.py").run()
    assert not app.exception, app.exception
    return app


def upload_images(app: AppTest, *files) -> AppTest:
    app.file_uploader(key="predict_images").set_value(list(files)).run()
    assert not app.exception, app.exception
    return app


def use_own_model(app: AppTest, name: str, content: bytes) -> AppTest:
    app.radio(key="predict_model_source").set_value("My own .keras file").run()
    app.file_uploader(key="predict_model_upload").set_value((name, content, "application/octet-stream")).run()
    assert not app.exception, app.exception
    return app


@pytest.mark.slow
def test_a_red_image_is_predicted_red_with_a_chart_and_a_csv(run):
    app = upload_images(open_predict(run), ("red.png", RED, "image/png"))
    table = app.dataframe[0].value
    assert list(table.columns) == ["image", "predicted", "confidence", "next likely"]  # no sideways scrolling
    assert list(table["image"]) == ["red.png"] and table["predicted"][0] == "red"
    assert len(table["next likely"][0].split(", ")) == 2 and "red" not in table["next likely"][0]
    assert len(app.dataframe[1].value.filter(like="_label").columns) == 3  # every rank on demand, top-k capped
    assert len(app.get("plotly_chart")) == 1
    assert app.get("download_button")


@pytest.mark.slow
def test_an_unreadable_image_gets_one_error_and_the_others_are_predicted_in_one_batch(run, monkeypatch):
    import tltools.prediction

    batches = []
    real = tltools.prediction.predict_probabilities
    monkeypatch.setattr(tltools.prediction, "predict_probabilities",
                        lambda model, images, **kwargs: batches.append(len(images)) or real(model, images, **kwargs))
    blue = image_bytes((40, 60, 200), size=(40, 40))
    app = upload_images(open_predict(run), ("red.png", RED, "image/png"), ("broken.png", b"not an image", "image/png"),
                        ("blue.png", blue, "image/png"))
    assert len(app.error) == 1 and app.error[0].value.startswith("broken.png: ")
    table = app.dataframe[0].value
    assert list(table["image"]) == ["red.png", "blue.png"] and table["predicted"][0] == "red"
    assert batches == [2]  # both readable images in one forward pass


@pytest.mark.slow
def test_the_grad_cam_toggle_shows_an_overlay(run):
    app = upload_images(open_predict(run), ("red.png", RED, "image/png"))
    before = app.get("image")[0].value
    next(toggle for toggle in app.toggle if toggle.label.startswith("Grad-CAM")).set_value(True).run()
    assert not app.exception, app.exception
    assert app.get("image")[0].value != before


def test_top_k_and_flip_tta_change_the_table(run):
    app = upload_images(open_predict(run), ("red.png", RED, "image/png"))
    app.slider(key="predict_top_k").set_value(1)
    app.checkbox(key="predict_tta").check().run()
    assert list(app.dataframe[0].value.columns) == ["image", "predicted", "confidence"]
    assert list(app.dataframe[1].value.columns) == ["image", "predicted", "confidence", "top1_label", "top1_prob"]


def test_the_same_image_added_twice_is_classified_once_and_said_so(run):
    app = upload_images(open_predict(run), ("red.png", RED, "image/png"), ("copy of red.png", RED, "image/png"))
    assert list(app.dataframe[0].value["image"]) == ["red.png"]
    assert any("repeat an image already added" in info.value and "copy of red.png" in info.value for info in app.info)


def test_an_unreadable_file_is_named_in_plain_words(run):
    app = upload_images(open_predict(run), ("notes.png", b"just text", "image/png"))
    assert len(app.error) == 1 and "Pillow" not in app.error[0].value
    assert "not a picture in a format this app reads" in app.error[0].value


@pytest.mark.slow
def test_an_uploaded_model_file_predicts_like_its_run(run):
    app = use_own_model(open_predict(run), "my colours.keras", run.model_path.read_bytes())
    assert not app.error
    assert list(paths.home_dir().joinpath("uploaded_models").glob("my_colours-*.keras"))
    upload_images(app, ("red.png", RED, "image/png"))
    assert app.dataframe[0].value["predicted"][0] == "red"


def test_a_garbage_model_file_shows_the_clear_error_and_is_not_kept(run):
    app = use_own_model(open_predict(run), "broken.keras", b"garbage, not a zip")
    assert len(app.error) == 1 and "is not a Keras model file" in app.error[0].value
    assert not list(paths.home_dir().joinpath("uploaded_models").glob("broken-*"))
    assert app.session_state[app_state.UPLOADED_MODEL] is None


def lambda_model_bytes(tmp_path, marker) -> bytes:
    """A tiny .keras model whose Lambda layer creates ``marker`` whenever its code runs."""
    target = str(marker)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: (open(target, "w").close(), t)[1], name="payload")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x)).save(path)
    marker.unlink()  # building the model ran the payload once
    return path.read_bytes()


@pytest.mark.hostile
def test_a_model_file_with_a_lambda_layer_shows_one_error_runs_nothing_and_is_not_kept(run, tmp_path):
    marker = tmp_path / "payload-ran"
    app = use_own_model(open_predict(run), "lambda.keras", lambda_model_bytes(tmp_path, marker))
    assert len(app.error) == 1
    assert "contains a Lambda layer ('payload'), which carries Python code" in app.error[0].value
    assert not marker.exists()
    assert not list(paths.home_dir().joinpath("uploaded_models").glob("lambda-*"))
    assert app.session_state[app_state.UPLOADED_MODEL] is None


@pytest.mark.hostile
def test_a_model_file_over_the_size_limit_is_refused_before_anything_is_written(run, monkeypatch):
    app = open_predict(run)
    monkeypatch.setenv("TLTOOLS_MAX_MODEL_BYTES", "1000")
    use_own_model(app, "huge.keras", run.model_path.read_bytes())
    assert len(app.error) == 1
    assert "the uploaded model 'huge.keras' is" in app.error[0].value
    assert "TLTOOLS_MAX_MODEL_BYTES" in app.error[0].value
    assert not list(paths.home_dir().joinpath("uploaded_models").glob("huge-*"))
    assert app.session_state[app_state.UPLOADED_MODEL] is None
