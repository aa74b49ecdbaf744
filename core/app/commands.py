"""The CLI's commands: each takes the parsed arguments and returns an exit status (``core.app.cli`` parses)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from typing import Any

from core.app.cli_base import EXIT_FAILED, EXIT_OK, config_from_args, emit_json, log_to
from core.app.export import export_run
from core.common.errors import UserError
from core.evaluation import sampling
from core.runs import jobs, training
from core.runs.evaluation import evaluate_run
from core.runs.inference import classify_files
from core.runs.restore import restore_file
from core.store.store import STATUSES, RunStore, normalise_tags
from core.training.callbacks import ProgressBar


def _store(args):
    store = RunStore(args.home)
    jobs.dispatch(store)  # a slot freed by a killed trainer goes to the next queued run now
    return store


def cmd_train(args) -> int:
    config = config_from_args(args)
    store = _store(args)
    if args.background:
        run_id = jobs.launch(config, store)
        run = store.describe(run_id)
        if args.json:
            emit_json({"run_id": run_id, "status": run["status"]})
        else:
            print(run_id)
        return EXIT_OK

    callbacks = [] if args.json else [ProgressBar()]
    run = training.train(config, store=store, extra_callbacks=callbacks)
    return _report_finished(run, args.json)


def _report_finished(run: dict[str, Any], as_json: bool) -> int:
    metrics = run["metrics"] or {}
    if as_json:
        emit_json({
            "run_id": run["run_id"], "status": run["status"], "error": run["error"],
            "metrics": {k: v for k, v in metrics.items() if k not in ("seconds", "images_per_second")},
            "seconds": metrics.get("seconds"), "images_per_second": metrics.get("images_per_second"),
        })
    else:
        print(f"{run['run_id']}: {run['status']}" + (f" ({run['error']})" if run["error"] else ""))
        for key, value in _headline(metrics).items():
            print(f"  {key}: {value}")
    return EXIT_OK if run["status"] in ("completed", "stopped") else EXIT_FAILED


_HEADLINE = ("test_accuracy", "test_loss", "fid_cls", "kid_cls", "precision", "recall", "label_accuracy",
             "d_loss", "g_loss", "psnr", "baseline_psnr", "ssim", "baseline_ssim", "hole_psnr",
             "baseline_hole_psnr", "classifier_accuracy_clean", "classifier_accuracy_degraded",
             "classifier_accuracy_restored", "seconds", "images_per_second")


def _headline(metrics: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key in _HEADLINE:
        value = metrics.get(key)
        if isinstance(value, (int, float)):
            out[key] = f"{value:.4g}"
    if isinstance(metrics.get("reference_run"), str):  # the classifier whose features fid_cls uses
        out["reference_run"] = metrics["reference_run"]
    return out


def cmd_runs(args) -> int:
    if args.status is not None and args.status not in STATUSES:
        raise UserError(f"unknown status {args.status!r}: one of {', '.join(STATUSES)}")
    store = _store(args)
    jobs.reconcile(store)
    runs = [store.describe(run["run_id"]) for run in store.list_runs(status=args.status, tag=args.tag)]
    if args.json:
        emit_json({"runs": runs})
        return EXIT_OK
    if not runs:
        if args.status or args.tag:
            print(f"no runs in {store.home} match")
        else:
            print(f"no runs in {store.home} yet: try `python -m core train --model convnet --dataset digits`")
        return EXIT_OK
    rows = []
    for run in runs:
        progress = run["progress"] or {}
        done = f"{progress.get('epoch', 0)}/{progress.get('epochs', run['config'].get('epochs', '?'))}"
        rows.append([run["run_id"], run["status"], run["model"], _clip(run["dataset"], 24), done,
                     _key_metric(run["metrics"]), run["device"] or "", ",".join(run["gpus"]), ",".join(run["tags"])])
    header = ["RUN", "STATUS", "MODEL", "DATASET", "PROGRESS", "KEY METRIC", "DEVICE", "GPUS", "TAGS"]
    if not any(run["gpus"] for run in runs):  # a CPU-only store keeps today's columns
        header, rows = header[:7] + header[8:], [row[:7] + row[8:] for row in rows]
    _print_table(header, rows)
    return EXIT_OK


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    """Columns as wide as their longest cell, two spaces apart, no trailing blanks."""
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _key_metric(metrics: dict[str, Any]) -> str:
    for key in ("test_accuracy", "val_accuracy", "fid_cls", "psnr", "accuracy", "g_loss"):
        value = metrics.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return f"{key}={value:.4g}"
    return ""


def cmd_show(args) -> int:
    store = _store(args)
    jobs.reconcile(store)
    run = store.describe(store.resolve(args.run))
    if args.json:
        if args.history:
            run["history"] = {scope: store.metric_table(run["run_id"], scope) for scope in ("step", "epoch")}
        emit_json(run)
        return EXIT_OK
    for key in ("run_id", "status", "error", "model", "dataset", "seed", "device", "created", "started",
                "finished", "pid", "code_version"):
        if run.get(key) is not None:
            print(f"{key:13} {run[key]}")
    if run["gpus"]:
        print(f"{'gpus':13} {', '.join(run['gpus'])}")
    if run["tags"]:
        print(f"{'tags':13} {', '.join(run['tags'])}")
    if run["note"]:
        print(f"{'note':13} " + run["note"].replace("\n", "\n" + " " * 14))  # later lines under the first
    progress = run["progress"] or {}
    if progress:
        # A stopped or finished run keeps its last progress record; its ETA means nothing any more.
        eta = progress.get("eta_seconds") if run["status"] == "running" else None
        print(f"{'progress':13} epoch {progress.get('epoch')}/{progress.get('epochs')}, step {progress.get('step')}"
              f"/{progress.get('total_steps')}" + (f", ETA {eta:.0f} s" if eta else ""))
    print("config       ", json.dumps(run["config"]))
    for key, value in _headline(run["metrics"]).items():
        print(f"{key:13} {value}")
    return EXIT_OK


def cmd_evaluate(args) -> int:
    store = _store(args)
    run_id = store.resolve(args.run)
    metrics = evaluate_run(store, run_id)
    if args.json:
        emit_json({"run_id": run_id, "metrics": metrics})
    else:
        for key, value in _headline(metrics).items():
            print(f"{key:15} {value}")
    return EXIT_OK


def cmd_classify(args) -> int:
    store = _store(args)
    run_id = store.resolve(args.run)
    results = classify_files(store, run_id, args.images, top_k=args.top_k, epoch=args.epoch)
    if args.json:
        emit_json({"run_id": run_id, "results": results})
        return EXIT_OK
    for result in results:
        top = ", ".join(f"{c['class_name']} {c['probability']:.1%}" for c in result["top"])
        print(f"{result['image']}: {top}")
        if result.get("unusual"):
            print(f"  unusual: {result['unusual_reason']}; the label is a guess")
        for note in result.get("notes", []):
            print(f"  note: {note}")
    return EXIT_OK


def cmd_sample(args) -> int:
    store = _store(args)
    run_id = store.resolve(args.run)
    if store.get_run(run_id)["family"] == "classifier":
        raise UserError(f"run {run_id} is a classifier, not a GAN: `sample` draws images from a GAN run; to label images "
                        f"with this one use `python -m core classify {run_id} IMAGE...`")
    result = sampling.sample_run(store, run_id, n=args.n, seed=args.seed, label=args.label,
                                 truncation=args.truncation, epoch=args.epoch, out=args.out)
    if args.json:
        emit_json(result)
    else:
        print(f"wrote {result['out']} ({result['n']} images from {run_id}, epoch {result['epoch']}, seed {result['seed']})")
    return EXIT_OK


def cmd_export(args) -> int:
    store = _store(args)
    run_id = store.resolve(args.run)
    result = export_run(store, run_id, args.out, format=args.format, epoch=args.epoch)
    if args.json:
        emit_json(result)
    else:
        print(f"wrote {result['out']} ({result['model']} of {run_id}, {result['checkpoint']}, {result['format']}; "
              f"outputs within {result['max_difference']:.1g} of the checkpoint's)")
    return EXIT_OK


def cmd_restore(args) -> int:
    store = _store(args)
    run_id = store.resolve(args.run)
    result = restore_file(store, run_id, args.input, args.out, mask=args.mask, epoch=args.epoch, seed=args.seed)
    if args.json:
        emit_json(result)
    else:
        size = "x".join(map(str, result["output_size"]))
        print(f"wrote {result['out']} ({size}, {result['task']} by {result['method']} of {run_id})")
    return EXIT_OK


def cmd_stop(args) -> int:
    store = _store(args)
    run_id = store.resolve(args.run)
    started = time.monotonic()
    run = jobs.stop(store, run_id)
    seconds = time.monotonic() - started
    if args.json:
        emit_json({"run_id": run_id, "status": run["status"], "seconds": seconds})
    else:
        print(f"{run_id}: {run['status']} after {seconds:.1f} s")
    return EXIT_OK


def cmd_resume(args) -> int:
    store = _store(args)
    run_id = store.resolve(args.run)
    run = jobs.resume(store, run_id, epochs=args.epochs, background=args.background)
    if args.background:
        if args.json:
            emit_json({"run_id": run_id, "status": run["status"]})
        else:
            print(run_id)
        return EXIT_OK
    return _report_finished(store.describe(run_id), args.json)


def cmd_cancel(args) -> int:
    store = _store(args)
    run = jobs.cancel(store, store.resolve(args.run))
    if args.json:
        emit_json({"run_id": run["run_id"], "status": run["status"]})
    else:
        print(f"{run['run_id']}: {run['status']}")
    return EXIT_OK


def cmd_delete(args) -> int:
    store = _store(args)
    run_id = store.resolve(args.run)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UserError("delete needs --yes when not run interactively")
        if input(f"delete run {run_id} and its files? [y/N] ").strip().lower() != "y":
            print("kept")
            return EXIT_OK
    store.delete_run(run_id)
    print(f"deleted {run_id}")
    return EXIT_OK


def cmd_logs(args) -> int:
    store = _store(args)
    run_id = store.resolve(args.run)
    if args.follow:
        jobs.follow_log(store, run_id)
        return EXIT_OK
    text = jobs.read_log(store, run_id)
    if not text:
        print(f"run {run_id} has no log (runs trained in the foreground print to their terminal)", file=sys.stderr)
    sys.stdout.write(text)
    return EXIT_OK


def cmd_tag(args) -> int:
    store = _store(args)
    run_id = store.resolve(args.run)
    names = normalise_tags(args.tags)  # every tag checked before any is written
    for name in names:
        tags = store.remove_tag(run_id, name) if args.remove else store.add_tag(run_id, name)
    if args.json:
        emit_json({"run_id": run_id, "tags": tags})
    else:
        print(f"{run_id}: {', '.join(tags) if tags else 'no tags'}")
    return EXIT_OK


def cmd_note(args) -> int:
    store = _store(args)
    run_id = store.resolve(args.run)
    if args.text:
        store.set_note(run_id, " ".join(args.text))
    note = store.get_run(run_id)["note"]
    if args.json:
        emit_json({"run_id": run_id, "note": note})
    elif args.text:
        print(f"{run_id}: " + ("note saved" if note else "note cleared"))
    else:
        print(note or f"{run_id} has no note")
    return EXIT_OK


def cmd_bench(args) -> int:
    # The benchmark lives outside the library (the top-level `bench` package): run it as its own process.
    flags = ["--quick"] * args.quick + ["--json"] * args.json + (["--dataset", args.dataset] if args.dataset else [])
    return subprocess.call([sys.executable, "-m", "bench", *flags])


def cmd_worker(args) -> int:
    log_to("stdout", "%(asctime)s %(message)s")  # the run's train.log: every line timed
    store = _store(args)
    run = jobs.work(store, args.run)
    return EXIT_OK if run["status"] in ("completed", "stopped") else EXIT_FAILED


COMMANDS = {
    "train": cmd_train, "runs": cmd_runs, "show": cmd_show,
    "evaluate": cmd_evaluate, "classify": cmd_classify, "sample": cmd_sample, "restore": cmd_restore, "stop": cmd_stop,
    "resume": cmd_resume, "cancel": cmd_cancel, "delete": cmd_delete, "logs": cmd_logs,
    "bench": cmd_bench, "worker": cmd_worker, "tag": cmd_tag, "note": cmd_note,
    "export": cmd_export,
}
