"""The Home page, driven through Streamlit's AppTest: the five steps and the sample-data button."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from tltools import app_state, paths
from tltools.data.sample import (PER_CLASS, RECOMMENDED_FINE_TUNE_EPOCHS, RECOMMENDED_FINE_TUNE_LEARNING_RATE,
                                 RECOMMENDED_TIME_BUDGET_S)

TIMEOUT = 120
APP = str(Path(__file__).resolve().parents[2] / "app.py")


def open_home() -> AppTest:
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.run()
    assert not app.exception, app.exception
    return app


def test_home_is_the_default_page_and_outlines_the_five_steps():
    app = open_home()
    assert app.title[0].value == "Teach a pretrained model your own image classes"
    steps = [link.proto.label for link in app.get("page_link")]
    assert steps == ["1. Dataset", "2. Model", "3. Train", "4. Evaluate", "5. Predict", "Next: upload your dataset"]
    assert any("tiny 8×8-pixel scans" in caption.value for caption in app.caption)
    assert app.session_state[app_state.DATASET] is None


def test_the_sample_button_loads_ten_digit_classes_and_opens_the_dataset_page():
    app = open_home()
    app.button(key="home_sample").click().run()
    assert not app.exception, app.exception
    dataset = app.session_state[app_state.DATASET]
    assert dataset.classes == [str(digit) for digit in range(10)]
    assert app.session_state[app_state.DATASET_ORIGIN] == str(paths.datasets_dir() / "sample-digits")
    assert app.title[0].value == "Dataset"
    # The path that suits the sample is set up: auto mode's recommended budget, or a short fine-tune by hand.
    assert app.session_state[app_state.AUTO_BUDGET_S] == RECOMMENDED_TIME_BUDGET_S
    assert app.session_state[app_state.CONFIG].fine_tune_epochs == RECOMMENDED_FINE_TUNE_EPOCHS
    assert app.session_state[app_state.CONFIG].fine_tune_learning_rate == RECOMMENDED_FINE_TUNE_LEARNING_RATE
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Classes"] == "10" and metrics["Images"] == str(10 * PER_CLASS)
