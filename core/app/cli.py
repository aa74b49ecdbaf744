"""``convgan`` (or ``python -m core``): the command-line front end.

Exit status: 0 on success, 1 when a run fails, 2 on bad input or usage (one line on stderr,
never a traceback), 141 when whatever reads stdout stops early (``runs | head``), silently, as
Unix tools that die of SIGPIPE do. With ``--json`` stdout is one JSON object on one line; diagnostics
(the ``core`` loggers) go to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import subprocess
import sys
import time
import typing
from pathlib import Path
from typing import Any

import core  # selects the JAX backend before anything imports keras
from core.common.config import ClassifierConfig, GANConfig, RestorationConfig
from core.common.errors import TrainingFailed, UserError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a tool killed by SIGPIPE


class _CurrentStream(logging.StreamHandler):
    """Writes to whatever ``sys.stdout``/``sys.stderr`` is when a record comes (redirected or captured)."""

    def __init__(self, name: str):
        self.name_of_stream = name
        super().__init__()

    @property
    def stream(self):
        return getattr(sys, self.name_of_stream)

    @stream.setter
    def stream(self, value):  # the stream is looked up at each record instead
        pass


def log_to(stream: str, fmt: str = "%(message)s") -> None:
    """Show the library's diagnostics (the ``core`` loggers, INFO and up) on ``sys.<stream>``, one line each.

    Args:
        stream: ``"stderr"`` (commands: their output stays alone on stdout) or ``"stdout"``.
        fmt: a ``logging.Formatter`` format; ``%(asctime)s`` is shown as ``2026-01-31 12:00:00``.
    """
    logger = logging.getLogger("core")
    for old in [handler for handler in logger.handlers if isinstance(handler, _CurrentStream)]:
        logger.removeHandler(old)  # main() may run more than once in a process
    handler = _CurrentStream(stream)
    handler.setFormatter(logging.Formatter(fmt, datefmt="%Y-%m-%d %H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits with status 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


JSON_HELP = "print one JSON object instead of text"
RUN_HELP = "run id, unique prefix, or 'latest'"
CONFIG_CLASSES = {"classifiers": ClassifierConfig, "GANs": GANConfig, "restoration": RestorationConfig}  # each family's config: train's options
OPTION_ALIASES = {"learning_rate": ("--lr",)}  # short spellings kept from earlier versions


def program_name() -> str:
    """How the user started the CLI: ``convgan`` (the installed command) or ``python -m core``."""
    return "convgan" if Path(sys.argv[0]).name == "convgan" else "python -m core"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=program_name(), description="ConvGAN Studio: train, watch and use ConvNets and GANs.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {core.__version__}",
                        help="print the version and exit")
    parser.add_argument("--home", help="run store folder (default: $CONVGAN_HOME or ~/.convgan)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND",
                                help="what to do; `COMMAND --help` gives its options")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text)

    p = command("datasets", "list datasets and whether they are available")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = command("train", "train a classifier, a GAN or a restoration model")
    p.epilog = ("Options left out take the model's defaults; a classifier's start from its data set's recipe "
                "(core.common.config.recommended_settings). An option of the other family is an error.")
    add_config_options(p)
    p.add_argument("--background", action="store_true", help="queue as a background job and print its id")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = command("restore", "restore an image with a restoration run, or inpaint it with a dcgan/wgan-gp run")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("input", metavar="INPUT", help="image file")
    p.add_argument("--out", default="restored.png", help="PNG to write")
    p.add_argument("--mask", help="inpaint: MASK.png of the input's size (white = hole) or 'center'")
    p.add_argument("--epoch", type=int, help="checkpoint after this many epochs (default: latest)")
    p.add_argument("--seed", type=int, default=0, help="GAN-prior: seed of the starting latents")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = command("runs", "list runs, newest first")
    p.add_argument("--status", help="only runs with this status")
    p.add_argument("--tag", action="append", help="only runs with this tag (repeat: runs with every tag given)")
    p.add_argument("--json", action="store_true", help='print {"runs": [...]}, one object per run, newest first')

    p = command("tag", "add tags to a run (or take them off with --remove)")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("tags", nargs="+", metavar="TAG", help="e.g. baseline (lower-cased; no commas)")
    p.add_argument("--remove", action="store_true", help="take these tags off instead")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = command("note", "set a run's note (an empty TEXT clears it; no TEXT prints it)")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("text", nargs="*", metavar="TEXT", help="the note; several words are joined with spaces")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    for name, text in (("show", "show one run"), ("evaluate", "evaluate a run's latest checkpoint on its test data")):
        p = command(name, text)
        p.add_argument("run", help=RUN_HELP)
        p.add_argument("--json", action="store_true", help=JSON_HELP)
        if name == "show":
            p.add_argument("--history", action="store_true", help="with --json: every logged metric, by step")

    p = command("classify", "classify image files with a classifier run")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    p.add_argument("--top-k", type=int, default=3, help="classes to list per image, most likely first (default: 3)")
    p.add_argument("--epoch", type=int, help="checkpoint after this many epochs (default: latest)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = command("sample", "generate images with a GAN run")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--n", type=int, default=64, help="images to generate (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="latent seed: the same seed gives the same images (default: 0)")
    p.add_argument("--label", type=int, help="class to generate (cgan)")
    p.add_argument("--truncation", type=float, help="truncation threshold for the latents, e.g. 1.0")
    p.add_argument("--epoch", type=int, help="checkpoint after this many epochs (default: latest)")
    p.add_argument("--out", default="samples.png", help="grid PNG to write (default: samples.png)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = command("export", "write a run's classifier or GAN generator as a stock Keras or ONNX file")
    p.add_argument("run", help="run id, unique prefix, or 'latest'")
    p.add_argument("--out", required=True, help="file to write: model.keras, or model.onnx for ONNX")
    p.add_argument("--format", choices=("keras", "onnx"), help="default: onnx for an .onnx file, else keras")
    p.add_argument("--epoch", type=int, help="checkpoint after this many epochs (default: latest)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = command("stop", "stop a running run gracefully (checkpoint saved); cancels a queued one")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = command("resume", "continue a stopped, interrupted or failed run from its last checkpoint")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--epochs", type=int,
                   help="new total number of epochs (default: the run's target; a completed run needs it)")
    p.add_argument("--background", action="store_true", help="continue as a background job and print its id")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = command("cancel", "take a queued run off the queue")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = command("delete", "delete a finished run and its files")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = command("logs", "print a run's training log")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the run ends")

    p = command("devices", "list the devices JAX sees")
    p.add_argument("--json", action="store_true", help='print {"devices": [...]}')

    p = command("bench", "time our training against PyTorch's on this machine (needs requirements-bench.txt)")
    p.add_argument("--quick", action="store_true", help="short rounds, no time-to-accuracy runs (about a minute)")
    p.add_argument("--dataset", help="data for the throughput rounds (default: fashion_mnist if installed, else digits)")
    p.add_argument("--json", action="store_true", help="print only the JSON object (the table goes to stderr)")

    p = command("worker", argparse.SUPPRESS)  # what a background job runs; not for users
    p.add_argument("run", help="run id")
    return parser


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per field of the config dataclasses (``--batch-size`` sets ``batch_size``), its help
    from the field's metadata; unset options stay None, so the model's defaults apply."""
    owners: dict[str, list[tuple[str, dataclasses.Field, type]]] = {}
    for family, cls in CONFIG_CLASSES.items():
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            owners.setdefault(field.name, []).append((family, field, hints[field.name]))
    for name, found in owners.items():
        flags = ["--" + name.replace("_", "-")]
        helps = {field.metadata.get("help", "") for _, field, _ in found}
        text = helps.pop() if len(helps) == 1 else "; ".join(
            f"{family}: {field.metadata.get('help', '')}" for family, field, _ in found)
        if name == "model":
            parser.add_argument(*flags, required=True, help=text)
            continue
        families = " and ".join(family for family, _, _ in found)
        notes = [f"{families} only"] if len(found) < len(CONFIG_CLASSES) and not text.endswith("only)") else []
        notes += _defaults(found)
        text += f" ({'; '.join(notes)})" if notes else ""
        kind = _option_type(found[0][2])
        if kind is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, default=None, help=text)
            continue
        parser.add_argument(*flags, type=kind, default=None, help=text)
        for alias in OPTION_ALIASES.get(name, ()):  # its own option, so its errors name it as typed
            parser.add_argument(alias, type=kind, default=None, dest=name, help=f"short for {flags[0]}")


