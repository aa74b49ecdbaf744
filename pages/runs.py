"""Runs: a filterable table of runs, curves of several runs overlaid, and one run in detail
(config, curves, confusion matrix with the misclassified images, GAN time-lapse and scores),
with export, checkpoint download, resume and delete."""

import streamlit as st

from core import dashboard, figures, jobs
from core.checkpoints import checkpoint_path
from core.errors import UserError
from core.images import load_png
from core.share import Param
from core.store import STATUSES
from pages import ui


@st.cache_data(max_entries=16, show_spinner="Classifying the test images...")
def test_predictions(path: str, mtime: float, spec: str, image_size: int | None):
    data = ui.load_dataset(spec, image_size)
    return dashboard.predict_labels(ui.load_model(path), data.x_test), data.y_test


ui.header("Runs")
view = ui.View("runs")
store = ui.store()
if not ui.demo():
    jobs.reconcile(store)
runs = store.list_runs()
if not runs:
    st.info("No runs yet: launch one on the Train page (or the starter models on Home).")
    st.page_link("pages/train.py", label="Train a model", icon=":material/model_training:")
    view.publish()
    st.stop()
run_ids = [run["run_id"] for run in runs]
by_id = {run["run_id"]: run for run in runs}

# ---- table -------------------------------------------------------------------------------------
filters = st.columns([3, 1, 2, 2, 2])
statuses = filters[0].multiselect(
    "Status", STATUSES, key=view.bind(Param("status", list, [], choices=STATUSES))
)
family = filters[1].selectbox(
    "Family",
    ["all", "classifier", "gan"],
    key=view.bind(Param("family", str, "all", choices=("all", "classifier", "gan"))),
)
datasets = ["all", *sorted({run["dataset"] for run in runs})]
dataset = filters[2].selectbox(
    "Dataset",
    datasets,
    format_func=dashboard.dataset_label,
    key=view.bind(Param("dataset", str, "all").with_choices(datasets, default="all", pinned=False)),
)
sort = filters[3].selectbox(
    "Sort by", dashboard.SORT_KEYS, key=view.bind(Param("sort", str, "created", choices=dashboard.SORT_KEYS))
)
text = filters[4].text_input("Search", key=view.bind(Param("q", str, "")), placeholder="run id or model")
shown = dashboard.filter_runs(runs, statuses=statuses, family=family, dataset=dataset, text=text)
rows = dashboard.sort_rows(dashboard.run_rows(shown), sort, descending=sort not in ("status", "model"))
st.dataframe(
    rows,
    hide_index=True,
    key="runs.table",
    placeholder="—",  # test accuracy of a GAN, fid_cls of a classifier
    column_config={
        "test_accuracy": st.column_config.NumberColumn("test acc", format="percent"),
        "test_loss": st.column_config.NumberColumn("test loss", format="%.3f"),
        "fid_cls": st.column_config.NumberColumn(format="%.2f"),
        "kid_cls": st.column_config.NumberColumn(format="%.4f"),
        "precision": st.column_config.NumberColumn(format="%.3f"),
        "recall": st.column_config.NumberColumn(format="%.3f"),
        "label_accuracy": st.column_config.NumberColumn("label acc", format="percent"),
        "img/s": st.column_config.NumberColumn(format="%.0f"),
        "duration_s": st.column_config.NumberColumn("duration (s)", format="%.1f"),
    },
)
st.caption(f"{len(rows)} of {len(runs)} runs. Click a column header to sort the table in place.")

