"""One definition of each concept: task and format names, training settings, the version.

* Task and output-format names come from ``neo_sdk._names``; no other module writes the lists out.
* Every training default lives in one place and the others read it; ``TrainSettings`` checks every
  field when it is built (before any minute of training) and ``neo train``'s flags are generated
  from its fields.
* The package version is written once.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import re
import subprocess
import sys
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import neo_sdk
from neo_sdk._names import (
    ALIGNMENT_TASKS,
    OUTPUT_FORMATS,
    TASKS,
    OutputFormat,
    TaskName,
)
from neo_sdk.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(neo_sdk.__file__).parent


# ----------------------------------------------------------------------------- names
def test_task_and_format_lists_come_from_names() -> None:
    from neo_sdk import decoding
    from neo_sdk.prompts import TASK_FORMATS, TASK_PLACEHOLDERS, TASK_REQUIRED
    from neo_sdk.tasks import AlignmentConfig, Example, InstructionConfig
    from neo_sdk.training import TrainSettings

    assert InstructionConfig().tasks == TASKS and TrainSettings().instruction_tasks == TASKS
    assert AlignmentConfig().tasks == ALIGNMENT_TASKS
    assert decoding.FORMATS is OUTPUT_FORMATS and decoding.OutputFormat is OutputFormat
    hints = typing.get_type_hints(Example)
    assert hints["task"] == TaskName and hints["format"] == OutputFormat
    for table in (TASK_FORMATS, TASK_PLACEHOLDERS, TASK_REQUIRED):
        assert set(table) == set(ALIGNMENT_TASKS + TASKS)
    assert set().union(*TASK_FORMATS.values()) <= set(OUTPUT_FORMATS)


def test_neo_ask_choices_are_the_names() -> None:
    ask = _subparser("ask")
    assert tuple(_option(ask, "--task").choices) == TASKS
    assert tuple(_option(ask, "--format").choices) == OUTPUT_FORMATS


def test_no_module_writes_the_lists_out() -> None:
    tasks = re.compile(r"""["'](next_item|sid_to_text)["'],\s*["'](search|text_to_sid)["']""")
    formats = re.compile(r"""["']ids["'],\s*["']text["'],\s*["']mixed["']""")
    copies = [
        str(path.relative_to(PACKAGE)) for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_names.py" and (tasks.search(text := path.read_text()) or formats.search(text))
    ]
    assert not copies, copies


# ----------------------------------------------------------------------- defaults
def test_each_training_default_is_defined_once() -> None:
    from neo_sdk.tasks import MAX_HISTORY, InstructionConfig
    from neo_sdk.training import AlignConfig, InstructConfig, LoopConfig, TrainSettings

    settings, instruct, loop = TrainSettings(), InstructConfig(), LoopConfig(max_steps=1)
    assert settings.batch_size == instruct.batch_size == loop.batch_size
    assert settings.lr == instruct.lr == loop.lr
    assert settings.loss_per == instruct.loss_per == loop.loss_per
    assert settings.max_minutes == instruct.max_minutes
    assert settings.max_history == InstructionConfig().max_history == MAX_HISTORY
    assert settings.cuts_per_user == InstructionConfig().cuts_per_user
    assert (settings.lora_layers, settings.lora_r) == (instruct.lora_layers, instruct.lora_r)
    assert settings.fit_steps == AlignConfig().fit_steps


BAD = [  # field, value, a piece of the allowed values the message must name
    ("base", "", "non-empty"),
    ("num_hidden_layers", 0, ">= 1"),
    ("stage", "both", "align, instruct, all"),
    ("max_minutes", 0, "> 0"),
    ("align_share", 1.0, "(0, 1)"),
    ("max_steps", 0, ">= 1"),
    ("full", "yes", "bool"),
    ("lora_layers", 0, ">= 1"),
    ("lora_r", 0, ">= 1"),
    ("batch_size", 0, ">= 1"),
    ("batch_size", 8.5, "int"),
    ("lr", 0.0, "> 0"),
    ("max_history", 0, ">= 1"),
    ("cuts_per_user", 0, ">= 1"),
    ("teacher", "my_teacher", "'module:factory'"),
    ("instruction_tasks", ("next_item", "nope"), "next_item, search"),
    ("instruction_tasks", (), "next_item, search"),
    ("instruction_tasks", ("search", "search"), "each once"),
    ("target_types", ("",), "non-empty"),
    ("replay_share", 1.5, "[0, 1]"),
    ("replay_weights", (("next_item", 1.0),), "sid_to_text"),
    ("replay_weights", (("text_to_sid", -1.0),), ">= 0"),
    ("replay_weights", (("text_to_sid", 1.0), ("text_to_sid", 2.0)), "one weight per task"),
    ("loss_per", "batch", "token, example"),
    ("history_loss", "no", "bool"),
    ("fit_steps", -1, ">= 0"),
    ("probe_users", 0, ">= 1"),
    ("probe_items", 0, ">= 1"),
    ("seed", "0", "int"),
]


@pytest.mark.parametrize(("name", "value", "allowed"), BAD, ids=[f"{n}={v!r}" for n, v, _ in BAD])
def test_a_bad_setting_fails_at_construction(name: str, value: object, allowed: str) -> None:
    from neo_sdk.training import TrainSettings

    with pytest.raises(ConfigError) as error:
        TrainSettings(**{name: value})
    assert name in str(error.value) and allowed in str(error.value)


