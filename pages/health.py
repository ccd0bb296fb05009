"""Data health page: likely label errors, duplicates and outliers as cards to fix; the dataset as a map; retrain."""

import pandas as pd
import streamlit as st

from tltools import app_state, runs
from tltools.errors import TLToolsError
from tltools.health import analyse, versions
from tltools.health.projection import findings_by_image, map_figure, project
from tltools.streamlit_bridge import (config, current_job, dataset_name, job_manager, remember_job, require_app,
                                      set_dataset, show_error)
from tltools.training import TrainConfig

require_app()

CARDS_PER_PAGE = 8
THUMB_PX = 96
ACTIONS = {"relabel": "Relabel", "exclude": "Exclude", "keep": "Keep (reviewed)"}
METRIC_ROWS = [("val", "accuracy", "Validation accuracy"), ("val", "macro_f1", "Validation macro F1"),
               ("test", "accuracy", "Test accuracy"), ("test", "macro_f1", "Test macro F1"),
               ("val", "loss", "Validation loss")]

def retrain_section() -> None:
    """'Retrain with fixes': the previous run's settings on the fixed version, then before/after metrics."""
    retrain = st.session_state[app_state.HEALTH_RETRAIN]
    previous = current_job()
    st.subheader("Retrain with fixes")
    if retrain is None:
        if previous is None or not (previous.run_dir / "config.json").is_file():
            st.caption("Train a model on the Train page first; this then trains again with its settings on the "
                       "fixed version and shows both runs' metrics side by side.")
            return
        if not dataset.version:
            st.caption("Save the decisions as a version and use it (above), then retrain here.")
            return
        st.caption(f"Trains with the settings of run {previous.run_dir.name} on {dataset_name(dataset)}.")
        if st.button("Retrain with fixes", icon=":material/replay:", key="health_retrain_button"):
            settings = TrainConfig.from_dict(runs.read_run(previous.run_dir).config)
            try:
                job = job_manager().submit(settings, dataset, owner=st.session_state[app_state.SESSION_ID])
            except TLToolsError as error:
                show_error(error)
                return
            remember_job(job.job_id)
            st.session_state[app_state.HEALTH_RETRAIN] = {"job": job.job_id, "before": str(previous.run_dir)}
            st.rerun()
        return
    before_and_after(retrain)


@st.fragment(run_every=2)
def before_and_after(retrain: dict) -> None:
    """Show the retraining job's progress, then the previous and the new run's metrics side by side."""
    job = job_manager().get(retrain["job"])
    if job is None:
        st.session_state[app_state.HEALTH_RETRAIN] = None
        return
    if not job.finished:
        st.info(f"Retraining with fixes: {job.status}… (the Train page shows it live)", icon=":material/pending:")
        return
    if job.error:
        st.error(f"Retraining failed: {job.error}", icon=":material/error:")
        return
    before = runs.read_run(retrain["before"]).metrics or {}
    after = job.metrics or {}
    rows = [{"metric": name, "before (original data)": (before.get(split) or {}).get(key),
             "after (fixed version)": (after.get(split) or {}).get(key)} for split, key, name in METRIC_ROWS
            if (before.get(split) or {}).get(key) is not None or (after.get(split) or {}).get(key) is not None]
    st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
        column: st.column_config.NumberColumn(format="%.4f") for column in ("before (original data)",
                                                                            "after (fixed version)")})
    st.caption(f"Before: run {runs.read_run(retrain['before']).run_id}; after: run {job.run_dir.name}. Fixed "
               "labels and excluded images change the validation and test sets too.")


st.title("Data health")
st.caption("Likely label errors, duplicates and off-topic images, found from the images' cached backbone features. "
           "Fixes never touch your files: they become a new dataset version (your data plus a changes CSV).")

dataset = st.session_state[app_state.DATASET]
if dataset is None:
    st.info("Load a dataset first.", icon=":material/info:")
    st.page_link("pages/dataset.py", label="Go to the Dataset page", icon=":material/folder_zip:")
    st.stop()

