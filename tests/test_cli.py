"""The one console script: every subcommand is listed and answers --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.cli import build_parser, main

COMMANDS = ("process", "sample", "gui", "train", "bench", "models", "calibrate", "calibration", "export")


def test_help_lists_every_subcommand() -> None:
    text = build_parser().format_help()
    for command in COMMANDS:
        assert command in text


@pytest.mark.parametrize("command", COMMANDS)
def test_subcommand_help(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_train_passes_its_arguments_to_the_training_module() -> None:
    proc = subprocess.run([sys.executable, "-m", "app.cli", "train", "refiner", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--epochs" in proc.stdout and "--target" in proc.stdout
