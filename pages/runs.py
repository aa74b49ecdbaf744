"""Runs: a filterable table of runs, curves of several runs overlaid, and one run in detail
(config, curves, confusion matrix with the misclassified images, GAN time-lapse and scores),
with export, checkpoint download, resume and delete."""

import streamlit as st

from core.app import datasets_view, demo_limits, figures, restore_view, run_actions, runs_view
from core.app.share import Param
from core.common.errors import UserError
from core.common.images import load_png
from core.runs import jobs
from core.store import compare
from core.store.checkpoints import checkpoint_path
from core.store.store import STATUSES
from pages import ui


@st.cache_data(max_entries=16, show_spinner="Classifying the test images...")
def test_predictions(path: str, mtime: float, spec: str, image_size: int | None):
    data = ui.load_dataset(spec, image_size)
    return runs_view.predict_labels(ui.load_model(path), data.x_test), data.y_test


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
filters = st.columns([3, 2, 2, 3, 2, 2])
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
    format_func=datasets_view.dataset_label,
    key=view.bind(Param("dataset", str, "all").with_choices(datasets, default="all", pinned=False)),
)
all_tags = sorted({tag for run in runs for tag in run.get("tags") or []})
tags = filters[3].multiselect(
    "Tags", all_tags, key=view.bind(Param("tag", list, [], choices=all_tags)), placeholder="any tag"
)
sort = filters[4].selectbox(
    "Sort by", runs_view.SORT_KEYS, key=view.bind(Param("sort", str, "created", choices=runs_view.SORT_KEYS))
)
text = filters[5].text_input("Search", key=view.bind(Param("q", str, "")), placeholder="run id or model")
shown = runs_view.filter_runs(runs, statuses=statuses, family=family, dataset=dataset, text=text, tags=tags)
training = {run["run_id"]: compare.training_seconds(store, run["run_id"]) for run in shown}
rows = runs_view.sort_rows(
    runs_view.run_rows(shown, training=training), sort, descending=sort not in ("status", "model")
)
st.dataframe(
    rows,
    hide_index=True,
    key="runs.table",
    placeholder="—",  # test accuracy of a GAN, fid_cls of a classifier
    column_order=[
        "run",
        "status",
        "family",
        "model",
        "dataset",
        "epochs",
        "tags",
        "test_accuracy",
        "test_loss",
        "fid_cls",
        "kid_cls",
        "precision",
        "recall",
        "label_accuracy",
        "scored by",
        "training_s",
        "wall_s",
        "img/s",
        "device",
        "gpus",
        "created",
    ],
    column_config={
        "tags": st.column_config.ListColumn("tags"),
        "test_accuracy": st.column_config.NumberColumn("test acc", format="percent"),
        "test_loss": st.column_config.NumberColumn("test loss", format="%.3f"),
        "fid_cls": st.column_config.NumberColumn(format="%.2f"),
        "kid_cls": st.column_config.NumberColumn(format="%.4f"),
        "precision": st.column_config.NumberColumn(format="%.3f"),
        "recall": st.column_config.NumberColumn(format="%.3f"),
        "label_accuracy": st.column_config.NumberColumn("label acc", format="percent"),
        "img/s": st.column_config.NumberColumn(format="%.0f"),
        "training_s": st.column_config.NumberColumn(
            "training (s)", format="%.1f", help="time spent in epochs, summed over resumes"
        ),
        "wall_s": st.column_config.NumberColumn(
            "wall (s)", format="%.1f", help="from creation to the end, queueing and scoring included"
        ),
    },
)
st.caption(f"{len(rows)} of {len(runs)} runs. Click a column header to sort the table in place.")