report = st.session_state[app_state.HEALTH_REPORT]
if report is not None and report.dataset.fingerprint != dataset.fingerprint:
    report = None  # the session's dataset changed since the analysis
settings = config()
with st.container(horizontal=True, vertical_alignment="center"):
    st.markdown(f"**{dataset_name(dataset)}**: {len(dataset.items)} images in {len(dataset.classes)} classes"
                + (" (a fixed version)" if dataset.version else ""))
    analyse_clicked = st.button("Analyse" if report is None else "Analyse again", type="primary",
                                icon=":material/health_and_safety:", key="health_analyse")
if analyse_clicked:
    bar = st.progress(0.0, text="Getting the features…")
    try:
        report = analyse(dataset, [settings.backbone], image_size=settings.image_size, weights=settings.weights,
                         on_progress=lambda stage, done, total: bar.progress(done / max(total, 1), text=stage))
    except TLToolsError as error:
        show_error(error)
        st.stop()
    bar.empty()
    st.session_state[app_state.HEALTH_REPORT] = report
    st.session_state[app_state.HEALTH_MAP] = None
    st.rerun()  # draw the page from the new report (the button above now says "Analyse again")
if report is None:
    if dataset.version or st.session_state[app_state.HEALTH_RETRAIN] is not None:
        retrain_section()
    st.info(f"Analyse the images with {settings.backbone}'s features (cached after the first time: a few seconds "
            "for a thousand images).", icon=":material/info:")
    st.stop()

table, classes = report.table, report.dataset.classes
decisions: dict = st.session_state[app_state.HEALTH_DECISIONS]
# Images a version already decided on (kept as reviewed, or relabelled) are not shown as findings again.
reviewed = set((dataset.version_of or {}).get("changes", pd.DataFrame(columns=["path"]))["path"])
visible_issues = [item for item in report.label_issues if table["relpath"].iat[item.index] not in reviewed]
visible_outliers = [item for item in report.outliers if table["relpath"].iat[item.index] not in reviewed]
features_note = ", ".join(report.features.names)
with st.container(horizontal=True, gap="small"):
    st.metric("Likely label errors", len(visible_issues), border=True, width="content")
    st.metric("Duplicate groups", len(report.duplicates), border=True, width="content")
    st.metric("Outliers", len(visible_outliers), border=True, width="content")
    st.metric("Decisions", len(decisions), border=True, width="content")
st.caption(f"Features: {features_note}; analysis took {report.seconds['total']:.1f} s "
           f"({report.seconds['features']:.1f} s for the features).")


def image_path(index: int) -> str:
    """Return the file of image ``index`` of the report's table."""
    return str(report.dataset.root / table["relpath"].iat[index])


def describe(index: int) -> str:
    """Return an image's name, label and split."""
    return f"`{table['relpath'].iat[index]}` · {table['label'].iat[index]} · {table['split'].iat[index]}"


def neighbours(index: int) -> None:
    """Show the images most similar to image ``index`` with their labels and similarity."""
    near = report.neighbours(index)
    st.image([image_path(i) for i, _ in near], width=THUMB_PX,
             caption=[f"{table['label'].iat[i]} · {similarity:.2f}" for i, similarity in near])


def decide(index: int, key: str, suggested: str, *, new_label: str | None, reason: str) -> None:
    """Offer relabel / exclude / keep for image ``index``, the suggested action first; record the choice."""
    relpath = table["relpath"].iat[index]
    current = decisions.get(relpath)
    options = [suggested] + [action for action in ACTIONS if action != suggested]
    if new_label is None:
        options.remove("relabel")
    with st.container(horizontal=True, vertical_alignment="bottom"):
        action = st.segmented_control("Action", options, format_func=lambda a: (
            f"Relabel as {new_label}" if a == "relabel" else ACTIONS[a]) + (" (suggested)" if a == suggested else ""),
            default=current[0] if current else None, key=f"health_action_{key}")
        if action is not None:
            decisions[relpath] = (action, new_label if action == "relabel" else "", reason)
        elif current is not None:
            del decisions[relpath]