def _option_type(hint: Any) -> type:
    """``int | None`` -> ``int``: the type an option's text is converted to."""
    kinds = [kind for kind in typing.get_args(hint) or (hint,) if kind is not type(None)]
    if len(kinds) != 1 or kinds[0] not in (bool, int, float, str):
        raise TypeError(f"no command-line option for a config field of type {hint}")
    return kinds[0]


def _defaults(found: list[tuple[str, dataclasses.Field, type]]) -> list[str]:
    """``["default: 10"]``, ``["default: classifiers 10, GANs 30"]``, or nothing for a None default."""
    def shown(value: Any) -> str:
        if isinstance(value, bool):
            return "on" if value else "off"
        return f"{value:g}" if isinstance(value, float) else str(value)

    defaults = {family: field.default for family, field, _ in found if field.default is not None}
    if not defaults:
        return []
    if len(set(defaults.values())) == 1:
        return [f"default: {shown(next(iter(defaults.values())))}"]
    return ["default: " + ", ".join(f"{family} {shown(value)}" for family, value in defaults.items())]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: the process's arguments) and return its exit status."""
    try:
        return _run(argv)
    except BrokenPipeError:
        # Whatever read stdout has gone: say nothing more, and keep the exit-time flush quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log_to("stderr")
    try:
        status = _COMMANDS[args.command](args)
        sys.stdout.flush()  # a reader that went away shows up here rather than at exit
        return status
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
    from core.runs import jobs
    from core.store.store import RunStore

    store = RunStore(args.home)
    jobs.dispatch(store)  # a slot freed by a killed trainer goes to the next queued run now
    return store