# ---- compare -----------------------------------------------------------------------------------
st.subheader("Compare runs")
compared = st.multiselect(
    "Runs to compare", run_ids, key=view.bind(Param("compare", list, [], choices=run_ids)), max_selections=10
)
if compared:
    colors = compare.run_colors(compared)
    controls = st.columns([4, 3, 2, 1])
    x_axis = controls[1].segmented_control(
        "x axis",
        compare.X_AXES,
        format_func={"step": "step", "epoch": "epoch", "time": "relative time"}.get,
        required=True,
        key=view.bind(Param("x", str, "epoch", choices=compare.X_AXES)),
    )
    # Per-step rows give fine curves against step or time; against epoch they would stack.
    scope = "epoch" if x_axis == "epoch" else None
    tables = {
        run_id: compare.metric_table(store, run_id, scope, started=by_id[run_id]["started_ts"])
        for run_id in compared
    }
    names = compare.metric_names(tables)
    if names:
        chosen = controls[0].multiselect(
            "Metrics",
            names,
            max_selections=6,
            key=view.bind(Param("metric", list, compare.default_metrics(names), choices=names)),
        )
        smoothing = controls[2].slider(
            "Smoothing",
            0.0,
            0.95,
            step=0.05,
            key=view.bind(Param("smooth", float, 0.0, minimum=0.0, maximum=0.95)),
            help="exponential moving average, as TensorBoard's; the raw curve stays faint behind",
        )
        log_y = controls[3].toggle("log y", key=view.bind(Param("logy", bool, False)))
        if chosen:
            st.plotly_chart(
                figures.compare_runs(
                    tables, chosen, x=x_axis, smoothing=smoothing, log_y=log_y, colors=colors
                ),
                key="runs.overlay",
            )
            lacking = compare.missing_caption(compare.missing(tables, chosen))
            if lacking:
                st.caption(lacking)
        else:
            st.caption("Pick one or more metrics to draw.")
    else:
        st.caption("These runs have no metrics yet.")
    param_names, param_rows = compare.differing_params([by_id[run_id] for run_id in compared])
    if len(compared) > 1:
        st.markdown("**Hyperparameters that differ**")
        if param_names:
            st.dataframe(param_rows, hide_index=True, key="runs.hparams")
        else:
            st.caption("These runs share every hyperparameter.")
    mixed = runs_view.mixed_references(by_id[run_id] for run_id in compared)
    if mixed:
        st.warning(
            "These GAN runs were scored by different reference classifiers, so their fid_cls and "
            "kid_cls are not comparable: "
            + "; ".join(f"{', '.join(ids)} by {reference}" for reference, ids in mixed.items())
        )
    gan_runs = [run_id for run_id in compared if by_id[run_id]["family"] == "gan"]
    if len(gan_runs) > 1:
        common = sorted(set.intersection(*(set(runs_view.sample_epochs(store.run_dir(r))) for r in gan_runs)))
        if common:
            epoch = st.select_slider(
                "Samples of the same epoch, side by side",
                common,
                key=view.bind(Param("side_epoch", int).with_choices(common, default=common[-1])),
            )
            for row_runs in compare.chunks(gan_runs, compare.SAMPLE_COLUMNS):
                for column, run_id in zip(st.columns(compare.SAMPLE_COLUMNS), row_runs, strict=False):
                    with column, st.container(border=True):
                        st.markdown(compare.sample_caption(by_id[run_id], epoch))
                        ui.image(
                            datasets_view.enlarge(
                                load_png(runs_view.sample_epochs(store.run_dir(run_id))[epoch]), 240
                            ),
                            width="stretch",
                        )

# ---- parallel coordinates ----------------------------------------------------------------------
st.subheader("Config against a final metric")
finals = {run["run_id"]: compare.final_metrics(run, store.latest_metrics(run["run_id"])) for run in shown}
final_names = sorted({name for values in finals.values() for name in values})
if final_names:
    final_metric = st.selectbox(
        "Final metric",
        final_names,
        key=view.bind(
            Param("final", str).with_choices(final_names, default=compare.default_final(final_names))
        ),
        help="over the runs the table shows: change its filters to change the lines",
    )
    dimensions, left_out = compare.parallel_dimensions(shown, finals, final_metric)
    st.plotly_chart(figures.parallel_coordinates(dimensions, final_metric), key="runs.parallel")
    if left_out:
        st.caption(
            f"Not drawn: {', '.join(left_out)} {'has' if len(left_out) == 1 else 'have'} no {final_metric}."
        )
