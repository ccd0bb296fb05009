"""The Dataset page, driven through Streamlit's AppTest: upload a zip, read the report, change the split."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.factories import class_images, image_bytes, zip_bytes
from tltools.checked import bounds, field_info
from tltools.data.augment import AugmentOptions
from tltools.training import TrainConfig

TIMEOUT = 60
APP = str(Path(__file__).resolve().parents[2] / "app.py")


def open_app() -> AppTest:
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.run()
    app.switch_page("pages/dataset.py").run()
    assert not app.exception, app.exception
    return app


def upload(app: AppTest, name: str, content: bytes) -> AppTest:
    app.file_uploader(key="dataset_upload").set_value((name, content, "application/zip"))
    app.run()
    assert not app.exception, app.exception
    return app


def metric(app: AppTest, label: str) -> str:
    return next(m.value for m in app.metric if m.label == label)


def test_uploading_a_class_folder_zip_shows_layout_counts_and_skips():
    files = class_images(("cat", "dog"), per_class=5, prefix="pets/")
    files["pets/dog/notes.txt"] = "not an image"
    files["__MACOSX/pets/._cat"] = b"junk"
    app = upload(open_app(), "pets.zip", zip_bytes(files))
    assert any(caption.value == "Layout: folder-per-class" for caption in app.caption)
    assert metric(app, "Images") == "10"
    assert metric(app, "Classes") == "2"
    assert metric(app, "Skipped files") == "2"
    assert app.session_state["dataset"].classes == ["cat", "dog"]
    assert len(app.get("plotly_chart")) == 1


def test_a_bad_upload_shows_one_error_line_not_a_traceback():
    app = upload(open_app(), "broken.zip", b"this is not a zip archive")
    assert not app.exception
    assert len(app.error) == 1
    assert "not a readable zip archive" in app.error[0].value
    assert app.session_state["dataset"] is None


def test_single_class_upload_explains_that_two_classes_are_needed():
    app = upload(open_app(), "one.zip", zip_bytes(class_images(("cat",), per_class=3)))
    assert "at least 2 classes" in app.error[0].value


def test_moving_the_validation_slider_resplits_without_reupload():
    app = upload(open_app(), "pets.zip", zip_bytes(class_images(("cat", "dog"), per_class=10)))
    before = app.session_state["dataset"].report()["splits"]["val"]
    app.slider(key="dataset_val_fraction").set_value(0.5).run()
    after = app.session_state["dataset"].report()["splits"]["val"]
    assert sum(before.values()) == 4 and sum(after.values()) == 10


def test_the_split_lives_in_the_config_and_the_dataset_shown_is_split_from_it():
    app = upload(open_app(), "pets.zip", zip_bytes(class_images(("cat", "dog"), per_class=10)))
    app.slider(key="dataset_val_fraction").set_value(0.5)
    app.number_input(key="dataset_seed").set_value(7).run()
    config, dataset = app.session_state["train_config"], app.session_state["dataset"]
    assert (config.val_fraction, config.seed) == (0.5, 7)
    assert dataset.split_settings == config.split_settings
    # Settings changed elsewhere (a config loaded for another run, say) re-split the dataset shown here.
    app.switch_page("pages/train.py").run()
    app.session_state["train_config"] = config.replace(val_fraction=0.2, seed=3)
    app.switch_page("pages/dataset.py").run()
    assert not app.exception, app.exception
    assert sum(app.session_state["dataset"].class_counts("val").values()) == 4
    assert app.slider(key="dataset_val_fraction").value == 0.2


def test_split_and_augmentation_widgets_take_their_range_and_help_from_the_settings_fields():
    app = upload(open_app(), "pets.zip", zip_bytes(class_images(("cat", "dog"), per_class=4)))
    for key, name in (("dataset_val_fraction", "val_fraction"), ("dataset_test_fraction", "test_fraction")):
        slider = app.slider(key=key)
        assert (slider.min, slider.max) == TrainConfig.bounds(name) and slider.help == TrainConfig.help(name)
    for name in ("rotation", "zoom", "contrast", "translation"):
        slider = app.slider(key=f"dataset_aug_{name}")
        assert (slider.min, slider.max) == bounds(AugmentOptions, name), name
        assert slider.help == field_info(AugmentOptions, name).description, name


def test_warnings_from_the_report_are_shown():
    files = class_images(("cat", "dog"), per_class=2)
    files.update({f"cat/more{n}.png": image_bytes(seed=500 + n) for n in range(8)})
    app = upload(open_app(), "imbalanced.zip", zip_bytes(files))
    assert any("imbalanced" in warning.value for warning in app.warning)


def test_an_earlier_upload_can_be_loaded_again_in_a_new_session():
    content = zip_bytes(class_images(("red", "blue"), per_class=3))
    upload(open_app(), "colours.zip", content)
    app = open_app()
    app.selectbox(key="dataset_earlier").select_index(0)
    app.button(key="dataset_load_earlier").click().run()
    assert app.session_state["dataset"].classes == ["blue", "red"]
    # Loaded from its extracted folder, it is still named as the user uploaded it, never by a server path.
    assert "/" in app.session_state["dataset"].source and app.subheader[0].value == "colours.zip"


def test_a_failed_upload_after_a_good_one_shows_only_the_error_and_which_dataset_is_still_loaded():
    app = upload(open_app(), "pets.zip", zip_bytes(class_images(("cat", "dog"), per_class=5)))
    assert metric(app, "Images") == "10"
    upload(app, "broken.zip", b"this is not a zip archive")
    assert [error.value.startswith("broken.zip: ") for error in app.error] == [True]
    assert not app.metric and not app.get("plotly_chart")  # no report of the old dataset under the bad file
    assert any("Still loaded: **pets.zip** (10 images, 2 classes)" in info.value for info in app.info)
    app.run()  # a rerun neither reads the bad file again nor brings the old report back
    assert len(app.error) == 1 and not app.metric
    assert app.session_state["dataset"].source == "pets.zip"


def test_a_split_given_by_the_data_is_shown_instead_of_a_slider_with_counts_per_class_and_split():
    files = class_images(("cat", "dog"), per_class=6, prefix="train/")
    files.update(class_images(("cat", "dog"), per_class=2, prefix="test/"))
    app = upload(open_app(), "given.zip", zip_bytes(files))
    assert not any(slider.key == "dataset_test_fraction" for slider in app.slider)
    assert any(text.value.startswith("Test: the data's own split, 4 images (25% of all)") for text in app.markdown)
    assert app.slider(key="dataset_val_fraction").label == "Validation share of the training images"
    table = app.dataframe[0].value
    assert list(table.columns) == ["class", "train", "val", "test", "total"]
    assert table.set_index("class").loc["cat"].to_dict() == {"train": 5, "val": 1, "test": 2, "total": 8}


def test_skipped_files_get_a_visible_banner_with_how_many_and_why():
    files = class_images(("cat", "dog"), per_class=3)
    files["dog/notes.txt"] = "not an image"
    app = upload(open_app(), "pets.zip", zip_bytes(files))
    banner = next(warning.value for warning in app.warning if "left out" in warning.value)
    assert banner.startswith("1 file(s) were left out: 1 × ")


def test_the_augmentation_preview_shows_the_original_beside_its_variants():
    app = upload(open_app(), "pets.zip", zip_bytes(class_images(("cat", "dog"), per_class=3)))
    app.slider(key="dataset_aug_rotation").set_value(0.2).run()
    captions = app.get("image")[-1].proto.imgs
    assert [image.caption for image in captions][:2] == ["original", "variant 1"]
    assert [link.proto.label for link in app.get("page_link")] == ["Next: choose a model"]


def test_a_reload_with_the_sessions_url_keeps_the_dataset_and_its_split():
    app = upload(open_app(), "pets.zip", zip_bytes(class_images(("cat", "dog"), per_class=10)))
    app.slider(key="dataset_val_fraction").set_value(0.5).run()
    token = app.query_params["session"]
    assert token == app.session_state["session_id"]
    reloaded = AppTest.from_file(APP, default_timeout=TIMEOUT)
    reloaded.query_params["session"] = token
    reloaded.run()
    reloaded.switch_page("pages/dataset.py").run()
    assert reloaded.session_state["dataset"].source == "pets.zip"
    assert reloaded.session_state["train_config"].val_fraction == 0.5
    assert reloaded.slider(key="dataset_val_fraction").value == 0.5
    stranger = AppTest.from_file(APP, default_timeout=TIMEOUT)  # another browser session: nothing of it
    stranger.run()
    assert stranger.session_state["dataset"] is None and stranger.query_params["session"] != token
