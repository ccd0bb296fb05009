"""Data health page: likely label errors, duplicates and outliers as cards to fix; the dataset as a map; retrain."""

import pandas as pd
import streamlit as st

from tltools import app_state, runs
from tltools.errors import TLToolsError
from tltools.health import task as health_task
from tltools.health import versions
from tltools.health.projection import findings_by_image, map_figure, selected_image
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

settings = config()
report_file = health_task.report_path(dataset, settings)
manager = job_manager()
job = manager.get(st.session_state[app_state.HEALTH_JOB])
if job is None or job.options.get("report") != str(report_file):  # none yet, or one for other data or settings
    job = health_task.find_running(manager, report_file)  # e.g. started before a refresh, or by another session
    st.session_state[app_state.HEALTH_JOB] = job.job_id if job is not None else None
running = job is not None and not job.finished

report = st.session_state[app_state.HEALTH_REPORT]
if report is not None and report.dataset.fingerprint != dataset.fingerprint:
    report = None  # the session's dataset changed since the analysis
try:
    saved_at = report_file.stat().st_mtime
except OSError:
    saved_at = None  # not analysed with these settings yet (or the cache was cleaned)
if not running and saved_at is not None and (report is None or getattr(report, "saved_at", None) != saved_at):
    try:  # the latest analysis of this data and these settings, whichever session ran it
        loaded, coordinates = health_task.load_report(report_file)
    except TLToolsError as error:
        show_error(error)
    else:
        if loaded.dataset.fingerprint == dataset.fingerprint:
            loaded.saved_at = saved_at
            report = st.session_state[app_state.HEALTH_REPORT] = loaded
            st.session_state[app_state.HEALTH_MAP] = coordinates
with st.container(horizontal=True, vertical_alignment="center"):
    st.markdown(f"**{dataset_name(dataset)}**: {len(dataset.items)} images in {len(dataset.classes)} classes"
                + (" (a fixed version)" if dataset.version else ""))
    analyse_clicked = st.button("Analyse" if report is None else "Analyse again", type="primary",
                                icon=":material/health_and_safety:", key="health_analyse", disabled=running,
                                help="The analysis is running." if running else None)
if analyse_clicked:
    try:
        job = manager.submit(settings, dataset, owner=st.session_state[app_state.SESSION_ID],
                             task=health_task.ANALYSIS_TASK, options={"report": str(report_file)})
    except TLToolsError as error:
        show_error(error)
        st.stop()
    st.session_state[app_state.HEALTH_JOB] = job.job_id
    st.rerun()  # draw the page with the job running (the button disabled, its progress shown)


@st.fragment(run_every=1)
def analysis_progress(job_id: str) -> None:
    """Show the running analysis' step and progress with a Stop button; when it ends, redraw the page with its report."""
    job = job_manager().get(job_id)
    if job is None or job.finished:
        st.rerun(scope="app")  # the page loads the new report from its file
    state = job.log.snapshot()
    place = job_manager().queue_position(job_id)
    total = max(int(state.get("health_total") or 1), 1)
    done = min(int(state.get("health_done") or 0), total)
    if place is not None:
        text = f"Waiting for the job before it to finish (place {place} in the queue)…"
    else:
        text = f"Analysing: {state.get('health_stage') or 'starting'}" + (f" ({done} of {total})" if total > 1 else "")
    with st.container(horizontal=True, vertical_alignment="center"):
        st.progress(done / total, text=text)
        if st.button("Stop", icon=":material/stop_circle:", key="health_stop", disabled=job.stop_request.requested):
            job_manager().stop(job_id)
    st.caption(f"The analysis runs in the background ({state['elapsed']:.0f} s so far): leaving or refreshing "
               "the page does not stop it.")


if running:
    analysis_progress(job.job_id)
    st.stop()
if job is not None and job.status == "failed":
    st.error(f"The analysis failed: {job.error}", icon=":material/error:")
