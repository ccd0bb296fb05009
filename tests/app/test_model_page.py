"""The Model page, driven through Streamlit's AppTest: backbone, weights, head, freezing preview, ImageNet top-5."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.factories import class_images, write_tree
from tltools import app_state, paths
from tltools.backbones import create_backbone, list_backbones
from tltools.data import load_dataset
from tltools.training import TrainConfig

TIMEOUT = 120
APP = str(Path(__file__).resolve().parents[2] / "app.py")
DEFAULT = "efficientnet_lite0"


@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    return load_dataset(write_tree(tmp_path_factory.mktemp("pets"), class_images(("cat", "dog", "fox"), per_class=4)))


@pytest.fixture
def app(pets) -> AppTest:
    return model_page(pets)


def model_page(dataset, **settings) -> AppTest:
    """The Model page of a session with ``dataset`` loaded; unfreezing starts at "all" (the slider at its top)
    unless ``settings`` say otherwise (a new session's default is the top two blocks)."""
    app = rerun(AppTest.from_file(APP, default_timeout=TIMEOUT))
    app.session_state[app_state.DATASET] = dataset
    app.session_state[app_state.CONFIG] = TrainConfig(**{"unfreeze": "all", **settings})
    return rerun(app.switch_page("pages/model.py"))


def test_a_new_session_unfreezes_the_top_two_blocks_by_default(pets):
    app = rerun(AppTest.from_file(APP, default_timeout=TIMEOUT))
    app.session_state[app_state.DATASET] = pets
    app = rerun(app.switch_page("pages/model.py"))
    assert saved(app).unfreeze == "block:6"
    assert app.radio(key=f"model_unfreeze_mode_{DEFAULT}").value == "by block"
    assert app.select_slider(key=f"model_unfreeze_block_{DEFAULT}").value == "6"


def rerun(target) -> AppTest:
    """Run the app (or the app of a widget just set) and check that no exception escaped."""
    app = target.run()
    assert not app.exception, app.exception
    return app


def saved(app: AppTest):
    return app.session_state[app_state.CONFIG]


def metric(app: AppTest, label: str) -> int:
    return int(next(m.value for m in app.metric if m.label == label).replace(",", ""))


def layer_table(app: AppTest):
    """The full layer table (in the expander), as the page shows it."""
    table = next(frame.value for frame in app.dataframe if "from N" in frame.value.columns
                 and len(frame.value) > 50)
    return table.rename(columns={"trains in phase 2": "trainable"}).assign(
        top_n=[None if rank == "–" else int(rank) for rank in table["from N"]],
        block=[None if block == "–" else block for block in table["block"]])


def test_the_backbone_table_lists_every_registry_entry_and_which_work_offline(app):
    table = app.dataframe[0].value
    specs = list_backbones()
    assert list(table["backbone"]) == [spec.name for spec in specs]
    assert list(table["parameters"]) == [f"{spec.params / 1e6:,.1f} M" for spec in specs]
    offline = table.set_index("backbone")["weights"]
    assert offline[DEFAULT] == "offline" and offline["resnet50"] == "download"
    assert list(table[table[""] == "★"]["backbone"]) == [DEFAULT]
    assert "None" not in table.to_string() and "top_n" not in table.columns


def test_choosing_a_backbone_saves_it_with_its_default_input_size(app):
    rerun(app.selectbox(key="model_backbone").select("efficientnet_lite1"))
    assert saved(app).backbone == "efficientnet_lite1"
    assert saved(app).image_size is None
    assert app.number_input(key="model_image_size_efficientnet_lite1").value == 240


def test_head_options_are_saved(app):
    app.number_input(key=f"model_image_size_{DEFAULT}").set_value(160)
    app.selectbox(key="model_pooling").select("max")
    app.number_input(key="model_dense_units").set_value(128)
    rerun(app.slider(key="model_dropout").set_value(0.5))
    settings = saved(app)
    assert (settings.image_size, settings.pooling, settings.dense_units, settings.dropout) == (160, "max", 128, 0.5)
    assert metric(app, "Phase 1 trains (head only)") == 1280 * 128 + 128 + 128 * 3 + 3


def test_moving_the_freezing_slider_changes_the_trainable_total_and_the_saved_setting(app):
    slider = app.slider(key=f"model_unfreeze_top_{DEFAULT}")
    assert slider.value == slider.max and saved(app).unfreeze == "all"
    everything = metric(app, "Phase 2 trains")
    rerun(slider.set_value(10))
    assert saved(app).unfreeze == "10"
    ten = metric(app, "Phase 2 trains")
    assert metric(app, "Phase 1 trains (head only)") < ten < everything
    table = layer_table(app)
    assert table["trainable"].sum() == 5  # the top 10 weighted layers, BatchNorm kept frozen
    assert set(table[table["trainable"]]["top_n"]) <= set(range(1, 11))
    rerun(app.slider(key=f"model_unfreeze_top_{DEFAULT}").set_value(0))
    assert saved(app).unfreeze == "0"
    assert metric(app, "Phase 2 trains") == metric(app, "Phase 1 trains (head only)")


def test_training_batchnorm_too_adds_its_parameters(app):
    rerun(app.slider(key=f"model_unfreeze_top_{DEFAULT}").set_value(10))
    without = metric(app, "Phase 2 trains")
    rerun(app.checkbox(key="model_train_batchnorm").check())
    assert saved(app).train_batchnorm is True
    assert metric(app, "Phase 2 trains") > without
    assert layer_table(app)["trainable"].sum() == 10


def test_unfreezing_by_block_saves_block_n_and_trains_only_that_block_on(app):
    everything = metric(app, "Phase 2 trains")
    rerun(app.radio(key=f"model_unfreeze_mode_{DEFAULT}").set_value("by block"))
    rerun(app.select_slider(key=f"model_unfreeze_block_{DEFAULT}").set_value("6"))
    assert saved(app).unfreeze == "block:6"
    trained = layer_table(app).query("trainable")
    assert set(trained["block"].dropna()) == {"6", "7"}
    assert metric(app, "Phase 1 trains (head only)") < metric(app, "Phase 2 trains") < everything


def test_head_widgets_take_their_range_and_help_from_the_config_fields(app):
    for widget, name in ((app.number_input(key="model_dense_units"), "dense_units"),
                         (app.slider(key="model_dropout"), "dropout")):
        assert (widget.min, widget.max) == TrainConfig.bounds(name), name
        assert widget.help == TrainConfig.help(name) != "", name
    assert app.number_input(key=f"model_image_size_{DEFAULT}").max == TrainConfig.bounds("image_size")[1]


@pytest.mark.slow
def test_switching_to_a_backbone_without_that_block_resets_unfreeze_to_the_default_instead_of_refusing(app):
    rerun(app.radio(key=f"model_unfreeze_mode_{DEFAULT}").set_value("by block"))
    rerun(app.select_slider(key=f"model_unfreeze_block_{DEFAULT}").set_value("6"))
    rerun(app.selectbox(key="model_backbone").select("inception_v3"))  # it has no named blocks
    default_there = TrainConfig(backbone="inception_v3").unfreeze  # the default, resolved for that backbone
    assert default_there != "all"
    assert (saved(app).backbone, saved(app).unfreeze) == ("inception_v3", default_there)
    assert not app.error


def test_a_backbone_without_named_blocks_unfreezes_by_layers_only(app):
    rerun(app.selectbox(key="model_backbone").select("inception_v3"))
    mode = app.radio(key="model_unfreeze_mode_inception_v3")
    assert mode.disabled and mode.value == "by layers"
    assert app.slider(key="model_unfreeze_top_inception_v3").max > 0


def test_the_base_names_five_imagenet_classes_for_one_of_the_users_images(app):
    rerun(app.selectbox(key="model_sees_image").select("cat/0.png"))
    top5 = app.dataframe[-1].value
    assert len(top5) == 5
    assert top5["prob"].is_monotonic_decreasing and 0 < top5["prob"].sum() <= 1
    assert [image.captions for image in app.get("image")] == [["as the base gets it (224 px)"]]


def test_a_backbone_that_needs_a_download_is_flagged_and_offers_no_imagenet_preview(app):
    rerun(app.selectbox(key="model_backbone").select("mobilenet_v2"))
    assert any("needs internet access" in warning.value and DEFAULT in warning.value for warning in app.warning)
    assert not [box for box in app.selectbox if box.key == "model_sees_image"]
    assert any("has to be downloaded" in info.value for info in app.info)


def weights_file(tmp_path, backbone: str) -> bytes:
    path = tmp_path / f"{backbone}.weights.h5"
    create_backbone(backbone, weights="none", input_size=96).save_weights(path)
    return path.read_bytes()


@pytest.mark.slow
def test_a_fitting_weights_file_is_kept_and_becomes_the_starting_weights(app, tmp_path):
    rerun(app.radio(key="model_weights_source").set_value("file"))
    assert saved(app).weights == "imagenet"
    content = weights_file(tmp_path, DEFAULT)
    rerun(app.file_uploader(key="model_weights_upload").set_value(("my lite0.weights.h5", content, "")))
    (kept,) = paths.home_dir().joinpath("weights").glob("my_lite0-*.weights.h5")
    assert saved(app).weights == str(kept) and kept.read_bytes() == content
    assert not app.error and len(app.success) == 1


@pytest.mark.slow
def test_another_sessions_weights_file_of_the_same_name_does_not_replace_this_ones(app, pets, tmp_path):
    rerun(app.radio(key="model_weights_source").set_value("file"))
    mine = weights_file(tmp_path, DEFAULT)
    rerun(app.file_uploader(key="model_weights_upload").set_value(("base.weights.h5", mine, "")))
    other = model_page(pets)
    rerun(other.radio(key="model_weights_source").set_value("file"))
    (tmp_path / "other").mkdir()
    theirs = weights_file(tmp_path / "other", DEFAULT)  # another random start: other bytes, same name
    assert theirs != mine
    rerun(other.file_uploader(key="model_weights_upload").set_value(("base.weights.h5", theirs, "")))
    assert saved(app).weights != saved(other).weights
    assert Path(saved(app).weights).read_bytes() == mine and Path(saved(other).weights).read_bytes() == theirs


@pytest.mark.slow
def test_a_weights_file_of_another_backbone_gets_one_clear_error_line(app, tmp_path):
    rerun(app.radio(key="model_weights_source").set_value("file"))
    content = weights_file(tmp_path, "mobilenet_v3_small")
    rerun(app.file_uploader(key="model_weights_upload").set_value(("small.weights.h5", content, "")))
    assert len(app.error) == 1
    assert f"does not fit {DEFAULT}" in app.error[0].value and "Expected but not in the file" in app.error[0].value


def test_no_weights_means_random_start(app):
    rerun(app.radio(key="model_weights_source").set_value("none"))
    assert saved(app).weights == "none"


@pytest.mark.hostile
def test_a_weights_file_over_the_size_limit_is_refused_before_it_is_written(app, tmp_path, monkeypatch):
    rerun(app.radio(key="model_weights_source").set_value("file"))
    content = weights_file(tmp_path, DEFAULT)
    monkeypatch.setenv("TLTOOLS_MAX_MODEL_BYTES", "1000")
    rerun(app.file_uploader(key="model_weights_upload").set_value(("huge.weights.h5", content, "")))
    assert len(app.error) == 1
    assert "the uploaded weights file 'huge.weights.h5' is" in app.error[0].value
    assert "over the 1,000 bytes limit" in app.error[0].value and "TLTOOLS_MAX_MODEL_BYTES" in app.error[0].value
    assert not (paths.home_dir() / "weights" / "huge.weights.h5").exists()
    assert saved(app).weights == "imagenet"


@pytest.mark.slow
def test_the_summary_says_which_unfrozen_layers_are_batchnorm_kept_frozen_and_lists_those_that_train(app):
    rerun(app.slider(key=f"model_unfreeze_top_{DEFAULT}").set_value(30))
    assert any("Phase 2 unfreezes 30 weighted base layers: 15 train, and the other 15 are BatchNorm layers, kept "
               "frozen on purpose" in caption.value for caption in app.caption)
    trained = next(frame.value for frame in app.dataframe if "from N" in frame.value.columns)
    assert len(trained) == 15 and trained["trains in phase 2"].all()
    ranks = [int(rank) for rank in trained["from N"]]
    assert ranks == sorted(ranks) and ranks[0] <= 2  # top first: the change is at the top of a short table


@pytest.mark.slow
def test_switching_between_layers_and_blocks_keeps_an_equivalent_setting(app):
    rerun(app.slider(key=f"model_unfreeze_top_{DEFAULT}").set_value(30))
    rerun(app.radio(key=f"model_unfreeze_mode_{DEFAULT}").set_value("by block"))
    block = saved(app).unfreeze
    assert block.startswith("block:") and app.select_slider(key=f"model_unfreeze_block_{DEFAULT}").value == block[6:]
    rerun(app.radio(key=f"model_unfreeze_mode_{DEFAULT}").set_value("by layers"))
    n = int(saved(app).unfreeze)
    assert 30 <= n < 98 and app.slider(key=f"model_unfreeze_top_{DEFAULT}").value == n
    rerun(app.radio(key=f"model_unfreeze_mode_{DEFAULT}").set_value("by block"))
    assert saved(app).unfreeze == block  # back and forth lands where it started


@pytest.mark.slow
def test_a_reload_keeps_the_model_settings(app):
    rerun(app.selectbox(key="model_pooling").select("max"))
    rerun(app.slider(key=f"model_unfreeze_top_{DEFAULT}").set_value(12))
    reloaded = AppTest.from_file(APP, default_timeout=TIMEOUT)
    reloaded.query_params["session"] = app.query_params["session"]
    rerun(reloaded)
    rerun(reloaded.switch_page("pages/model.py"))
    assert (saved(reloaded).pooling, saved(reloaded).unfreeze) == ("max", "12")
    assert reloaded.slider(key=f"model_unfreeze_top_{DEFAULT}").value == 12
    assert reloaded.selectbox(key="model_pooling").value == "max"
