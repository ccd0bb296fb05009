"""TrainConfig: JSON round trip, defaults of the recipe, and one-line errors for bad settings."""

import pytest

from tltools.data.augment import AugmentOptions
from tltools.errors import TLToolsError
from tltools.training import TrainConfig


def test_a_config_survives_a_json_round_trip(tmp_path):
    config = TrainConfig(backbone="mobilenet_v2", epochs=3, augment=AugmentOptions.light(), unfreeze=30)
    path = tmp_path / "config.json"
    path.write_text(config.to_json())
    assert TrainConfig.from_file(path) == config
    assert TrainConfig.from_file(path).unfreeze == "30"


def test_fine_tuning_defaults_to_a_tenth_of_the_learning_rate():
    assert TrainConfig(learning_rate=3e-3).phase2_learning_rate == pytest.approx(3e-4)
    assert TrainConfig(learning_rate=3e-3, fine_tune_learning_rate=1e-5).phase2_learning_rate == 1e-5


def test_defaults_follow_the_recipe():
    config = TrainConfig()
    assert (config.backbone, config.weights, config.fine_tune_epochs, config.train_batchnorm) == (
        "efficientnet_lite0", "imagenet", 0, False)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"optimizer": "adagrad"}, "optimizer='adagrad'"),
        ({"learning_rate": -1}, "learning_rate=-1"),
        ({"epochs": 0, "fine_tune_epochs": 0}, "at least one epoch"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"class_weights": "auto"}, "class_weights='auto'"),
        ({"dropout": 1.5}, "dropout=1.5"),
        ({"learnig_rate": 0.1}, "unknown setting(s): learnig_rate"),
    ],
)
def test_bad_settings_name_the_setting_and_value(values, message):
    with pytest.raises(TLToolsError) as error:
        TrainConfig.from_dict(values)
    assert message in str(error.value)


def test_a_missing_or_broken_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(TLToolsError, match="not found"):
        TrainConfig.from_file(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TLToolsError, match="not valid JSON"):
        TrainConfig.from_file(tmp_path / "bad.json")
