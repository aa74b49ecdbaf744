"""Train: pick a model and a dataset, set hyperparameters (defaults from core.common.config), launch a
background job, and watch running and queued jobs live."""

import streamlit as st

from core.app import datasets_view, demo_limits, figures, restore_view, run_actions, runs_view, train_view
from core.app.share import Param
from core.common.config import (
    CLASSIFIER_MODELS,
    GAN_MODELS,
    RESTORATION_MODELS,
    config_for,
    restoration_preset,
)
from core.common.errors import RunNotFound
from core.common.images import load_png
from core.runs import jobs
from core.training.classifier import recommended_settings
from pages import ui

ui.header("Train")
view = ui.View("train")
store = ui.store()

MODELS = {"classifier": CLASSIFIER_MODELS, "gan": GAN_MODELS, "restoration": RESTORATION_MODELS}
FAMILY_LABELS = {"classifier": "ConvNet classifier", "gan": "GAN", "restoration": "Restoration"}
with ui.guard(stop=True):
    infos = {info.name: info for info in ui.list_datasets()}
    specs = [spec for spec in ui.dataset_specs() if spec not in infos or infos[spec].available]

if not ui.demo():
    top = st.columns(3)
    task = top[0].segmented_control(
        "Task",
        list(MODELS),
        required=True,
        format_func=FAMILY_LABELS.get,
        key=view.bind(Param("task", str, "classifier", choices=tuple(MODELS))),
    )
    model = top[1].selectbox(
        "Model", MODELS[task], key=view.bind(Param("model", str).with_choices(MODELS[task]))
    )
    dataset = top[2].selectbox(
        "Dataset",
        specs,
        format_func=datasets_view.dataset_label,
        key=view.bind(Param("dataset", str, "digits").with_choices(specs)),
    )
    restoring = task == "restoration"
    options = {}  # the restoration task and the one option it uses (scale, mask or noise)
    if restoring:
        row = st.columns(4)
        restore_task = row[0].selectbox(
            "Restoration task", restore_view.TASK_OPTIONS, key=view.bind(restore_view.TASK_PARAM)
        )
        options["task"] = restore_task
        for param in restore_view.task_params(restore_task):
            if param.kind is float:
                label, help_text = restore_view.FIELD_HELP[param.name]
                options[param.name] = row[1].number_input(label, help=help_text, format="%g", step=0.05,
                                                          key=view.bind(param))
            else:
                label = {"scale": "Scale", "mask": "Mask"}[param.name]
                options[param.name] = row[1].selectbox(label, param.choices, key=view.bind(param))
    recipe = recommended_settings(dataset, model) if task == "classifier" else {}
    if restoring:  # config_for starts from the preset measured for this task, if any
        recipe = restoration_preset(dataset, model, options["task"])
    defaults = config_for(model, dataset=dataset, **recipe, **({"task": options["task"]} if restoring else {}))
    gpu = bool(ui.devices()) and ui.devices()[0]["platform"] != "cpu"
    form = restore_view if restoring else train_view
    params = [*form.form_params(defaults, mixed_precision=gpu), *train_view.gpu_params(defaults, ui.gpu_ids())]
    form_for = (model, dataset, options.get("task"))
    if st.session_state.get("train.form_for", form_for) != form_for:
        for param in params:  # new defaults: forget old entries (a link's values count once)
            view.set(param.name, param.default, chosen=False)
    st.session_state["train.form_for"] = form_for

    # No st.form: a form submits on Enter, and its values reach the URL only when submitted.
    with st.container(border=True):
        st.caption(
            f"Defaults of `{model}` from core.common.config"
            + (" with the settings measured for this dataset" if recipe else "")
            + "; change what you like."
        )
        values = {}
        columns = st.columns(4)
        for index, param in enumerate(params):
            key = view.bind(param)
            if param.name == "mixed_precision":
                values[param.name] = st.checkbox("Mixed precision (bfloat16)", key=key)
                continue
            label, help_text = {**train_view.FIELD_HELP, **restore_view.FIELD_HELP}[param.name]
            column = columns[index % 4]
            if param.kind is bool:
                values[param.name] = column.checkbox(label, help=help_text, key=key)
            elif param.kind is int:
                values[param.name] = column.number_input(label, step=1, help=help_text, key=key)
            else:
                values[param.name] = column.number_input(
                    label, help=help_text, key=key, format="%g", step=None
                )
        held = view.unconfirmed("Launch")
        launch = st.button(
            "Launch",
            type="primary",
            icon=":material/play_arrow:",
            key="train.launch",
            disabled=bool(held),
            help=f"pick {', '.join(held)} first: the link's value was not usable" if held else None,
        )
    if launch and not held:
        with ui.guard():
            values = restore_view.config_values({**values, **options})
            config = config_for(model, dataset=dataset, **values)
            run_id = run_actions.launch(store, config)
            st.session_state.setdefault("train.launched", []).insert(0, run_id)
            st.success(
                f"Launched {run_id}: it trains in the background (see below).", icon=":material/check:"
            )

    with ui.guard():
        info = infos.get(dataset)
        train_images = (info.splits or {}).get("train") if info else None
        if train_images is None:
            train_images = len(ui.load_dataset(dataset).x_train)
        epochs = view.value("epochs")
        guess = runs_view.estimate(store, model, dataset, int(epochs or 0), train_images)
        if guess:
            st.caption(
                f"Estimated time for {epochs} epochs on {train_images:,} images: "
                f"~{runs_view.format_seconds(guess['seconds'])} (measured {guess['images_per_second']:,.0f} "
                f"img/s over {guess['runs']} past run(s) of {model} on this dataset)"
            )
        else:
            st.caption(
                f"No past run of {model} on {datasets_view.dataset_label(dataset)} to estimate the time from: "
                "the first one measures it."
            )