# ---- compare -----------------------------------------------------------------------------------
st.subheader("Compare runs")
compare = st.multiselect(
    "Runs to overlay", run_ids, key=view.bind(Param("compare", list, [], choices=run_ids)), max_selections=10
)
if compare:
    cols = st.columns([2, 1, 2])
    x_axis = cols[1].segmented_control(
        "x axis",
        ["epoch", "step"],
        required=True,
        key=view.bind(Param("x", str, "epoch", choices=("epoch", "step"))),
    )
    tables = {run_id: store.metric_table(run_id, x_axis) for run_id in compare}
    names = sorted({name for table in tables.values() for name in dashboard.metric_names(table)})
    if names:
        default_metric = next(
            (n for n in ("val_accuracy", "accuracy", "fid_cls", "loss", "g_loss") if n in names), names[0]
        )
        metric = cols[0].selectbox(
            "Metric", names, key=view.bind(Param("metric", str).with_choices(names, default=default_metric))
        )
        smoothing = cols[2].slider(
            "Smoothing",
            0.0,
            0.95,
            step=0.05,
            key=view.bind(Param("smooth", float, 0.0, minimum=0.0, maximum=0.95)),
        )
        st.plotly_chart(figures.overlay(tables, metric, x=x_axis, smoothing=smoothing), key="runs.overlay")
    else:
        st.caption("These runs have no metrics yet.")
    mixed = dashboard.mixed_references(by_id[run_id] for run_id in compare)
    if mixed:
        st.warning(
            "These GAN runs were scored by different reference classifiers, so their fid_cls and "
            "kid_cls are not comparable: "
            + "; ".join(f"{', '.join(ids)} by {reference}" for reference, ids in mixed.items())
        )
    gan_runs = [run_id for run_id in compare if by_id[run_id]["family"] == "gan"]
    if len(gan_runs) > 1:
        common = sorted(set.intersection(*(set(dashboard.sample_epochs(store.run_dir(r))) for r in gan_runs)))
        if common:
            epoch = st.select_slider(
                "Samples of the same epoch, side by side",
                common,
                key=view.bind(Param("side_epoch", int).with_choices(common, default=common[-1])),
            )
            for column, run_id in zip(st.columns(len(gan_runs)), gan_runs, strict=True):
                with column:
                    ui.image(
                        dashboard.enlarge(
                            load_png(dashboard.sample_epochs(store.run_dir(run_id))[epoch]), 240
                        ),
                        caption=run_id,
                        width=280,
                    )

# ---- one run -----------------------------------------------------------------------------------
st.subheader("Run details")
run_id = st.selectbox("Run", run_ids, key=view.bind(Param("run", str).with_choices(run_ids)))
run = store.describe(run_id)
metrics = run["metrics"] or {}
head = st.columns([4, 1])
head[0].markdown(
    f"**{run_id}** · {run['model']} on {dashboard.dataset_label(run['dataset'])} · seed {run['seed']} · "
    f"{run['device'] or 'device not recorded yet'} · "
    f"{dashboard.format_seconds(dashboard.duration_seconds(by_id[run_id]))}"
)
head[1].badge(run["status"], color=dashboard.STATUS_COLORS.get(run["status"], "gray"))
if run["error"]:
    (st.error if run["status"] == "failed" else st.warning)(run["error"])

actions = st.columns(4)
actions[0].download_button(
    "Metrics (CSV)",
    dashboard.metrics_csv(store, run_id),
    file_name=f"{run_id}-metrics.csv",
    mime="text/csv",
    key="runs.csv",
    icon=":material/download:",
    on_click="ignore",
)
try:
    checkpoint = checkpoint_path(store, run_id)
except UserError:
    checkpoint = None
if checkpoint is not None and dashboard.checkpoint_downloads_allowed():  # demo: only if the operator allows
    actions[1].download_button(
        "Checkpoint (.keras)",
        checkpoint.read_bytes,
        file_name=f"{run_id}-{checkpoint.name}",
        mime="application/octet-stream",
        key="runs.checkpoint",
        icon=":material/download:",
        on_click="ignore",
    )
if not ui.demo():
    with actions[2].popover(
        "Resume", icon=":material/replay:", disabled=run["status"] in ("queued", "running")
    ):
        done = dashboard.checkpoint_epochs(store, run_id)
        more = st.number_input(
            "Train until epoch", min_value=1, value=max(done or [0]) + 5, step=1, key="runs.resume_epochs"
        )
        if st.button("Resume in the background", key="runs.resume", type="primary"):
            with ui.guard():
                dashboard.resume(store, run_id, epochs=int(more) if more > max(done or [0]) else None)
                st.success("Queued: watch it on the Train page.")
    with actions[3].popover(
        "Delete", icon=":material/delete:", disabled=run["status"] in ("queued", "running")
    ):
        st.write(f"Delete **{run_id}**, its metrics and its files? This cannot be undone.")
        sure = st.checkbox("Yes, delete it", key="runs.delete_confirm")
        if st.button("Delete run", key="runs.delete", type="primary", disabled=not sure):
            with ui.guard():
                dashboard.delete(store, run_id)
                st.session_state.pop(view.key("run"), None)
                st.query_params.pop("run", None)  # the next run opens the newest run, no stale-link notice
                st.rerun()

