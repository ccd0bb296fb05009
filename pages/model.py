"""Model page: pick a backbone and its starting weights, shape the head, choose what fine-tuning unfreezes."""

import numpy as np
import pandas as pd
import streamlit as st

from tltools import app_state
from tltools.backbones import get_backbone, list_backbones
from tltools.backbones.imagenet import decode_top_k
from tltools.data import load_image
from tltools.data.images import IMAGE_EXTENSIONS
from tltools.errors import TLToolsError
from tltools.model import block_names, parameter_totals
from tltools.model.freezing import layer_table, preview_unfreeze, weighted_layers
from tltools.model.presentation import (
    backbone_table,
    equivalent_unfreeze,
    readable_layers,
    unfreeze_summary,
)
from tltools.streamlit_bridge import (
    check_weights_file,
    config,
    imagenet_classifier,
    preview_model,
    require_app,
    save_uploaded_weights,
    show_error,
    update_config,
)
from tltools.training import TrainConfig
from tltools.training.config import DEFAULT_UNFREEZE, POOLINGS, unfreeze_problem

require_app()

WEIGHTS = {"imagenet": "ImageNet (pretrained)", "file": "My own weights file", "none": "None (random start)"}
OFFLINE = ", ".join(spec.name for spec in list_backbones() if spec.offline)

st.title("Model")
st.write("A pretrained **backbone** turns images into features; a small new **head** learns your classes from them.")


def save(**changes) -> None:
    """Store changed settings in the session's config, showing a refused value as one error line."""
    changes = {name: value for name, value in changes.items() if getattr(config(), name) != value}
    if changes:
        try:
            update_config(**changes)
        except TLToolsError as error:
            show_error(error)


st.subheader("Backbone")
specs = list_backbones()
RECOMMENDED = TrainConfig.model_fields["backbone"].default
st.dataframe(backbone_table(specs, recommended=RECOMMENDED), hide_index=True, width="stretch", height=260,
             key="model_backbone_table")
st.caption(f"★ {RECOMMENDED} is the recommended start: small, fast on a CPU, accurate, and its ImageNet weights "
           "come with tltools. Backbones marked “download” fetch their ImageNet weights from the internet on first "
           "use.")
names = [spec.name for spec in specs]
backbone = st.selectbox("Backbone", names, index=names.index(config().backbone), key="model_backbone")
if backbone != config().backbone:  # an unfreeze setting the new backbone lacks (a block) goes back to the default
    save(backbone=backbone, image_size=None,
         unfreeze=DEFAULT_UNFREEZE if unfreeze_problem(backbone, config().unfreeze) else config().unfreeze)
spec = get_backbone(backbone)

current = config().weights if config().weights in WEIGHTS else "file"
source = st.radio("Starting weights", list(WEIGHTS), index=list(WEIGHTS).index(current), format_func=WEIGHTS.get,
                  horizontal=True, key="model_weights_source")
if source == "file":
    uploaded = st.file_uploader("Weights file saved with base.save_weights (.weights.h5 or .h5)", type=["h5"],
                                key="model_weights_upload")
    if uploaded is not None:
        try:
            save(weights=str(save_uploaded_weights(uploaded)))
        except TLToolsError as error:
            show_error(error)
    if config().weights in WEIGHTS:
        st.info(f"Upload a weights file of a {spec.name} base; until then the base starts from "
                f"{WEIGHTS[config().weights].lower()}.", icon=":material/upload_file:")
    else:
        try:
            check_weights_file(spec.name, config().weights, config().image_size)
            st.success(f"The base starts from `{config().weights}`.", icon=":material/check_circle:")
        except TLToolsError as error:
            show_error(error)
else:
    save(weights=source)
if source == "imagenet" and not spec.offline:
    st.warning(f"The ImageNet weights of {spec.name} are not bundled: Keras downloads them on first use, which needs "
               f"internet access. Without it, training stops with an error; pick {OFFLINE} (they work offline), "
               "your own weights file, or no weights.", icon=":material/cloud_off:")

st.subheader("Input and head")
size_column, pooling_column, dense_column, dropout_column = st.columns(4)
# Ranges and help come from TrainConfig's fields (the backbone sets the smallest input size).
size = size_column.number_input("Input size (pixels)", spec.min_size, TrainConfig.bounds("image_size")[1],
                                max(config().image_size or spec.default_size, spec.min_size),
                                help=f"{spec.name} was trained at {spec.default_size}; larger is slower.",
                                key=f"model_image_size_{spec.name}")
pooling = pooling_column.selectbox("Pooling", POOLINGS, index=POOLINGS.index(config().pooling),
                                   help=TrainConfig.help("pooling"), key="model_pooling")
dense = dense_column.number_input("Extra dense units (0: none)", *TrainConfig.bounds("dense_units"),
                                  config().dense_units, step=64, help=TrainConfig.help("dense_units"),
                                  key="model_dense_units")
dropout = dropout_column.slider("Dropout", *TrainConfig.bounds("dropout"), float(config().dropout), 0.05,
                                help=TrainConfig.help("dropout"), key="model_dropout")
save(image_size=None if size == spec.default_size else int(size), pooling=pooling, dense_units=int(dense),
     dropout=dropout)


def top_n(setting: str, largest: int) -> int:
    """The slider position of a saved unfreeze setting (a block setting starts at the top)."""
    return min(int(setting), largest) if setting.isdigit() else 0 if setting == "none" else largest