else:
    st.caption(f"{demo_limits.demo_notice('train')} Running jobs are shown below.")

with st.container(border=True), ui.guard():
    names = ", ".join(train_view.device_lines(ui.devices()))
    capacity = train_view.capacity_line(ui.gpu_ids(), jobs.max_concurrent_jobs())
    st.markdown(f":material/memory: **Devices:** {names} · {capacity}")

launched = [*st.session_state.get("train.launched", []), *st.session_state.get("home.launched", [])]
poll = bool(runs_view.active_runs(store))  # refresh every 2 s only while something trains


@st.fragment(run_every=2 if poll else None)
def live_panel():
    if not ui.demo():
        jobs.reconcile(store)  # marks runs whose trainer died as interrupted
    active = runs_view.active_runs(store)
    shown = [run["run_id"] for run in active]
    for run_id in launched:
        if run_id not in shown and len(shown) < len(active) + 3:
            shown.append(run_id)
    st.subheader("Jobs")
    if not shown:
        st.caption("No run is training or queued. Launch one above.")
        return
    queue = [run["run_id"] for run in active if run["status"] == "queued"]
    for run_id in shown:
        try:
            run = store.get_run(run_id)
        except RunNotFound:  # deleted on the Runs page since it was launched here
            continue
        with ui.guard():
            run_card(run, queue)


def run_card(run, queue):
    run_id = run["run_id"]
    with st.container(border=True):
        head = st.columns([6, 1])
        head[0].markdown(f"**{run_id}** · {run['model']} on {datasets_view.dataset_label(run['dataset'])}")
        head[1].badge(run["status"], color=runs_view.STATUS_COLORS.get(run["status"], "gray"))
        position = queue.index(run_id) + 1 if run_id in queue else None
        fraction, text = runs_view.progress_line(run, position)
        st.progress(fraction, text=text)
        if run["error"]:
            (st.error if run["status"] == "failed" else st.warning)(run["error"])
        if not ui.demo() and run["status"] in ("queued", "running"):
            if run["status"] == "running" and st.button(
                "Stop", key=f"train.stop.{run_id}", icon=":material/stop:"
            ):
                with ui.guard():
                    run_actions.stop(store, run_id)
                    st.toast(f"Asked {run_id} to stop after its current step.")
            if run["status"] == "queued" and st.button(
                "Cancel", key=f"train.cancel.{run_id}", icon=":material/cancel:"
            ):
                with ui.guard():
                    run_actions.cancel(store, run_id)
        table = store.metric_table(run_id, "step")
        losses, others = runs_view.loss_and_accuracy(runs_view.metric_names(table))
        pictured = run["family"] in ("gan", "restoration")  # sample grid or before/after grid
        charts = st.columns(3 if pictured else 2)
        if losses:
            charts[0].plotly_chart(
                figures.curves(table, losses, title="loss", height=260), key=f"train.loss.{run_id}"
            )
        if others:
            charts[1].plotly_chart(
                figures.curves(table, others, title="metrics", height=260), key=f"train.acc.{run_id}"
            )
        if pictured:
            latest = runs_view.latest_sample(store.run_dir(run_id))
            if latest:
                with charts[-1]:
                    ui.image(
                        datasets_view.enlarge(load_png(latest[1]), 240),
                        caption=f"{'samples' if run['family'] == 'gan' else 'before/after'} after epoch {latest[0]}",
                    )
        with st.expander("Log"):
            st.code(runs_view.log_tail(jobs.read_log(store, run_id)) or "(no output yet)", language=None)


live_panel()
view.publish()
