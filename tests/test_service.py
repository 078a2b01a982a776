"""`tandem service`: the launchd daemon and systemd unit it installs parse, name a tandem
command and flags that exist, and the examples in deploy/ are what the code renders."""

from __future__ import annotations

import getpass
import plistlib
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tandem.cli.main import build_parser
from tandem.cli.service import plan
from tandem.service_units import (
    ROLES,
    ServiceSpec,
    example_files,
    example_spec,
    launchd_plist,
    systemd_unit,
)

ROOT = Path(__file__).resolve().parents[1]
TANDEM = Path(sys.executable).parent / "tandem"


def _spec(role: str, env_file: Path) -> ServiceSpec:
    return ServiceSpec(
        role=role,  # type: ignore[arg-type]
        program=(str(TANDEM),),
        env_file=env_file,
        working_directory=ROOT,
        user=getpass.getuser(),
        log_dir=Path.home() / "Library" / "Logs" / "Tandem",
    )


def _assert_runs_the_role(argv: list[str], spec: ServiceSpec) -> None:
    """The command line is `tandem --env-file ABSOLUTE ROLE`, as the real parser reads it."""
    assert Path(argv[0]).is_absolute() and Path(argv[0]).name == "tandem"
    args = build_parser().parse_args(argv[1:])
    assert args.command == spec.role
    assert Path(args.env_file) == spec.env_file and spec.env_file.is_absolute()


def test_the_examples_in_deploy_are_current() -> None:
    for path, content in example_files(ROOT / "deploy").items():
        assert path.exists(), f"{path} missing: python -m tandem.service_units deploy"
        stale = f"{path} is stale: python -m tandem.service_units deploy"
        assert path.read_bytes() == content, stale


@pytest.mark.parametrize("role", ROLES)
def test_the_launchd_daemon_keeps_the_node_running(role: str) -> None:
    spec = example_spec(role, "macos")  # type: ignore[arg-type]
    job = plistlib.loads(launchd_plist(spec))
    assert job["Label"] == f"com.tandem.{role}"
    assert job["RunAtLoad"] is True and job["KeepAlive"] is True
    assert job["UserName"] == "you"  # a daemon running as the owner, not root
    assert Path(job["WorkingDirectory"]).is_absolute()
    assert job["StandardErrorPath"] == f"/Users/you/Library/Logs/Tandem/{role}.log"
    _assert_runs_the_role(job["ProgramArguments"], spec)
    assert str(spec.plist_path).startswith("/Library/LaunchDaemons/")


@pytest.mark.parametrize("role", ROLES)
def test_the_systemd_unit_names_a_real_command(role: str, tmp_path: Path) -> None:
    env_file = tmp_path / f"{role}.env"
    env_file.write_text("")
    spec = _spec(role, env_file)
    unit = systemd_unit(spec)
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    _assert_runs_the_role(shlex.split(exec_start.removeprefix("ExecStart=")), spec)
    assert "Restart=always" in unit and "WantedBy=multi-user.target" in unit


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here"
)
@pytest.mark.parametrize("role", ROLES)
def test_systemd_analyze_verifies_the_unit(role: str, tmp_path: Path) -> None:
    env_file = tmp_path / f"{role}.env"
    env_file.write_text("")
    spec = _spec(role, env_file)
    unit_file = tmp_path / spec.unit_name
    unit_file.write_text(systemd_unit(spec))
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(unit_file)], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0, verified.stderr
    assert spec.unit_name not in verified.stderr, verified.stderr  # no complaint about it
    broken = tmp_path / "broken" / spec.unit_name
    broken.parent.mkdir()
    broken.write_text(systemd_unit(_spec(role, env_file)).replace(str(TANDEM), "/nowhere/tandem"))
    refused = subprocess.run(
        ["systemd-analyze", "verify", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0 and "/nowhere/tandem" in refused.stderr


@pytest.mark.parametrize("platform", ["macos", "linux"])
@pytest.mark.parametrize("action", ["install", "uninstall", "status", "logs"])
def test_every_action_plans_known_commands(platform: str, action: str, tmp_path: Path) -> None:
    steps = plan(action, _spec("worker", tmp_path / "worker.env"), platform)  # type: ignore[arg-type]
    assert steps.commands
    programs = (
        {"launchctl", "install", "rm", "mkdir", "tail"}
        if platform == "macos"
        else {"systemctl", "install", "rm", "journalctl"}
    )
    for command in steps.commands:
        assert tuple(p for p in command if p != "sudo")[0] in programs, command
    assert (steps.file is not None) == (action == "install")


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tandem.cli.main", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_service_install_dry_run_prints_the_file_and_the_commands(tmp_path: Path) -> None:
    env_file = tmp_path / "gateway.env"
    env_file.write_text("TANDEM_GATEWAY_LISTEN=127.0.0.1:50051\n")
    shown = _cli(
        "service",
        "install",
        "--role",
        "gateway",
        "--env-file",
        str(env_file),
        "--platform",
        "macos",
        "--dry-run",
    )
    assert shown.returncode == 0, shown.stderr
    header, _, rest = shown.stdout.partition("\n")
    assert header == "# /Library/LaunchDaemons/com.tandem.gateway.plist"
    body = rest[: rest.index("</plist>") + len("</plist>")]
    job = plistlib.loads(body.encode())
    assert job["ProgramArguments"][-3:] == ["--env-file", str(env_file), "gateway"]
    assert "launchctl bootstrap system /Library/LaunchDaemons/com.tandem.gateway.plist" in rest


def test_service_install_without_the_env_file_says_to_run_setup(tmp_path: Path) -> None:
    missing = _cli(
        "service",
        "install",
        "--role",
        "worker",
        "--env-file",
        str(tmp_path / "nope.env"),
        "--dry-run",
    )
    assert missing.returncode == 1 and "tandem setup worker" in missing.stderr