def switch_unfreeze_mode(mode_key: str, backbone: str, classes: int) -> None:
    """Radio callback: carry the unfreeze setting over to the other mode as the equivalent value (N ↔ block)."""
    settings = config()
    model = preview_model(backbone, classes, settings.image_size, settings.pooling, settings.dense_units,
                          settings.dropout)
    converted = equivalent_unfreeze(layer_table(model), settings.unfreeze,
                                    to_blocks=st.session_state[mode_key] == "by block")
    for key in (f"model_unfreeze_block_{backbone}", f"model_unfreeze_top_{backbone}"):
        st.session_state.pop(key, None)  # re-created at the converted value
    save(unfreeze=converted)


def freezing(settings) -> None:
    """Choose what phase 2 unfreezes and show, at once, which layers and how many parameters would train."""
    st.subheader("Fine-tuning: what to unfreeze")
    st.caption("Phase 1 always trains only the new head on a frozen base. Phase 2 (fine-tuning epochs on the Train "
               "page) also trains the base layers chosen here, with a lower learning rate.")
    dataset = st.session_state[app_state.DATASET]
    classes = len(dataset.classes) if dataset is not None else 2
    try:
        model = preview_model(spec.name, classes, settings.image_size, settings.pooling, settings.dense_units,
                              settings.dropout)
    except TLToolsError as error:
        show_error(error)
        return
    largest, blocks = len(weighted_layers(model)), block_names(spec)
    by_block = bool(blocks) and settings.unfreeze.startswith("block:")
    mode_key = f"model_unfreeze_mode_{spec.name}"
    mode = st.radio("Unfreeze", ["by layers", "by block"], index=int(by_block), horizontal=True,
                    disabled=not blocks, key=mode_key, on_change=switch_unfreeze_mode,
                    args=(mode_key, spec.name, classes),
                    help="Switching keeps the nearest equivalent setting." if blocks else
                    f"{spec.name} has no named blocks.")
    if mode == "by block" and blocks:
        start = settings.unfreeze.removeprefix("block:")
        block = st.select_slider("Unfreeze from block … to the top", blocks, start if start in blocks else blocks[-1],
                                 key=f"model_unfreeze_block_{spec.name}")
        setting = f"block:{block}"
    else:
        n = st.slider(f"Unfreeze the top N weighted base layers (of {largest})", 0, largest,
                      top_n(settings.unfreeze, largest), key=f"model_unfreeze_top_{spec.name}")
        setting = "all" if n == largest else str(n)
    batchnorm = st.checkbox("Also train BatchNorm layers (not recommended on small data)",
                            settings.train_batchnorm, key="model_train_batchnorm")
    save(unfreeze=setting, train_batchnorm=batchnorm)
    table, totals = preview_unfreeze(model, setting, train_batchnorm=batchnorm)
    phase1, phase2, frozen = st.columns(3)
    phase1.metric("Phase 1 trains (head only)", f"{parameter_totals(model)['trainable']:,}")
    phase2.metric("Phase 2 trains", f"{totals['trainable']:,}")
    frozen.metric("Phase 2 keeps frozen", f"{totals['frozen']:,}")
    summary = unfreeze_summary(table, setting, train_batchnorm=batchnorm)
    st.caption(f"Head sized for {classes} classes{'' if dataset is not None else ' until you load a dataset'}. "
               + summary)
    trained = table[table["trainable"]]
    if trained.empty:
        st.caption("Phase 2 trains no base layer: only the head goes on learning.")
    else:
        st.caption("The base layers phase 2 trains, top first:")
        st.dataframe(readable_layers(trained.iloc[::-1]), hide_index=True, width="stretch",
                     height=min(36 * (len(trained) + 1) + 4, 320), key="model_trained_layers")
    with st.expander(f"All {len(table)} base layers"):
        shade = ["background-color: #d8ecdf"] * len(table.columns)
        st.dataframe(readable_layers(table).style.apply(
            lambda row: shade if row["trains in phase 2"] else [""] * len(row), axis=1),
            hide_index=True, width="stretch", height=320, key="model_all_layers")


def what_the_base_sees() -> None:
    """Show the backbone's own ImageNet top-5 for one of the user's images."""
    st.subheader("What the base sees")
    if not spec.offline:
        st.info(f"{spec.name}'s ImageNet classifier has to be downloaded, so it is not shown here; "
                f"{OFFLINE} can show theirs offline.", icon=":material/cloud_off:")
        return
    st.caption(f"{spec.name} with its original ImageNet head, before any training: a sanity check that the "
               "pretrained weights recognise something in your images.")
    dataset = st.session_state[app_state.DATASET]
    pick_column, upload_column = st.columns(2)
    images = [] if dataset is None else list(dataset.items["relpath"])
    picked = pick_column.selectbox("An image from your dataset", images, index=None, placeholder="Choose an image",
                                   key="model_sees_image")
    uploaded = upload_column.file_uploader("…or upload one", type=[ext[1:] for ext in sorted(IMAGE_EXTENSIONS)],
                                           key="model_sees_upload")
    if uploaded is None and picked is None:
        return
    try:
        classifier = imagenet_classifier(spec.name)
        pixels = load_image(uploaded.getvalue() if uploaded else dataset.root / picked, classifier.input_shape[1])
        top = decode_top_k(np.asarray(classifier(pixels[np.newaxis].astype("float32"), training=False)), 5)[0]
    except TLToolsError as error:
        show_error(error)
        return
    image_column, table_column = st.columns([1, 2])
    image_column.image(pixels, caption=f"as the base gets it ({pixels.shape[0]} px)", width=224)
    table_column.dataframe(pd.DataFrame(top)[["label", "prob"]], hide_index=True,
                           column_config={"label": "ImageNet class", "prob": st.column_config.ProgressColumn(
                               "probability", format="percent", min_value=0.0, max_value=1.0)})


freezing(config())
what_the_base_sees()

st.page_link("pages/train.py", label="Next: train", icon=":material/arrow_forward:")