else:
    st.caption("No run in the table has a final metric yet.")

# ---- one run -----------------------------------------------------------------------------------
st.subheader("Run details")
run_id = st.selectbox("Run", run_ids, key=view.bind(Param("run", str).with_choices(run_ids)))
run = store.describe(run_id)
metrics = run["metrics"] or {}
head = st.columns([4, 1])
head[0].markdown(
    f"**{run_id}** · {run['model']} on {datasets_view.dataset_label(run['dataset'])} · seed {run['seed']} · "
    f"{run['device'] or 'device not recorded yet'} · "
    f"{'GPUs ' + ', '.join(run['gpus']) + ' · ' if run['gpus'] else ''}"
    f"training {runs_view.format_seconds(compare.training_seconds(store, run_id))} · "
    f"wall {runs_view.format_seconds(compare.wall_seconds(by_id[run_id]))}"
)
head[1].badge(run["status"], color=runs_view.STATUS_COLORS.get(run["status"], "gray"))
if run["error"]:
    (st.error if run["status"] == "failed" else st.warning)(run["error"])

actions = st.columns(4)
actions[0].download_button(
    "Metrics (CSV)",
    runs_view.metrics_csv(store, run_id),
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
if checkpoint is not None and demo_limits.checkpoint_downloads_allowed():  # demo: only if the operator allows
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
    held = bool(view.unconfirmed("Resume and Delete", ["run"]))  # never act on a link's fallback run
    with actions[2].popover(
        "Resume", icon=":material/replay:", disabled=held or run["status"] in ("queued", "running")
    ):
        done = runs_view.checkpoint_epochs(store, run_id)
        target = jobs.resume_target(store, run_id)  # None for a completed run: offer 5 more epochs
        more = st.number_input(
            "Train until epoch", min_value=1, value=target or max(done or [0]) + 5, step=1, key="runs.resume_epochs"
        )
        if st.button("Resume in the background", key="runs.resume", type="primary", disabled=held) and not held:
            with ui.guard():
                run_actions.resume(store, run_id, epochs=int(more) if more > max(done or [0]) else None)
                st.success("Queued: watch it on the Train page.")
    with actions[3].popover(
        "Delete", icon=":material/delete:", disabled=held or run["status"] in ("queued", "running")
    ):
        st.write(f"Delete **{run_id}**, its metrics and its files? This cannot be undone.")
        sure = st.checkbox("Yes, delete it", key="runs.delete_confirm")
        if st.button("Delete run", key="runs.delete", type="primary", disabled=held or not sure) and not held:
            with ui.guard():
                run_actions.delete(store, run_id)
                st.session_state.pop(view.key("run"), None)
                st.query_params.pop("run", None)  # the next run opens the newest run, no stale-link notice
                st.rerun()

annotations = st.container(border=True)
if ui.demo():
    annotations.markdown(
        "**Tags:** "
        + (" ".join(f"`{tag}`" for tag in run.get("tags") or []) or "none")
        + (f"  \n**Note:** {run['note']}" if run.get("note") else "")
    )
else:
    if st.session_state.get("runs.annotated") != run_id:  # another run picked: its tags and note
        st.session_state["runs.annotated"] = run_id
        st.session_state["runs.tags"] = list(run.get("tags") or [])
        st.session_state["runs.note"] = run.get("note") or ""
    edit = annotations.columns([2, 3, 1], vertical_alignment="bottom")
    new_tags = edit[0].multiselect(
        "Tags",
        sorted({*all_tags, *st.session_state["runs.tags"]}),
        accept_new_options=True,
        key="runs.tags",
        placeholder="type a tag, Enter to add",
    )
    note = edit[1].text_area(
        "Note", key="runs.note", height=68, placeholder="what this run tried, what it showed"
    )
    if edit[2].button("Save", key="runs.save_annotations", icon=":material/save:"):
        with ui.guard():
            st.session_state["runs.saved_tags"] = run_actions.save_annotations(store, run_id, new_tags, note)
            st.session_state["runs.annotated"] = None  # reload them as stored (tags normalised)
            st.rerun()
    if "runs.saved_tags" in st.session_state:
        st.session_state.pop("runs.saved_tags")
        annotations.success("Tags and note saved.", icon=":material/check:")

tabs = st.tabs(
    runs_view.RUN_TABS,
    key=view.bind(Param("tab", str, runs_view.RUN_TABS[0], choices=runs_view.RUN_TABS)),
    on_change="rerun",
)
with tabs[0]:
    table = store.metric_table(run_id, "epoch")
    if not table["step"]:
        table = store.metric_table(run_id, "step")
    losses, others = runs_view.loss_and_accuracy(runs_view.metric_names(table))
    cols = st.columns(2)
    if losses:
        cols[0].plotly_chart(
            figures.curves(table, losses, x="epoch", title=f"{run_id}: losses", y_title="loss"),
            key="runs.loss",
        )
    if others:
        cols[1].plotly_chart(
            figures.curves(table, others, x="epoch", title=f"{run_id}: metrics", y_title="value"),
            key="runs.metrics",
        )
    if not losses and not others:
        st.caption("No metrics logged yet.")
    pairs = restore_view.quality_curves(store.metric_table(run_id, "epoch")) if run["family"] == "restoration" else []
    for column, pair in zip(st.columns(max(1, len(pairs))), pairs, strict=False):  # model against the baseline
        column.plotly_chart(
            figures.curves(store.metric_table(run_id, "epoch"), pair, x="epoch", title=f"{pair[0]} vs baseline",
                           height=260),
            key=f"runs.quality.{pair[0]}",
        )

with tabs[1]:
    scores = {
        name: metrics[name]
        for name in ("test_accuracy", "test_loss", *runs_view.GAN_SCORES, *restore_view.SCORES)
        if isinstance(metrics.get(name), (int, float))
    }
    if scores:
        for column, (name, value) in zip(st.columns(len(scores)), scores.items(), strict=True):
            column.metric(name, f"{value:.1%}" if "accuracy" in name else f"{value:.4g}")
    reference = runs_view.reference_note(store, run)
    if reference:
        st.caption(reference)
    if run["family"] == "classifier":
        matrix = metrics.get("confusion_matrix")
        names = (run["config"].get("data") or {}).get("class_names") or []
        if matrix and len(names) == len(matrix):
            cols = st.columns(2)
            cols[0].plotly_chart(figures.confusion_matrix(matrix, names), key="runs.confusion")
            cols[1].plotly_chart(
                figures.per_class_accuracy(runs_view.per_class_accuracy(matrix), names), key="runs.per_class"
            )
            cells = runs_view.confusion_cells(matrix, names)
            cell_keys = [runs_view.cell_key(cell["true"], cell["predicted"]) for cell in cells]
            if cells and checkpoint is not None:
                labels = {
                    runs_view.cell_key(cell["true"], cell["predicted"]): cell["label"] for cell in cells
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
                    indices = runs_view.misclassified(y_test, predictions, true_index, predicted)
                    data = ui.load_dataset(run["dataset"], run["config"].get("image_size"))
                    if len(indices):
                        ui.image(
                            datasets_view.grid_image(data.x_test[indices[:64]], min_side=96),
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
        samples = runs_view.sample_epochs(store.run_dir(run_id))
        if samples:
            epochs = list(samples)
            epoch = st.select_slider(
                "Before/after time-lapse: epoch" if run["family"] == "restoration" else "Sample time-lapse: epoch",
                epochs,
                key=view.bind(Param("epoch", int).with_choices(epochs, default=epochs[-1])),
            )
            ui.image(
                datasets_view.enlarge(load_png(samples[epoch]), 360),
                caption=f"{run_id}: "
                + ("degraded | baseline | model | original" if run["family"] == "restoration"
                   else "the same latent vectors") + f" after epoch {epoch}",
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
