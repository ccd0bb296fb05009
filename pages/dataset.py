"""Dataset page: upload a zip (or reuse an earlier upload), see what tltools makes of it, adjust the split."""

import pandas as pd
import streamlit as st

from tltools import app_state
from tltools.charts.dataset import class_counts_figure
from tltools.checked import bounds, choices_of, field_info
from tltools.data import load_dataset, load_image
from tltools.data.augment import AugmentOptions, augmentation_preview
from tltools.data.uploads import list_uploaded_datasets
from tltools.errors import TLToolsError
from tltools.streamlit_bridge import config, require_app, show_error, update_config
from tltools.training import TrainConfig

require_app()

st.title("Dataset")
st.write(
    "Upload a **.zip** of images: one folder per class (`cat/1.jpg`), `train/` `val/` `test/` folders "
    "with class folders inside, or images with a `.csv` of labels."
)


def load(source, origin: str) -> None:
    """Load a dataset with a progress bar and keep it in the session."""
    bar = st.progress(0.0, text="Reading archive…")

    def progress(stage: str, done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"{stage.capitalize()}… {done}/{total}")

    try:
        st.session_state[app_state.DATASET] = load_dataset(source, split=config(), on_progress=progress)
        st.session_state[app_state.DATASET_ORIGIN] = origin
    except TLToolsError as error:
        show_error(error)
    finally:
        bar.empty()


upload_tab, earlier_tab = st.tabs(["Upload a zip", "Uploaded earlier"])
with upload_tab:
    uploaded = st.file_uploader("Image archive", type=["zip"], key="dataset_upload")
    if uploaded is not None and st.session_state[app_state.DATASET_ORIGIN] != uploaded.file_id:
        load(uploaded, uploaded.file_id)
with earlier_tab:
    earlier = list_uploaded_datasets()
    if not earlier:
        st.caption("No earlier uploads yet.")
    else:
        labels = {f"{item.source} ({item.extracted_at:%Y-%m-%d %H:%M})": item for item in earlier}
        choice = st.selectbox("Earlier upload", list(labels), key="dataset_earlier")
        if st.button("Load", key="dataset_load_earlier"):
            load(labels[choice].folder, str(labels[choice].folder))

dataset = st.session_state[app_state.DATASET]
if dataset is None:
    st.stop()

with st.expander("Split", expanded=False):
    # The split settings live in the session's TrainConfig; the dataset shown is split from them.
    given = dataset.given_splits
    st.caption(f"Splits given by the data: {', '.join(given) or 'none'}; the others are drawn per class.")
    settings = config()
    val = st.slider("Validation share", *TrainConfig.bounds("val_fraction"), settings.val_fraction, 0.05,
                    disabled="val" in given, help=TrainConfig.help("val_fraction"), key="dataset_val_fraction")
    test = st.slider("Test share", *TrainConfig.bounds("test_fraction"), settings.test_fraction, 0.05,
                     disabled="test" in given, help=TrainConfig.help("test_fraction"), key="dataset_test_fraction")
    seed = st.number_input("Seed", *TrainConfig.bounds("seed"), settings.seed, help=TrainConfig.help("seed"),
                           key="dataset_seed")
    if (val, test, seed) != (settings.val_fraction, settings.test_fraction, settings.seed):
        try:
            update_config(val_fraction=val, test_fraction=test, seed=int(seed))
        except TLToolsError as error:
            show_error(error)
    dataset = dataset.with_splits(config())  # the same dataset when its split already is the config's
    st.session_state[app_state.DATASET] = dataset

report = dataset.report()
columns = st.columns([2, 1, 1, 1])
columns[0].metric("Layout", report["layout"])
columns[1].metric("Images", report["num_images"])
columns[2].metric("Classes", report["num_classes"])
columns[3].metric("Skipped files", len(report["skipped"]))
for warning in report["warnings"]:
    st.warning(warning, icon=":material/warning:")

st.plotly_chart(class_counts_figure(report), key="dataset_counts")

st.subheader("Examples per class")
per_class = 6
for name in dataset.classes:
    rows = dataset.items[dataset.items["label"] == name].head(per_class)
    st.caption(f"{name}: {report['classes'][name]} images")
    st.image([str(dataset.root / path) for path in rows["relpath"]], width=96)

if report["skipped"]:
    with st.expander(f"Skipped files ({len(report['skipped'])})"):
        st.dataframe(pd.DataFrame(report["skipped"]), hide_index=True, use_container_width=True)

st.subheader("Augmentation")
st.caption("Random changes to training images only, applied per batch. Off by default: with the base frozen "
           "and no augmentation, training is fastest.")
augment = config().augment
flips = [None, *(mode for mode in choices_of(field_info(AugmentOptions, "flip").annotation) if mode)]
columns = st.columns(5)
flip = columns[0].selectbox("Flip", flips, flips.index(augment.flip), format_func=lambda mode: mode or "off",
                            help=field_info(AugmentOptions, "flip").description, key="dataset_aug_flip")


def strength(column, label: str, name: str) -> float:
    """A slider for one augmentation strength, with the range and help its AugmentOptions field declares."""
    return column.slider(label, *bounds(AugmentOptions, name), getattr(augment, name), 0.05,
                         help=field_info(AugmentOptions, name).description, key=f"dataset_aug_{name}")


rotation = strength(columns[1], "Rotation", "rotation")
zoom = strength(columns[2], "Zoom", "zoom")
contrast = strength(columns[3], "Contrast", "contrast")
translation = strength(columns[4], "Shift", "translation")
options = AugmentOptions(flip=flip, rotation=rotation, zoom=zoom, contrast=contrast, translation=translation)
if options != augment:
    update_config(augment=options)
if options.enabled:
    first = dataset.root / dataset.split("train")["relpath"].iloc[0]
    variants = augmentation_preview(load_image(first, 160), options, count=8, seed=int(config().seed))
    st.image(variants, width=120, caption=[f"variant {n + 1}" for n in range(len(variants))])