elif job is not None and job.status == "stopped" and not (job.summary or {}).get("report"):
    st.info("The analysis was stopped; nothing was saved.", icon=":material/stop_circle:")
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
           f"({report.seconds['features']:.1f} s for the features)"
           + (f", the map {report.seconds['map']:.1f} s." if "map" in report.seconds else "."))


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


def image_card(index: int, text: str, *, key: str | None = None, suggested: str = "exclude",
               new_label: str | None = None, reason: str = "", stacked: bool = False) -> None:
    """One image's card: image ``index`` with ``text``, its nearest images and, with a ``key``, the actions.

    ``stacked`` puts the image above the text (a narrow column, as beside the map) instead of to its left.
    """
    with st.container(border=True):
        left, right = (st.container(), st.container()) if stacked else st.columns([1, 3])
        left.image(image_path(index), width=200 if stacked else 160)
        with right:
            st.markdown(f"{describe(index)}  \n{text}")
            if stacked:
                st.caption("Its nearest images (label · similarity):")
            neighbours(index)
            if key is not None:
                decide(index, key, suggested, new_label=new_label, reason=reason)


def duplicate_card(number: int, group) -> None:
    """One duplicate group's card: every copy side by side; excluding all but the first is suggested."""
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


def finding_cards(kind: str, items: list, offset: int) -> None:
    """The cards of one page of findings of ``kind`` (``items`` start at position ``offset`` of the list)."""
    for number, item in enumerate(items, start=offset):
        if kind == "Duplicates":
            duplicate_card(number, item)
        elif kind == "Label errors":
            given, suggested = classes[item.given], classes[item.suggested]
            image_card(item.index, f"Labelled **{given}**, looks like **{suggested}** (label quality {item.score:.2f})",
                       key=f"label_{item.index}", suggested="relabel", new_label=suggested,
                       reason=f"likely label error (quality {item.score:.2f}), looks like {suggested}")
        else:
            image_card(item.index, f"Far from every other image (distance {item.score:.2f}); its nearest images:",
                       key=f"out_{item.index}", reason=f"outlier (distance {item.score:.2f})")


def paged(items: list, key: str) -> tuple[list, int]:
    """Return one page of ``items`` (a page picker when there are more than fit) and its first item's position."""
    if len(items) <= CARDS_PER_PAGE:
        return items, 0
    pages = (len(items) + CARDS_PER_PAGE - 1) // CARDS_PER_PAGE
    page = st.number_input(f"Page (of {pages})", 1, pages, 1, key=f"health_page_{key}")
    return items[(page - 1) * CARDS_PER_PAGE: page * CARDS_PER_PAGE], (page - 1) * CARDS_PER_PAGE


findings, map_tab, classes_tab, fix_tab = st.tabs(["Findings", "Map", "Classes", "Fix and retrain"])

with findings:
    kind = st.segmented_control("Show", ["Label errors", "Duplicates", "Outliers"], default="Label errors",
                                key="health_kind") or "Label errors"
    shown = {"Label errors": visible_issues, "Duplicates": report.duplicates, "Outliers": visible_outliers}[kind]
    if not shown:
        st.success(f"No {kind.lower()} found.", icon=":material/check_circle:")
    else:
        finding_cards(kind, *paged(shown, kind.split()[0].lower()))

with map_tab:
    st.caption("Each point is an image, placed near the images whose features it shares (t-SNE); outlined diamonds "
               "have a finding. Hover for its name, click it to see the image and its nearest images.")
    chart, chosen = st.columns([3, 2])
    with chart:
        event = st.plotly_chart(map_figure(report, st.session_state[app_state.HEALTH_MAP]), on_select="rerun",
                                selection_mode="points", key="health_map_chart", config={"scrollZoom": True})
    with chosen.container(key="health_map_selected"):
        index = selected_image(event)
        if index is None:
            st.info("Click a point to see its image and its nearest images here.", icon=":material/touch_app:")
        else:
            found = findings_by_image(report).get(index)
            image_card(index, f"**{found}**" if found else "No finding.", stacked=True)

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