def label_issue_cards(items: list) -> None:
    """One card per likely label error: the image, its neighbours, relabel as suggested."""
    for issue in items:
        with st.container(border=True):
            left, right = st.columns([1, 3])
            left.image(image_path(issue.index), width=160)
            with right:
                st.markdown(f"{describe(issue.index)}  \nLabelled **{classes[issue.given]}**, looks like "
                            f"**{classes[issue.suggested]}** (label quality {issue.score:.2f})")
                neighbours(issue.index)
                decide(issue.index, f"label_{issue.index}", "relabel", new_label=classes[issue.suggested],
                       reason=f"likely label error (quality {issue.score:.2f}), looks like {classes[issue.suggested]}")


def duplicate_cards(groups: list) -> None:
    """One card per duplicate group: every copy; excluding all but the first is suggested."""
    for number, group in enumerate(groups):
        with st.container(border=True):
            flags = [text for text, on in (("label conflict", group.label_conflict),
                                           ("leakage across splits", group.leakage)) if on]
            st.markdown(f"**{group.kind.capitalize()} duplicates** (similarity {group.similarity:.3f})"
                        + (f" · :red[{' · '.join(flags)}]" if flags else ""))
            st.image([image_path(i) for i in group.indices], width=140,
                     caption=[f"{table['relpath'].iat[i]} · {table['label'].iat[i]} · {table['split'].iat[i]}"
                              for i in group.indices])
            first = table["relpath"].iat[group.indices[0]]
            for index in group.indices[1:]:
                st.markdown(describe(index))
                decide(index, f"dup_{number}_{index}", "exclude", new_label=None,
                       reason=f"{group.kind} duplicate of {first}" + (f" ({', '.join(flags)})" if flags else ""))


def outlier_cards(items: list) -> None:
    """One card per outlier: the image and its nearest images; excluding it is suggested."""
    for item in items:
        with st.container(border=True):
            left, right = st.columns([1, 3])
            left.image(image_path(item.index), width=160)
            with right:
                st.markdown(f"{describe(item.index)}  \nFar from every other image (distance {item.score:.2f}); "
                            "its nearest images:")
                neighbours(item.index)
                decide(item.index, f"out_{item.index}", "exclude", new_label=None,
                       reason=f"outlier (distance {item.score:.2f})")


def paged(items: list, key: str) -> list:
    """Return one page of ``items`` (a page picker when there are more than fit)."""
    if len(items) <= CARDS_PER_PAGE:
        return items
    pages = (len(items) + CARDS_PER_PAGE - 1) // CARDS_PER_PAGE
    page = st.number_input(f"Page (of {pages})", 1, pages, 1, key=f"health_page_{key}")
    return items[(page - 1) * CARDS_PER_PAGE: page * CARDS_PER_PAGE]


findings, map_tab, classes_tab, fix_tab = st.tabs(["Findings", "Map", "Classes", "Fix and retrain"])

with findings:
    kind = st.segmented_control("Show", ["Label errors", "Duplicates", "Outliers"], default="Label errors",
                                key="health_kind") or "Label errors"
    shown = {"Label errors": visible_issues, "Duplicates": report.duplicates, "Outliers": visible_outliers}[kind]
    if not shown:
        st.success(f"No {kind.lower()} found.", icon=":material/check_circle:")
    elif kind == "Label errors":
        label_issue_cards(paged(shown, "label"))
    elif kind == "Duplicates":
        duplicate_cards(paged(shown, "dup"))
    else:
        outlier_cards(paged(shown, "out"))