def _emit_json(payload: dict[str, Any]) -> None:
    """Print ``payload`` as one line: the one JSON object every ``--json`` command ends with."""
    if not isinstance(payload, dict):
        raise TypeError(f"--json prints one object, not a {type(payload).__name__}")
    print(json.dumps(payload, default=_json_default))


def _json_default(value: Any):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ---- commands ---------------------------------------------------------------------------------


def cmd_datasets(args) -> int:
    from core.data.datasets import list_datasets

    infos = list_datasets()
    if args.json:
        _emit_json({"datasets": [_dataclass_dict(info) for info in infos]})
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


def config_from_args(args: argparse.Namespace):
    """The validated config that ``train``'s options describe.

    Raises:
        ConfigError: unknown model, a setting of the other family, or an invalid value.
    """
    from core.common.config import config_for

    names = {field.name for cls in CONFIG_CLASSES.values() for field in dataclasses.fields(cls)} - {"model"}
    return config_for(args.model, **{name: getattr(args, name) for name in names})


def cmd_train(args) -> int:
    config = config_from_args(args)
    store = _store(args)
    if args.background:
        from core.runs import jobs

        run_id = jobs.launch(config, store)
        run = store.describe(run_id)
        if args.json:
            _emit_json({"run_id": run_id, "status": run["status"]})
        else:
            print(run_id)
        return EXIT_OK
    from core.runs import training
    from core.training.callbacks import ProgressBar

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
    from core.runs import jobs
    from core.store.store import STATUSES

    if args.status is not None and args.status not in STATUSES:
        raise UserError(f"unknown status {args.status!r}: one of {', '.join(STATUSES)}")
    store = _store(args)
    jobs.reconcile(store)
    runs = [store.describe(run["run_id"]) for run in store.list_runs(status=args.status, tag=args.tag)]
    if args.json:
        _emit_json({"runs": runs})
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
                     _key_metric(run["metrics"]), run["device"] or "", ",".join(run["tags"])])
    _print_table(["RUN", "STATUS", "MODEL", "DATASET", "PROGRESS", "KEY METRIC", "DEVICE", "TAGS"], rows)
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
    from core.runs import jobs

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
    from core.runs.evaluation import evaluate_run

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
    from core.runs.inference import classify_files

    store = _store(args)
    run_id = store.resolve(args.run)
    results = classify_files(store, run_id, args.images, top_k=args.top_k, epoch=args.epoch)
    if args.json:
        _emit_json({"run_id": run_id, "results": results})
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
    from core.evaluation import sampling

    store = _store(args)
    run_id = store.resolve(args.run)
    if store.get_run(run_id)["family"] == "classifier":
        raise UserError(f"run {run_id} is a classifier, not a GAN: `sample` draws images from a GAN run; to label images "
                        f"with this one use `python -m core classify {run_id} IMAGE...`")
    result = sampling.sample_run(store, run_id, n=args.n, seed=args.seed, label=args.label,
                                 truncation=args.truncation, epoch=args.epoch, out=args.out)
    if args.json:
        _emit_json(result)
    else:
        print(f"wrote {result['out']} ({result['n']} images from {run_id}, epoch {result['epoch']}, seed {result['seed']})")
    return EXIT_OK


