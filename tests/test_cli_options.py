"""The CLI's surface: every config field is a `train` option with help, every option of every
command has help, and `--json` prints exactly one JSON object."""

import argparse
import dataclasses
import json
import re
import subprocess
import sys

import pytest

from core.app import cli, cli_base
from core.store.store import RunStore

pytestmark = pytest.mark.xdist_group("cli")

FAMILIES = {cls().model: cls for cls in cli.CONFIG_CLASSES.values()}  # each family by its default model


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def other_value(field: dataclasses.Field):
    """A valid value unlike the field's default."""
    default = field.default
    if field.name == "dataset":
        return "cifar10"
    if field.name == "scale":  # super-resolution: 2 or 4
        return 4
    if isinstance(default, bool):
        return not default
    if isinstance(default, float):
        return default / 2 if default else 0.125
    if default is None:  # image_size
        return 32
    if isinstance(default, str):  # a choice among names: the default is the one value known valid
        return default
    return default + 1


def arguments(name: str, value) -> list[str]:
    if isinstance(value, bool):
        return [flag(name) if value else "--no-" + name.replace("_", "-")]
    return [flag(name), str(value)]


@pytest.mark.parametrize("model", FAMILIES)
def test_every_config_field_is_settable_from_the_command_line(model):
    fields = [field for field in dataclasses.fields(FAMILIES[model]) if field.name != "model"]
    wanted = {field.name: other_value(field) for field in fields}
    argv = ["train", "--model", model] + [arg for name, value in wanted.items() for arg in arguments(name, value)]
    config = cli_base.config_from_args(cli.build_parser().parse_args(argv))
    assert isinstance(config, FAMILIES[model])
    assert {name: getattr(config, name) for name in wanted} == wanted


def test_train_help_lists_every_config_field_with_its_help():
    done = subprocess.run([sys.executable, "-m", "core", "train", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())  # argparse wraps lines
    for cls in FAMILIES.values():
        for field in dataclasses.fields(cls):
            assert field.metadata.get("help"), f"{cls.__name__}.{field.name}: no help in the field's metadata"
            assert re.search(rf"{flag(field.name)}\b", text), f"{flag(field.name)} missing from train --help"
            assert " ".join(field.metadata["help"].split()) in text, f"help of {field.name} missing"
    assert "--lr LEARNING_RATE short for --learning-rate" in text  # the short spelling still works


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [sub] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_option_of_every_command_has_help():
    parser = cli.build_parser()
    missing = [action.dest for action in parser._actions if not action.help]
    for name, command in _commands(parser).items():
        if name == "worker":  # what a background job runs, hidden from users
            continue
        missing += [f"{name} {action.option_strings or action.dest}" for action in command._actions if not action.help]
    assert not missing, f"options without help: {missing}"


def test_version_prints_the_package_version(capsys):
    import core

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"python -m core {core.__version__}\n"


def test_an_option_of_the_other_family_is_one_line_and_exit_2(store, capsys):
    assert cli.main(["train", "--model", "convnet", "--latent-dim", "32"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["error: convnet has no setting latent_dim"]
    assert store.list_runs() == []


def _json_commands(store: RunStore) -> dict[str, list[str]]:
    finished = store.create_run(family="classifier", model="convnet", dataset="digits", config={"epochs": 1},
                                status="completed")
    queued = [store.create_run(family="gan", model="dcgan", dataset="digits", config={"epochs": 1}, status="queued")
              for _ in range(2)]
    store.log_metrics(finished, {"loss": 0.5}, step=20, epoch=1)
    return {
        "datasets": ["datasets"],
        "runs": ["runs"],
        "runs --tag": ["runs", "--tag", "nothing-tagged"],
        "show": ["show", finished],
        "show --history": ["show", finished, "--history"],
        "tag": ["tag", finished, "baseline"],
        "note": ["note", finished, "a", "note"],
        "devices": ["devices"],
        "cancel": ["cancel", queued[0]],
        "stop": ["stop", queued[1]],
    }


def test_every_json_output_is_one_object(store, capsys, monkeypatch):
    from core.runs import jobs

    monkeypatch.setattr(jobs, "dispatch", lambda store: [])  # queued runs stay queued: no trainer in a test
    for name, args in _json_commands(store).items():
        assert cli.main(["--home", str(store.home), *args, "--json"]) == 0, (name, capsys.readouterr().err)
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 1, (name, lines)
        assert isinstance(json.loads(lines[0]), dict), name
