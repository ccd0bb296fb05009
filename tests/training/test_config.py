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


def test_every_field_survives_the_round_trip_through_a_runs_config_json(tmp_path):
    weights = tmp_path / "base.weights.h5"
    weights.write_bytes(b"checked only for existence here")
    changed = dict(
        val_fraction=0.3, test_fraction=0.1, seed=7, backbone="mobilenet_v2", weights=str(weights), image_size=128,
        pooling="max", dense_units=64, dropout=0.5, epochs=3, learning_rate=0.01, optimizer="sgd", momentum=0.8,
        weight_decay=0.001, batch_size=16, augment=AugmentOptions(flip="vertical", rotation=0.2, translation=0.1),
        label_smoothing=0.1, class_weights="balanced", early_stopping_patience=2, reduce_lr_patience=1,
        reduce_lr_factor=0.5, fine_tune_epochs=2, fine_tune_learning_rate=1e-5, unfreeze="block:5",
        train_batchnorm=True, tensorboard=True, top_k=3, workers=3,
        teacher_run="runs/teacher", distill_temperature=2.0, distill_alpha=0.3, distill_unlabeled="unlabelled",
        gradual_unfreeze=True,
    )
    assert set(changed) == set(TrainConfig.model_fields), "every field is changed from its default here"
    config = TrainConfig(**changed)
    assert all(getattr(config, name) != getattr(TrainConfig(), name) for name in changed)
    path = tmp_path / "config.json"
    path.write_text(config.to_json())
    assert TrainConfig.from_file(path) == config


def test_a_bad_assignment_is_refused_and_the_old_value_kept():
    config = TrainConfig()
    with pytest.raises(TLToolsError, match=r"^batch_size=0 is not allowed; use a whole number from 1 to 4096$"):
        config.batch_size = 0
    assert config.batch_size == 32
    assert config.replace(batch_size=8).batch_size == 8 and config.batch_size == 32


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
        ({"optimizer": "adagrad"}, "optimizer='adagrad' is not allowed; use one of adam, adamw, sgd, rmsprop"),
        ({"learning_rate": -1}, "learning_rate=-1 is not allowed; use a number from 1e-08 to 10"),
        ({"epochs": 0, "fine_tune_epochs": 0}, "at least one epoch"),
        ({"batch_size": 0}, "batch_size=0 is not allowed; use a whole number from 1 to 4096"),
        ({"batch_size": 2.5}, "batch_size=2.5 is not allowed; use a whole number from 1 to 4096"),
        ({"class_weights": "auto"}, "class_weights='auto' is not allowed; use one of off, balanced"),
        ({"dropout": 1.5}, "dropout=1.5 is not allowed; use a number from 0 to 0.95"),
        ({"momentum": 1.0}, "momentum=1.0 is not allowed; use a number from 0 to 0.999"),
        ({"seed": -1}, "seed=-1 is not allowed; use a whole number from 0 to 2147483647"),
        ({"val_fraction": 0.5, "test_fraction": 0.4}, "val_fraction + test_fraction = 0.90 leaves too few images"),
        ({"backbone": "resnet9000"}, "backbone='resnet9000': unknown backbone; use one of efficientnet_lite0, "),
        ({"weights": "missing.h5"}, "weights='missing.h5': is neither imagenet, none nor an existing weights file"),
        ({"image_size": 16}, "image_size=16 is not allowed; use a whole number from 32 to 1024"),
        ({"backbone": "inception_v3", "image_size": 64}, "image_size=64 is too small for inception_v3; use a whole"),
        ({"augment": {"zoom": 2.0}}, "augment.zoom=2.0 is not allowed; use a number from 0 to 1"),
        ({"augment": {"flip": "diagonal"}}, "augment.flip='diagonal' is not allowed; use one of horizontal, "),
        ({"unfreeze": "block:99"}, "unfreeze='block:99': efficientnet_lite0 has no block 99; use block:N with N one "
                                   "of 1, 2, 3, 4, 5, 6, 7"),
        ({"unfreeze": "500"}, "unfreeze='500': efficientnet_lite0 has 98 base layers with weights; use a number "
                              "from 0 to 98"),
        ({"backbone": "inception_v3", "unfreeze": "block:3"}, "inception_v3 has no named blocks"),
        ({"unfreeze": "half"}, "unfreeze='half' is not understood; use all, none, a number of top layers"),
        ({"learnig_rate": 0.1}, "unknown setting(s): learnig_rate; known: val_fraction, "),
    ],
)
def test_bad_settings_are_one_line_naming_the_setting_value_and_allowed_range(values, message):
    with pytest.raises(TLToolsError) as error:
        TrainConfig.from_dict(values)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_missing_or_broken_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(TLToolsError, match="not found"):
        TrainConfig.from_file(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TLToolsError, match="not valid JSON"):
        TrainConfig.from_file(tmp_path / "bad.json")
