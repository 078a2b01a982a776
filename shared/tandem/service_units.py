"""The service definitions of a Tandem node: a launchd property list (macOS) and a
systemd unit (Linux), rendered from one description.

On macOS the job is a launchd *daemon* (``/Library/LaunchDaemons``) that runs as the
owner's account (``UserName``), not a per-user agent: macOS 15's local network
privacy lets "any daemon started by launchd" reach the local network, while an agent
started from ``~/Library/LaunchAgents`` needs a consent prompt that a background
Python process cannot show, and its connections to 169.254.x.x (the Thunderbolt
bridge) fail with "No route to host" (Apple TN3179, "Understanding local network
privacy", macOS considerations). A daemon also starts at boot, before anyone logs
in: what a headless Mac Mini needs. ``ProcessType`` is ``Interactive``: left
unspecified, launchd throttles a job's CPU and I/O (launchd.plist(5)), and a node
streams answers someone is waiting for.

``python -m tandem.service_units DIR`` rewrites the examples in ``DIR/launchd`` and
``DIR/systemd`` (``deploy/``); a test checks they are current.
"""

from __future__ import annotations

import plistlib
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Role = Literal["gateway", "worker"]
ROLES: tuple[Role, ...] = ("gateway", "worker")
LAUNCHD_DIR = Path("/Library/LaunchDaemons")
SYSTEMD_DIR = Path("/etc/systemd/system")
# How long a stopping node may drain its calls before launchd/systemd kill it.
STOP_TIMEOUT_S = 30
# Shortest time between two restarts of a node that keeps exiting.
RESTART_THROTTLE_S = 10
_DESCRIPTIONS = {
    "gateway": "Tandem gateway: screens requests and routes them to the worker",
    "worker": "Tandem worker: generates with the local Ollama",
}


@dataclass(frozen=True)
class ServiceSpec:
    """One node run as a service: which role, which program, which settings, as whom."""

    role: Role
    program: tuple[str, ...]  # the tandem command, e.g. ("/Users/me/tandem/.venv/bin/tandem",)
    env_file: Path
    working_directory: Path
    user: str
    log_dir: Path  # macOS: ~/Library/Logs/Tandem (systemd logs to the journal)

    @property
    def label(self) -> str:
        return f"com.tandem.{self.role}"

    @property
    def unit_name(self) -> str:
        return f"tandem-{self.role}.service"

    @property
    def argv(self) -> list[str]:
        return [*self.program, "--env-file", str(self.env_file), self.role]

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.role}.log"

    @property
    def plist_path(self) -> Path:
        return LAUNCHD_DIR / f"{self.label}.plist"

    @property
    def unit_path(self) -> Path:
        return SYSTEMD_DIR / self.unit_name


def launchd_plist(spec: ServiceSpec) -> bytes:
    """The launchd daemon: started at boot (RunAtLoad), restarted whenever it exits
    (KeepAlive), as ``spec.user``, logging to ``spec.log_file``."""
    job = {
        "Label": spec.label,
        "ProgramArguments": spec.argv,
        "WorkingDirectory": str(spec.working_directory),
        "UserName": spec.user,
        "RunAtLoad": True,
        "KeepAlive": True,
        "ThrottleInterval": RESTART_THROTTLE_S,
        "ExitTimeOut": STOP_TIMEOUT_S,
        "ProcessType": "Interactive",
        "StandardOutPath": str(spec.log_file),
        "StandardErrorPath": str(spec.log_file),
        "EnvironmentVariables": {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin:/opt/homebrew/bin"},
    }
    return plistlib.dumps(job, sort_keys=False)


def systemd_unit(spec: ServiceSpec) -> str:
    """The systemd system unit: started at boot, restarted whenever it exits, as
    ``spec.user``, with /usr, /etc and the home folders read-only to it."""
    command = " ".join(shlex.quote(part) for part in spec.argv)
    return f"""[Unit]
Description={_DESCRIPTIONS[spec.role]}
Documentation=file://{spec.working_directory}/docs/macs.md
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User={spec.user}
WorkingDirectory={spec.working_directory}
ExecStart={command}
Restart=always
RestartSec={RESTART_THROTTLE_S}
KillSignal=SIGTERM
TimeoutStopSec={STOP_TIMEOUT_S}
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full
ProtectHome=read-only

[Install]
WantedBy=multi-user.target
"""


def example_spec(role: Role, platform: Literal["macos", "linux"]) -> ServiceSpec:
    """The placeholder node the files in deploy/ describe (user 'you')."""
    home = Path("/Users/you") if platform == "macos" else Path("/home/you")
    checkout = home / "tandem"
    return ServiceSpec(
        role=role,
        program=(str(checkout / ".venv" / "bin" / "tandem"),),
        env_file=home / ".tandem" / f"{role}.env",
        working_directory=checkout,
        user="you",
        log_dir=home / "Library" / "Logs" / "Tandem",
    )


def example_files(deploy: Path) -> dict[Path, bytes]:
    """Every example file of ``deploy/`` and its content."""
    files: dict[Path, bytes] = {}
    for role in ROLES:
        mac = example_spec(role, "macos")
        files[deploy / "launchd" / f"{mac.label}.plist"] = launchd_plist(mac)
        linux = example_spec(role, "linux")
        files[deploy / "systemd" / linux.unit_name] = systemd_unit(linux).encode()
    return files


def write_examples(deploy: Path) -> list[Path]:
    written = []
    for path, content in example_files(deploy).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_examples(Path(sys.argv[1] if len(sys.argv) > 1 else "deploy")):
        print(written_path)