def cmd_export(args) -> int:
    from core.app.export import export_run  # ONNX tooling loads only when exporting

    store = _store(args)
    run_id = store.resolve(args.run)
    result = export_run(store, run_id, args.out, format=args.format, epoch=args.epoch)
    if args.json:
        _emit_json(result)
    else:
        print(f"wrote {result['out']} ({result['model']} of {run_id}, {result['checkpoint']}, {result['format']}; "
              f"outputs within {result['max_difference']:.1g} of the checkpoint's)")
    return EXIT_OK


def cmd_restore(args) -> int:
    from core.runs.restore import restore_file

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
    from core.runs import jobs

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
    from core.runs import jobs

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
    from core.runs import jobs

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
    from core.runs import jobs

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
    from core.common.devices import list_devices

    devices = list_devices()
    if args.json:
        _emit_json({"devices": devices})
        return EXIT_OK
    for device in devices:
        name = device["platform"].upper() if device["kind"].lower() == device["platform"] else device["kind"]
        memory = device.get("memory_bytes")
        print(f"{device['platform']}:{device['id']}  {name}" + (f", {memory / 2**30:.1f} GiB memory" if memory else ""))
    return EXIT_OK


def cmd_tag(args) -> int:
    from core.store.store import normalise_tags

    store = _store(args)
    run_id = store.resolve(args.run)
    names = normalise_tags(args.tags)  # every tag checked before any is written
    for name in names:
        tags = store.remove_tag(run_id, name) if args.remove else store.add_tag(run_id, name)
    if args.json:
        _emit_json({"run_id": run_id, "tags": tags})
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
        _emit_json({"run_id": run_id, "note": note})
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
    from core.runs import jobs

    log_to("stdout", "%(asctime)s %(message)s")  # the run's train.log: every line timed
    store = _store(args)
    run = jobs.work(store, args.run)
    return EXIT_OK if run["status"] in ("completed", "stopped") else EXIT_FAILED


_COMMANDS = {
    "datasets": cmd_datasets, "train": cmd_train, "runs": cmd_runs, "show": cmd_show,
    "evaluate": cmd_evaluate, "classify": cmd_classify, "sample": cmd_sample, "restore": cmd_restore, "stop": cmd_stop,
    "resume": cmd_resume, "cancel": cmd_cancel, "delete": cmd_delete, "logs": cmd_logs,
    "devices": cmd_devices, "bench": cmd_bench, "worker": cmd_worker, "tag": cmd_tag, "note": cmd_note,
    "export": cmd_export,
}