def test_the_manifest_rebuilds_the_settings(tmp_path: Path) -> None:
    """JSON turns tuples into lists; a local base folder may be a Path: both are taken as what they stand for."""
    import json

    from neo_sdk.training import TrainSettings

    settings = TrainSettings(replay_weights=(("text_to_sid", 3),), target_types=("movie",), lora_layers=None)
    assert TrainSettings(**json.loads(json.dumps(dataclasses.asdict(settings)))) == settings
    assert settings.replay_weights == (("text_to_sid", 3.0),)
    assert TrainSettings(base=tmp_path).base == str(tmp_path)


def test_every_setting_is_checked_and_documented() -> None:
    from neo_sdk.training import TrainSettings

    names = {f.name for f in dataclasses.fields(TrainSettings)}
    assert names == {n for n, _, _ in BAD}  # a new field needs a bad value here
    for f in dataclasses.fields(TrainSettings):
        assert f.metadata.get("help"), f"{f.name} has no help"


# -------------------------------------------------------------------- neo train
def _subparser(name: str) -> argparse.ArgumentParser:
    from neo_sdk.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name].populated()  # `neo train`'s settings flags are added on first use


def _option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


def test_neo_train_flags_come_from_the_settings() -> None:
    from neo_sdk.training import TrainSettings

    train = _subparser("train")
    flags = {s for a in train._actions for s in a.option_strings}
    # every flag in the README, Makefile, bench and tests keeps working
    assert {"--db", "--out", "--stage", "--max-minutes", "--type", "--align-share", "--max-steps", "--base",
            "--layers", "--lora-layers", "--full", "--batch-size", "--lr", "--tasks", "--replay-share",
            "--replay-weights", "--loss-per", "--no-history-loss", "--seed", "--resume", "--no-probes",
            "--probe-users", "--probe-items", "--lora-r", "--fit-steps"} <= flags
    dests = {a.dest for a in train._actions}
    assert {f.name for f in dataclasses.fields(TrainSettings)} <= dests
    assert tuple(_option(train, "--stage").choices) == ("align", "instruct", "all")
    assert tuple(_option(train, "--loss-per").choices) == ("token", "example")
    assert "stage 3 tasks" in _option(train, "--tasks").help


def test_building_the_cli_loads_no_training() -> None:
    """The flags come from TrainSettings (torch) only when `neo train` parses or prints help."""
    code = ("import sys; from neo_sdk.cli import build_parser; build_parser().parse_args(['version']);"
            " print('torch' in sys.modules, 'neo_sdk.training' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_neo_train_flags_build_the_settings() -> None:
    from neo_sdk.cli._train import settings_from_args
    from neo_sdk.training import TrainSettings

    train = _subparser("train")
    assert settings_from_args(train.parse_args(["--db", "x.db", "--out", "b"])) == TrainSettings()
    args = train.parse_args([
        "--db", "x.db", "--out", "b", "--layers", "2", "--lora-r", "4", "--fit-steps", "10", "--lora-layers", "0",
        "--type", "movie, person", "--type", "show", "--tasks", "next_item,search", "--no-history-loss",
        "--replay-weights", "text_to_sid=3,sid_to_type=1", "--stage", "align", "--max-minutes", "2.5", "--full",
    ])
    assert settings_from_args(args) == TrainSettings(
        num_hidden_layers=2, lora_r=4, fit_steps=10, lora_layers=None, target_types=("movie", "person", "show"),
        instruction_tasks=("next_item", "search"), history_loss=False, stage="align", max_minutes=2.5, full=True,
        replay_weights=(("text_to_sid", 3.0), ("sid_to_type", 1.0)),
    )


def test_a_new_setting_gets_a_flag_by_itself() -> None:
    from neo_sdk.cli._train import add_settings_arguments, settings_from_args

    @dataclass(frozen=True)
    class Settings:
        warmup: int = field(default=10, metadata={"help": "warm-up steps"})
        mode: typing.Literal["a", "b"] = field(default="a", metadata={"help": "a mode"})
        names: tuple[str, ...] = field(default=("x",), metadata={"help": "names", "flag": "--name-list"})

    parser = argparse.ArgumentParser()
    add_settings_arguments(parser, Settings)
    assert "warm-up steps (default: 10)" in parser.format_help()
    args = parser.parse_args(["--warmup", "3", "--mode", "b", "--name-list", "p,q"])
    assert settings_from_args(args, Settings) == Settings(warmup=3, mode="b", names=("p", "q"))
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "c"])


def test_neo_train_refuses_a_bad_setting_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from neo_sdk.cli import main

    out = tmp_path / "bundle"
    for flags, name in ((["--lora-r", "0"], "lora_r"), (["--tasks", "next_item,nope"], "instruction_tasks"),
                        (["--batch-size", "0"], "batch_size"), (["--align-share", "2"], "align_share")):
        assert main(["train", "--db", str(tmp_path / "missing.db"), "--out", str(out), *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and name in err
    assert not out.with_name("bundle.work").exists() and not (tmp_path / "missing.db").exists()


# ----------------------------------------------------------------------- version
def test_one_version_source() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "neo_sdk.__version__"}
    assert importlib.metadata.version("neo-sdk") == neo_sdk.__version__


# ---------------------------------------------------------------------- plotting
def test_plot_losses_leaves_the_backend_alone(tmp_path: Path) -> None:
    import matplotlib

    from neo_sdk.training import plot_losses

    before = matplotlib.get_backend()
    matplotlib.use("template")  # a notebook's backend stands in: not Agg, which the test run uses
    try:
        png = plot_losses({"stage 2": [3.0, 2.5, 2.0], "stage 3": [2.0, 1.5]}, tmp_path / "plots" / "loss.png")
        assert matplotlib.get_backend() == "template"
    finally:
        matplotlib.use(before)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
