"""``python -m core``: the command-line front end.

Exit status: 0 on success, 1 when a run fails, 2 on bad input or usage (one line on stderr,
never a traceback). With ``--json`` the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import core  # noqa: F401 - selects the JAX backend before anything imports keras
from core.errors import TrainingFailed, UserError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits with status 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core", description="ConvGAN Studio: train, watch and use ConvNets and GANs.")
    parser.add_argument("--home", help="run store folder (default: $CONVGAN_HOME or ~/.convgan)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text)

    p = command("datasets", "list datasets and whether they are available")
    p.add_argument("--json", action="store_true")

    p = command("train", "train a classifier, a GAN or a restoration model")
    p.add_argument("--model", required=True, help="convnet | resnet | dcgan | cgan | wgan-gp | espcn | unet | pix2pix")
    p.add_argument("--dataset", default=None, help="digits | mnist | fashion_mnist | cifar10 | celeba | folder:PATH | zip:PATH | npz:PATH")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, dest="learning_rate")
    p.add_argument("--seed", type=int)
    p.add_argument("--image-size", type=int, help="resize folder/zip/celeba images to this square size")
    p.add_argument("--latent-dim", type=int, help="GANs: size of the latent vector")
    p.add_argument("--no-augment", action="store_true", help="classifiers: no data augmentation")
    p.add_argument("--mixed-precision", action="store_true", help="bfloat16 compute (GPU only)")
    p.add_argument("--task", help="restoration (espcn | unet | pix2pix): super-resolution | inpaint | denoise")
    p.add_argument("--scale", type=int, help="super-resolution factor: 2 or 4")
    p.add_argument("--mask", help="inpaint holes: center | boxes | strokes")
    p.add_argument("--noise", type=float, help="denoise: Gaussian sigma as a fraction of the pixel range")
    p.add_argument("--width", type=int, help="restoration: channels of the first level")
    p.add_argument("--train-images", type=int, help="restoration: training pairs per epoch (default: all)")
    p.add_argument("--background", action="store_true", help="queue as a background job and print its id")
    p.add_argument("--json", action="store_true")

    p = command("restore", "restore an image with a restoration run, or inpaint it with a dcgan/wgan-gp run")
    p.add_argument("run")
    p.add_argument("input", metavar="INPUT", help="image file")
    p.add_argument("--out", default="restored.png", help="PNG to write")
    p.add_argument("--mask", help="inpaint: MASK.png of the input's size (white = hole) or 'center'")
    p.add_argument("--epoch", type=int, help="checkpoint after this many epochs (default: latest)")
    p.add_argument("--seed", type=int, default=0, help="GAN-prior: seed of the starting latents")
    p.add_argument("--json", action="store_true")

    p = command("runs", "list runs, newest first")
    p.add_argument("--status", help="only runs with this status")
    p.add_argument("--json", action="store_true")

    for name, text in (("show", "show one run"), ("evaluate", "evaluate a run's latest checkpoint on its test data")):
        p = command(name, text)
        p.add_argument("run", help="run id, unique prefix, or 'latest'")
        p.add_argument("--json", action="store_true")
        if name == "show":
            p.add_argument("--history", action="store_true", help="with --json: every logged metric, by step")

    p = command("classify", "classify image files with a classifier run")
    p.add_argument("run")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--epoch", type=int, help="checkpoint after this many epochs (default: latest)")
    p.add_argument("--json", action="store_true")

    p = command("sample", "generate images with a GAN run")
    p.add_argument("run")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", type=int, help="class to generate (cgan)")
    p.add_argument("--truncation", type=float, help="truncation threshold for the latents, e.g. 1.0")
    p.add_argument("--epoch", type=int, help="checkpoint after this many epochs (default: latest)")
    p.add_argument("--out", default="samples.png", help="grid PNG to write")
    p.add_argument("--json", action="store_true")

    p = command("stop", "stop a running run gracefully (checkpoint saved); cancels a queued one")
    p.add_argument("run")
    p.add_argument("--json", action="store_true")

    p = command("resume", "continue a stopped, interrupted or failed run from its last checkpoint")
    p.add_argument("run")
    p.add_argument("--epochs", type=int, help="new total number of epochs")
    p.add_argument("--background", action="store_true")
    p.add_argument("--json", action="store_true")

    p = command("cancel", "take a queued run off the queue")
    p.add_argument("run")
    p.add_argument("--json", action="store_true")

    p = command("delete", "delete a finished run and its files")
    p.add_argument("run")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = command("logs", "print a run's training log")
    p.add_argument("run")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the run ends")

    p = command("devices", "list the devices JAX sees")
    p.add_argument("--json", action="store_true")

    p = command("bench", "time our training against PyTorch's on this machine (needs requirements-bench.txt)")
    p.add_argument("--quick", action="store_true", help="short rounds, no time-to-accuracy runs (about a minute)")
    p.add_argument("--dataset", help="data for the throughput rounds (default: fashion_mnist if installed, else digits)")
    p.add_argument("--json", action="store_true", help="print only the JSON object (the table goes to stderr)")

    p = command("worker", argparse.SUPPRESS)
    p.add_argument("run")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingFailed as err:
        print(f"failed: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _store(args):
    from core.store import RunStore

    return RunStore(args.home)


def _emit_json(payload: Any) -> None:
    print(json.dumps(payload, default=_json_default))


def _json_default(value: Any):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ---- commands ---------------------------------------------------------------------------------


def cmd_datasets(args) -> int:
    from core.datasets import list_datasets

    infos = list_datasets()
    if args.json:
        _emit_json([_dataclass_dict(info) for info in infos])
        return EXIT_OK
    for info in infos:
        shape = "x".join(map(str, info.image_shape)) if info.image_shape else "?"
        state = "available" if info.available else "missing"
        print(f"{info.name:15} {state:10} {shape:9} {len(info.class_names or ()):3} classes  {info.description}")
        if not info.available:
            print(f"{'':15} how to get it: {info.how_to_get}")
    print("custom: folder:PATH | zip:PATH | npz:PATH (one sub-folder per class, or flat for GANs)")
    return EXIT_OK


def _dataclass_dict(obj) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else dict(obj)


def _config_from_args(args):
    from core.config import config_for

    overrides = {
        "dataset": args.dataset, "epochs": args.epochs, "batch_size": args.batch_size,
        "learning_rate": args.learning_rate, "seed": args.seed, "image_size": args.image_size,
        "mixed_precision": True if args.mixed_precision else None,
    }
    if args.latent_dim is not None:
        overrides["latent_dim"] = args.latent_dim
    for name in ("task", "scale", "mask", "noise", "width", "train_images"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.no_augment:
        overrides["augment"] = False
    return config_for(args.model, **overrides)


def cmd_train(args) -> int:
    config = _config_from_args(args)
    store = _store(args)
    if args.background:
        from core import jobs

        run_id = jobs.launch(config, store)
        run = store.describe(run_id)
        if args.json:
            _emit_json({"run_id": run_id, "status": run["status"]})
        else:
            print(run_id)
        return EXIT_OK
    from core import training
    from core.callbacks import ProgressBar

    callbacks = [] if args.json else [ProgressBar()]
    run = training.train(config, store=store, extra_callbacks=callbacks)
    return _report_finished(run, args.json)


def _report_finished(run: dict[str, Any], as_json: bool) -> int:
    metrics = run["metrics"] or {}
    if as_json:
        _emit_json({
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
    from core import jobs

    store = _store(args)
    jobs.reconcile(store)
    runs = [store.describe(run["run_id"]) for run in store.list_runs(status=args.status)]
    if args.json:
        _emit_json(runs)
        return EXIT_OK
    if not runs:
        print(f"no runs in {store.home} yet: try `python -m core train --model convnet --dataset digits`")
        return EXIT_OK
    print(f"{'RUN':38} {'STATUS':11} {'MODEL':8} {'DATASET':16} {'PROGRESS':9} {'KEY METRIC':20} DEVICE")
    for run in runs:
        progress = run["progress"] or {}
        done = f"{progress.get('epoch', 0)}/{progress.get('epochs', run['config'].get('epochs', '?'))}"
        key = _key_metric(run["metrics"])
        print(f"{run['run_id']:38} {run['status']:11} {run['model']:8} {run['dataset'][:16]:16} {done:9} {key:20} {run['device'] or ''}")
    return EXIT_OK


def _key_metric(metrics: dict[str, Any]) -> str:
    for key in ("test_accuracy", "val_accuracy", "fid_cls", "psnr", "accuracy", "g_loss"):
        value = metrics.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return f"{key}={value:.4g}"
    return ""


def cmd_show(args) -> int:
    from core import jobs

    store = _store(args)
    jobs.reconcile(store)
    run = store.describe(store.resolve(args.run))
    if args.json:
        if args.history:
            run["history"] = {scope: store.metric_table(run["run_id"], scope) for scope in ("step", "epoch")}
        _emit_json(run)
        return EXIT_OK
    for key in ("run_id", "status", "error", "model", "dataset", "seed", "device", "created", "started",
                "finished", "pid", "code_version"):
        if run.get(key) is not None:
            print(f"{key:13} {run[key]}")
    progress = run["progress"] or {}
    if progress:
        eta = progress.get("eta_seconds")
        print(f"{'progress':13} epoch {progress.get('epoch')}/{progress.get('epochs')}, step {progress.get('step')}"
              f"/{progress.get('total_steps')}" + (f", ETA {eta:.0f} s" if eta else ""))
    print("config       ", json.dumps(run["config"]))
    for key, value in _headline(run["metrics"]).items():
        print(f"{key:13} {value}")
    return EXIT_OK


def cmd_evaluate(args) -> int:
    from core.evaluation import evaluate_run

    store = _store(args)
    run_id = store.resolve(args.run)
    metrics = evaluate_run(store, run_id)
    if args.json:
        _emit_json({"run_id": run_id, "metrics": metrics})
    else:
        for key, value in _headline(metrics).items():
            print(f"{key:15} {value}")
    return EXIT_OK


def cmd_classify(args) -> int:
    from core.inference import classify_files

    store = _store(args)
    run_id = store.resolve(args.run)
    results = classify_files(store, run_id, args.images, top_k=args.top_k, epoch=args.epoch)
    if args.json:
        _emit_json({"run_id": run_id, "results": results})
        return EXIT_OK
    for result in results:
        top = ", ".join(f"{c['class_name']} {c['probability']:.1%}" for c in result["top"])
        print(f"{result['image']}: {top}")
        for note in result.get("notes", []):
            print(f"  note: {note}")
    return EXIT_OK


def cmd_sample(args) -> int:
    from core import sampling

    store = _store(args)
    run_id = store.resolve(args.run)
    result = sampling.sample_run(store, run_id, n=args.n, seed=args.seed, label=args.label,
                                 truncation=args.truncation, epoch=args.epoch, out=args.out)
    if args.json:
        _emit_json(result)
    else:
        print(f"wrote {result['out']} ({result['n']} images from {run_id}, epoch {result['epoch']}, seed {result['seed']})")
    return EXIT_OK


def cmd_restore(args) -> int:
    from core.restore import restore_file

    store = _store(args)
    run_id = store.resolve(args.run)
    result = restore_file(store, run_id, args.input, args.out, mask=args.mask, epoch=args.epoch, seed=args.seed)
    if args.json:
        _emit_json(result)
    else:
        size = "x".join(map(str, result["output_size"]))
        print(f"wrote {result['out']} ({size}, {result['task']} by {result['method']} of {run_id})")
    return EXIT_OK


def cmd_stop(args) -> int:
    from core import jobs

    store = _store(args)
    run_id = store.resolve(args.run)
    started = time.monotonic()
    run = jobs.stop(store, run_id)
    seconds = time.monotonic() - started
    if args.json:
        _emit_json({"run_id": run_id, "status": run["status"], "seconds": seconds})
    else:
        print(f"{run_id}: {run['status']} after {seconds:.1f} s")
    return EXIT_OK


def cmd_resume(args) -> int:
    from core import jobs

    store = _store(args)
    run_id = store.resolve(args.run)
    run = jobs.resume(store, run_id, epochs=args.epochs, background=args.background)
    if args.background:
        if args.json:
            _emit_json({"run_id": run_id, "status": run["status"]})
        else:
            print(run_id)
        return EXIT_OK
    return _report_finished(store.describe(run_id), args.json)


def cmd_cancel(args) -> int:
    from core import jobs

    store = _store(args)
    run = jobs.cancel(store, store.resolve(args.run))
    if args.json:
        _emit_json({"run_id": run["run_id"], "status": run["status"]})
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
    from core import jobs

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


def cmd_devices(args) -> int:
    from core.devices import list_devices

    devices = list_devices()
    if args.json:
        _emit_json(devices)
        return EXIT_OK
    for device in devices:
        memory = device.get("memory_bytes")
        size = f"{memory / 2**30:.1f} GiB" if memory else ""
        print(f"{device['id']:3} {device['platform']:5} {device['kind']:30} {size}")
    return EXIT_OK


def cmd_bench(args) -> int:
    from core import bench

    settings = bench.BenchSettings.quick() if args.quick else bench.BenchSettings()
    progress = sys.stderr if args.json else sys.stdout
    results = bench.run_benchmark(settings, dataset=args.dataset,
                                  log=lambda line: print(line, file=progress, flush=True))
    print(bench.format_table(results), file=progress)
    _emit_json(results)
    return EXIT_OK


def cmd_worker(args) -> int:
    from core import jobs

    store = _store(args)
    run = jobs.work(store, args.run)
    return EXIT_OK if run["status"] in ("completed", "stopped") else EXIT_FAILED


_COMMANDS = {
    "datasets": cmd_datasets, "train": cmd_train, "runs": cmd_runs, "show": cmd_show,
    "evaluate": cmd_evaluate, "classify": cmd_classify, "sample": cmd_sample, "restore": cmd_restore, "stop": cmd_stop,
    "resume": cmd_resume, "cancel": cmd_cancel, "delete": cmd_delete, "logs": cmd_logs,
    "devices": cmd_devices, "bench": cmd_bench, "worker": cmd_worker,
}