tabs = st.tabs(["Curves", "Results", "Config"])
with tabs[0]:
    table = store.metric_table(run_id, "epoch")
    if not table["step"]:
        table = store.metric_table(run_id, "step")
    losses, others = dashboard.loss_and_accuracy(dashboard.metric_names(table))
    cols = st.columns(2)
    if losses:
        cols[0].plotly_chart(figures.curves(table, losses, x="epoch", title="loss"), key="runs.loss")
    if others:
        cols[1].plotly_chart(figures.curves(table, others, x="epoch", title="metrics"), key="runs.metrics")
    if not losses and not others:
        st.caption("No metrics logged yet.")

with tabs[1]:
    scores = {
        name: metrics[name]
        for name in ("test_accuracy", "test_loss", *dashboard.GAN_SCORES)
        if isinstance(metrics.get(name), (int, float))
    }
    if scores:
        for column, (name, value) in zip(st.columns(len(scores)), scores.items(), strict=True):
            column.metric(name, f"{value:.1%}" if "accuracy" in name else f"{value:.4g}")
    reference = dashboard.reference_note(store, run)
    if reference:
        st.caption(reference)
    if run["family"] == "classifier":
        matrix = metrics.get("confusion_matrix")
        names = (run["config"].get("data") or {}).get("class_names") or []
        if matrix and len(names) == len(matrix):
            cols = st.columns(2)
            cols[0].plotly_chart(figures.confusion_matrix(matrix, names), key="runs.confusion")
            cols[1].plotly_chart(
                figures.per_class_accuracy(dashboard.per_class_accuracy(matrix), names), key="runs.per_class"
            )
            cells = dashboard.confusion_cells(matrix, names)
            cell_keys = [dashboard.cell_key(cell["true"], cell["predicted"]) for cell in cells]
            if cells and checkpoint is not None:
                labels = {
                    dashboard.cell_key(cell["true"], cell["predicted"]): cell["label"] for cell in cells
                }
                chosen = st.selectbox(
                    "Misclassified test images of",
                    cell_keys,
                    format_func=labels.get,
                    key=view.bind(Param("cell", str).with_choices(cell_keys)),
                )
                with ui.guard():
                    true_index, predicted = map(int, chosen.split("-"))
                    predictions, y_test = test_predictions(
                        str(checkpoint),
                        checkpoint.stat().st_mtime,
                        run["dataset"],
                        run["config"].get("image_size"),
                    )
                    indices = dashboard.misclassified(y_test, predictions, true_index, predicted)
                    data = ui.load_dataset(run["dataset"], run["config"].get("image_size"))
                    if len(indices):
                        ui.image(
                            dashboard.grid_image(data.x_test[indices[:64]], min_side=96),
                            caption=f"{len(indices)} test images of class {names[true_index]} predicted as "
                            f"{names[predicted]} (latest checkpoint)",
                        )
                    else:
                        st.caption("The latest checkpoint makes no such error on the test images.")
            elif not cells:
                st.caption("No misclassified test images.")
        else:
            st.caption("The confusion matrix appears when the run has finished.")
    else:
        samples = dashboard.sample_epochs(store.run_dir(run_id))
        if samples:
            epochs = list(samples)
            epoch = st.select_slider(
                "Sample time-lapse: epoch",
                epochs,
                key=view.bind(Param("epoch", int).with_choices(epochs, default=epochs[-1])),
            )
            ui.image(
                dashboard.enlarge(load_png(samples[epoch]), 360),
                caption=f"{run_id}: the same latent vectors after epoch {epoch}",
            )
        else:
            st.caption("No sample grids yet: the trainer writes one after each epoch.")
        score_table = store.metric_table(run_id, "epoch")
        groups = [[name] for name in ("fid_cls", "kid_cls")] + [["precision", "recall", "label_accuracy"]]
        groups = [[name for name in group if name in score_table] for group in groups]
        groups = [group for group in groups if group]
        for column, group in zip(st.columns(max(1, len(groups))), groups, strict=False):
            column.plotly_chart(
                figures.curves(score_table, group, x="epoch", title=" / ".join(group), height=260),
                key=f"runs.gan_scores.{group[0]}",
            )

with tabs[2]:
    st.json(run["config"], expanded=True)
    st.caption(f"code {run.get('code_version') or '?'} · versions {run.get('versions') or {}}")

view.publish()
