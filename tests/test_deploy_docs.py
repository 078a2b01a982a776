"""docs/macs.md: every `tandem` command in it parses with the real CLI, and the Ollama
launch agent it gives parses and matches the worker's settings."""

from __future__ import annotations

import plistlib
import re
import shlex
from pathlib import Path

import pytest

from tandem.cli.main import build_parser

MACS = Path(__file__).resolve().parents[1] / "docs" / "macs.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", MACS.read_text(), re.DOTALL)


def _tandem_commands() -> list[str]:
    commands = []
    for block in _blocks("sh"):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith(".venv/bin/tandem "):
                commands.append(line.removeprefix(".venv/bin/tandem "))
    return commands


@pytest.mark.parametrize("command", _tandem_commands())
def test_every_tandem_command_in_the_walkthrough_parses(command: str) -> None:
    args = build_parser().parse_args(shlex.split(command))
    assert args.command


def test_the_walkthrough_sets_up_and_installs_both_roles() -> None:
    commands = _tandem_commands()
    for needed in (
        "setup gateway",
        "setup worker",
        "service install --role worker",
        "service install --role gateway",
        "status",
        "ask ",
    ):
        assert any(c.startswith(needed) for c in commands), needed


def test_the_ollama_launch_agent_parses_and_matches_the_worker() -> None:
    (xml,) = _blocks("xml")
    job = plistlib.loads(xml.encode())
    assert job["ProgramArguments"][-1] == "serve" and job["KeepAlive"] is True
    environment = job["EnvironmentVariables"]
    worker = build_parser().parse_args(["setup", "worker"])
    assert int(environment["OLLAMA_CONTEXT_LENGTH"]) == worker.num_ctx
    assert int(environment["OLLAMA_NUM_PARALLEL"]) == worker.max_concurrent_generations
    assert "OLLAMA_HOST" not in environment