with map_tab:
    coordinates = st.session_state[app_state.HEALTH_MAP]
    if coordinates is None:
        with st.spinner("Projecting the features to 2-D…"):
            coordinates = project(report.combined)
        st.session_state[app_state.HEALTH_MAP] = coordinates
    event = st.plotly_chart(map_figure(report, coordinates), on_select="rerun", selection_mode="points",
                            key="health_map_chart", config={"scrollZoom": True})
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if points:
        index = int(points[0]["customdata"] if not isinstance(points[0]["customdata"], list)
                    else points[0]["customdata"][0])
        found = findings_by_image(report).get(index)
        left, right = st.columns([1, 3])
        left.image(image_path(index), width=200)
        with right:
            st.markdown(describe(index) + (f"  \n**{found}**" if found else ""))
            st.caption("Its nearest images (label · similarity):")
            neighbours(index)
    else:
        st.caption("Click a point to see its image and its nearest images.")

with classes_tab:
    st.subheader("Most confused class pairs")
    if report.confused_pairs:
        st.dataframe(pd.DataFrame([{"classes": " / ".join(pair["classes"]), "confusions": pair["count"],
                                    "first taken for second": pair["a_as_b"], "second taken for first": pair["b_as_a"]}
                                   for pair in report.confused_pairs]), hide_index=True)
    else:
        st.success("The out-of-fold heads confuse no classes.", icon=":material/check_circle:")
    st.subheader("Label quality per class")
    st.caption("Mean out-of-fold probability of the given label (1 = every image clearly its class).")
    st.dataframe(pd.DataFrame(report.class_quality), hide_index=True, height=35 * (len(report.class_quality) + 1) + 3,
                 column_config={"label_quality": st.column_config.ProgressColumn("label quality", min_value=0,
                                                                                 max_value=1, format="%.3f")})


def changes_frame() -> pd.DataFrame:
    """Return the decisions as a changes CSV's rows."""
    labels = table.set_index("relpath")["label"]
    return pd.DataFrame([(path, labels[path], new_label, action, reason)
                         for path, (action, new_label, reason) in decisions.items()], columns=versions.COLUMNS)


with fix_tab:
    changes = changes_frame()
    st.subheader(f"Decisions ({len(changes)})")
    if len(changes):
        st.dataframe(changes, hide_index=True)
    else:
        st.caption("Choose an action on the findings' cards, or apply a changes CSV.")
    uploaded = st.file_uploader("Apply a changes CSV (path, old_label, new_label, action, reason)", type=["csv"],
                                key="health_changes_upload")
    if uploaded is not None and st.button("Add its rows to the decisions", key="health_apply_upload"):
        try:
            rows = versions.read_changes(uploaded)
            unknown = set(rows["path"]) - set(table["relpath"])
            if unknown:
                raise TLToolsError(f"the CSV names {sorted(unknown)[0]}, which is not an image of this dataset "
                                   f"({len(unknown)} such row(s)); apply it to the data it was made for")
            for row in rows.itertuples():
                decisions[row.path] = (row.action, row.new_label, row.reason)
            st.rerun()
        except TLToolsError as error:
            show_error(error)
    with st.container(horizontal=True):
        st.download_button("Download changes CSV", changes.to_csv(index=False), file_name="changes.csv",
                           mime="text/csv", icon=":material/download:", disabled=not len(changes),
                           key="health_download")
        save = st.button("Save as a new dataset version and use it", type="primary", icon=":material/save:",
                         disabled=not (changes["action"] != "keep").any(), key="health_save")
    if save:
        try:
            folder = versions.write_version(report.dataset, changes)
            fixed = versions.load_version(folder, split=settings)
        except TLToolsError as error:
            show_error(error)
        else:
            set_dataset(fixed, str(folder))
            st.session_state[app_state.HEALTH_DECISIONS] = {}
            st.session_state[app_state.HEALTH_REPORT] = None
            st.success(f"Saved: {len(fixed.items)} images in {len(fixed.classes)} classes. The Dataset and Train pages "
                       "now use this version; your uploaded files are unchanged.", icon=":material/check_circle:")
    retrain_section()
