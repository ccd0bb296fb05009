"""Dataset page: upload a zip (or reuse an earlier upload), see what tltools makes of it, adjust the split."""

import collections

import pandas as pd
import streamlit as st

from tltools import app_state
from tltools.charts.dataset import class_counts_figure, split_counts_table
from tltools.checked import bounds, choices_of, field_info
from tltools.data import load_dataset, load_image
from tltools.data.augment import AugmentOptions, augmentation_preview
from tltools.data.uploads import list_uploaded_datasets
from tltools.errors import TLToolsError
from tltools.streamlit_bridge import config, dataset_name, require_app, set_dataset, show_error, update_config
from tltools.training import TrainConfig

require_app()

st.title("Dataset")
st.write(
    "Upload a **.zip** of images: one folder per class (`cat/1.jpg`), `train/` `val/` `test/` folders "
    "with class folders inside, or images with a `.csv` of labels."
)


FAILED_UPLOAD = app_state.FAILED_UPLOAD
def load(source, origin: str) -> bool:
    """Load a dataset with a progress bar and make it the session's; return False (error shown) when it fails."""
    bar = st.progress(0.0, text="Reading archive…")

    def progress(stage: str, done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"{stage.capitalize()}… {done}/{total}")

    try:
        set_dataset(load_dataset(source, split=config(), on_progress=progress), origin)
    except TLToolsError as error:
        st.session_state[FAILED_UPLOAD] = (origin, str(error))
        return False
    else:
        st.session_state[FAILED_UPLOAD] = None
        return True
    finally:
        bar.empty()


def show_failed_upload(name: str, message: str) -> None:
    """Show only the failed upload's error and, apart from it, which dataset is still loaded; end the page."""
    st.error(f"{name}: {message}", icon=":material/error:")
    loaded = st.session_state[app_state.DATASET]
    st.info("No dataset is loaded yet." if loaded is None else
            f"Still loaded: **{dataset_name(loaded)}** ({len(loaded.items)} images, {len(loaded.classes)} classes). "
            "Remove the file above to see its report again, or upload another archive.",
            icon=":material/info:")
    st.stop()


upload_tab, earlier_tab = st.tabs(["Upload a zip", "Uploaded earlier"])
with upload_tab:
    uploaded = st.file_uploader("Image archive", type=["zip"], key="dataset_upload")
    failed = st.session_state[FAILED_UPLOAD]
    if uploaded is not None and st.session_state[app_state.DATASET_ORIGIN] != uploaded.file_id:
        if failed is None or failed[0] != uploaded.file_id:  # a failed file is not read again on every rerun
            load(uploaded, uploaded.file_id)
        failed = st.session_state[FAILED_UPLOAD]
        if failed is not None and failed[0] == uploaded.file_id:
            show_failed_upload(uploaded.name, failed[1])
with earlier_tab:
    earlier = list_uploaded_datasets()
    if not earlier:
        st.caption("No earlier uploads yet.")
    else:
        labels = {f"{item.source} ({item.extracted_at:%Y-%m-%d %H:%M})": item for item in earlier}
        choice = st.selectbox("Earlier upload", list(labels), key="dataset_earlier")
        folder = labels[choice].folder
        if st.button("Load", key="dataset_load_earlier") and not load(folder, str(folder)):
            show_failed_upload(labels[choice].source, st.session_state[FAILED_UPLOAD][1])

dataset = st.session_state[app_state.DATASET]
if dataset is None:
    st.stop()

st.subheader(dataset_name(dataset))
with st.expander("Split", expanded=False):
    # The split settings live in the session's TrainConfig; the dataset shown is split from them.
    given = dataset.given_splits
    settings = config()
    if given:
        st.caption(f"The data gives its own {' and '.join(given)} split{'s' if len(given) > 1 else ''}; "
                   "those images stay where the data puts them.")
    if "val" in given:
        val = settings.val_fraction
        st.write(f"Validation: the data's own split, {len(dataset.split('val'))} images.")
    else:
        of = "the training images" if "test" in given else "each class's images"
        val = st.slider(f"Validation share of {of}", *TrainConfig.bounds("val_fraction"), settings.val_fraction,
                        0.05, help=TrainConfig.help("val_fraction"), key="dataset_val_fraction")
    if "test" in given:
        test = settings.test_fraction
        share = len(dataset.split("test")) / max(len(dataset.items), 1)
        st.write(f"Test: the data's own split, {len(dataset.split('test'))} images ({share:.0%} of all).")
    else:
        test = st.slider("Test share of each class's images", *TrainConfig.bounds("test_fraction"),
                         settings.test_fraction, 0.05, help=TrainConfig.help("test_fraction"),
                         key="dataset_test_fraction")
    seed = st.number_input("Seed", *TrainConfig.bounds("seed"), settings.seed, help=TrainConfig.help("seed"),
                           key="dataset_seed")
    if (val, test, seed) != (settings.val_fraction, settings.test_fraction, settings.seed):
        try:
            update_config(val_fraction=val, test_fraction=test, seed=int(seed))
        except TLToolsError as error:
            show_error(error)
    split = dataset.with_splits(config())  # the same dataset when its split already is the config's
    if split is not dataset:
        set_dataset(split, st.session_state[app_state.DATASET_ORIGIN])
    dataset = split

report = dataset.report()
st.caption(f"Layout: {report['layout']}")
columns = st.columns(3)
columns[0].metric("Images", report["num_images"])
columns[1].metric("Classes", report["num_classes"])
columns[2].metric("Skipped files", len(report["skipped"]))
if report["skipped"]:
    reasons = collections.Counter(item["reason"] for item in report["skipped"])
    st.warning(f"{len(report['skipped'])} file(s) were left out: "
               + "; ".join(f"{count} × {reason}" for reason, count in reasons.most_common(3))
               + ("; …" if len(reasons) > 3 else "") + ". The list is below the examples.",
               icon=":material/warning:")
for warning in report["warnings"]:
    st.warning(warning, icon=":material/warning:")

counts = split_counts_table(report)
st.plotly_chart(class_counts_figure(report), key="dataset_counts")
st.dataframe(counts, hide_index=True, width="stretch", height="content",
             key="dataset_split_table")

st.subheader("Examples per class")
per_class = 6
for name in dataset.classes:
    rows = dataset.items[dataset.items["label"] == name].head(per_class)
    st.caption(f"{name}: {report['classes'][name]} images")
    st.image([str(dataset.root / path) for path in rows["relpath"]], width=96)

if report["skipped"]:
    with st.expander(f"Skipped files ({len(report['skipped'])})"):
        st.dataframe(pd.DataFrame(report["skipped"]), hide_index=True, width="stretch")

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
    original = load_image(first, 160)
    variants = augmentation_preview(original, options, count=7, seed=int(config().seed))
    st.image([original, *variants], width=120,
             caption=["original", *(f"variant {n + 1}" for n in range(len(variants)))])

st.page_link("pages/model.py", label="Next: choose a model", icon=":material/arrow_forward:")
