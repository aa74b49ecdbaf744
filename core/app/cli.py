"""``convgan`` (or ``python -m core``): the command-line front end.

Exit status: 0 on success, 1 when a run fails, 2 on bad input or usage (one line on stderr,
never a traceback), 141 when whatever reads stdout stops early (``runs | head``), silently, as
Unix tools that die of SIGPIPE do. With ``--json`` stdout is one JSON object on one line; diagnostics
(the ``core`` loggers) go to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing
from pathlib import Path
from typing import Any

import core  # selects the JAX backend before anything imports keras
from core.app.cli_base import (
    CONFIG_CLASSES,
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    emit_json,
    log_to,
)
from core.common.devices import list_devices
from core.common.errors import TrainingFailed, UserError
from core.data.datasets import list_datasets


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits with status 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


JSON_HELP = "print one JSON object instead of text"
RUN_HELP = "run id, unique prefix, or 'latest'"
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
        command = _COMMANDS_WITHOUT_KERAS.get(args.command)  # datasets, devices
        if command is None:
            from core.app import commands  # deferred: the commands above answer without Keras (~3 s)

            command = commands.COMMANDS[args.command]
        status = command(args)
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


# ---- commands that answer without loading Keras ------------------------------------------------


def cmd_datasets(args) -> int:
    infos = list_datasets()
    if args.json:
        emit_json({"datasets": [_dataclass_dict(info) for info in infos]})
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
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else dict(obj)


def cmd_devices(args) -> int:
    devices = list_devices()
    if args.json:
        emit_json({"devices": devices})
        return EXIT_OK
    for device in devices:
        name = device["platform"].upper() if device["kind"].lower() == device["platform"] else device["kind"]
        memory = device.get("memory_bytes")
        print(f"{device['platform']}:{device['id']}  {name}" + (f", {memory / 2**30:.1f} GiB memory" if memory else ""))
    return EXIT_OK


_COMMANDS_WITHOUT_KERAS = {"datasets": cmd_datasets, "devices": cmd_devices}
