"""``tandem service install|uninstall|status|logs --role gateway|worker``.

macOS: a launchd daemon in /Library/LaunchDaemons running as you (see
tandem.service_units for why a daemon and not an agent), logs in
~/Library/Logs/Tandem. Linux: a systemd unit in /etc/systemd/system, logs in the
journal. Installing needs root for those folders: the commands run through sudo
(asking for your password) unless you are root; ``--dry-run`` prints them instead.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tandem.service_units import ROLES, ServiceSpec, launchd_plist, systemd_unit

Platform = Literal["macos", "linux"]
ACTIONS = ("install", "uninstall", "status", "logs")


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS, help="what to do")
    parser.add_argument("--role", required=True, choices=ROLES, help="which node")
    parser.add_argument(
        "--env-file",
        dest="service_env_file",
        type=Path,
        default=None,
        metavar="PATH",
        help="the node's settings (default: the global --env-file, else ~/.tandem/ROLE.env "
        "as `tandem setup` writes it)",
    )
    parser.add_argument(
        "--platform",
        choices=("macos", "linux"),
        default=None,
        help="launchd or systemd (default: this machine's)",
    )
    parser.add_argument(
        "--user", default=None, help="the account the service runs as (default: you)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the file and the commands instead of running them",
    )


def this_platform() -> Platform:
    return "macos" if sys.platform == "darwin" else "linux"


def _program() -> tuple[str, ...]:
    """This installation's ``tandem`` command, by absolute path."""
    script = Path(sys.executable).parent / "tandem"
    if script.exists():
        return (str(script),)
    return (sys.executable, "-m", "tandem.cli.main")


def spec_from_args(args: argparse.Namespace) -> ServiceSpec:
    default = Path.home() / ".tandem" / f"{args.role}.env"
    env_file = args.service_env_file or args.env_file or default
    venv = Path(sys.prefix)
    checkout = venv.parent if (venv / "pyvenv.cfg").exists() else Path.cwd()
    return ServiceSpec(
        role=args.role,
        program=_program(),
        env_file=Path(env_file).expanduser().resolve(),
        working_directory=checkout.resolve(),
        user=args.user or getpass.getuser(),
        log_dir=Path.home() / "Library" / "Logs" / "Tandem",
    )


@dataclass(frozen=True)
class Plan:
    """What one action does: a file to put in place (or none) and commands to run."""

    file: tuple[Path, bytes] | None
    commands: tuple[tuple[str, ...], ...]


def _privileged(*command: str) -> tuple[str, ...]:
    return command if os.geteuid() == 0 else ("sudo", *command)


def plan(action: str, spec: ServiceSpec, platform: Platform) -> Plan:
    if platform == "macos":
        return _launchd_plan(action, spec)
    return _systemd_plan(action, spec)


def _launchd_plan(action: str, spec: ServiceSpec) -> Plan:
    target = f"system/{spec.label}"
    path = str(spec.plist_path)
    if action == "install":
        return Plan(
            (spec.plist_path, launchd_plist(spec)),
            (
                ("mkdir", "-p", str(spec.log_dir)),
                _privileged("launchctl", "bootout", target),  # an older copy, if loaded
                _privileged("install", "-m", "644", "-o", "root", "-g", "wheel", "{file}", path),
                _privileged("launchctl", "bootstrap", "system", path),
            ),
        )
    if action == "uninstall":
        return Plan(
            None, (_privileged("launchctl", "bootout", target), _privileged("rm", "-f", path))
        )
    if action == "status":
        return Plan(None, (("launchctl", "print", target),))
    return Plan(None, (("tail", "-n", "200", "-F", str(spec.log_file)),))


def _systemd_plan(action: str, spec: ServiceSpec) -> Plan:
    unit, path = spec.unit_name, str(spec.unit_path)
    if action == "install":
        return Plan(
            (spec.unit_path, systemd_unit(spec).encode()),
            (
                _privileged("install", "-m", "644", "{file}", path),
                _privileged("systemctl", "daemon-reload"),
                _privileged("systemctl", "enable", "--now", unit),
                _privileged("systemctl", "restart", unit),
            ),
        )
    if action == "uninstall":
        return Plan(
            None,
            (
                _privileged("systemctl", "disable", "--now", unit),
                _privileged("rm", "-f", path),
                _privileged("systemctl", "daemon-reload"),
            ),
        )
    if action == "status":
        return Plan(None, (("systemctl", "status", "--no-pager", unit),))
    return Plan(None, (("journalctl", "-u", unit, "-n", "200", "-f"),))


# Commands whose failure is expected (nothing to remove yet) and not worth stopping for.
_TOLERATED = {("launchctl", "bootout")}


def run_service(args: argparse.Namespace) -> int:
    platform: Platform = args.platform or this_platform()
    if os.geteuid() == 0 and os.environ.get("SUDO_USER") and not args.dry_run:
        print(
            "tandem service: run it as yourself, not with sudo: it asks for sudo where "
            "it needs it (the paths and the account come from who runs it)",
            file=sys.stderr,
        )
        return 1
    spec = spec_from_args(args)
    if args.action == "install" and not spec.env_file.is_file():
        print(
            f"tandem service: {spec.env_file} does not exist; run `tandem setup "
            f"{spec.role}` first or pass --env-file",
            file=sys.stderr,
        )
        return 1
    steps = plan(args.action, spec, platform)
    if args.dry_run:
        return _print_plan(steps)
    with tempfile.TemporaryDirectory() as scratch:
        staged = ""
        if steps.file is not None:
            staged = str(Path(scratch) / steps.file[0].name)
            Path(staged).write_bytes(steps.file[1])
        for command in steps.commands:
            argv = [staged if part == "{file}" else part for part in command]
            code = subprocess.call(argv)
            tolerated = tuple(part for part in command if part != "sudo")[:2] in _TOLERATED
            if code != 0 and not tolerated and args.action in ("install", "uninstall"):
                print(f"tandem service: {shlex.join(argv)} failed ({code})", file=sys.stderr)
                return 1
            if args.action in ("status", "logs"):
                return code
    if args.action == "install":
        print(
            f"tandem service: {spec.role} installed ({steps.file[0] if steps.file else ''}); "
            f"it starts at boot and restarts when it exits"
        )
    return 0


def _print_plan(steps: Plan) -> int:
    if steps.file is not None:
        path, content = steps.file
        print(f"# {path}")
        print(content.decode())
    for command in steps.commands:
        staged = steps.file[0].name if steps.file else ""
        print(shlex.join(staged if part == "{file}" else part for part in command))
    return 0
