"""A second host for tests: a Linux network namespace joined by a veth pair.

The worker runs inside the namespace at 169.254.19.104, the Mac Mini's
Thunderbolt-bridge address; the test process plays the MacBook on the other
end of the veth. Setting the host side of the pair down is a pulled cable: no
FIN, no RST, packets just stop.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

WORKER_IP = "169.254.19.104"
GATEWAY_IP = "169.254.19.1"
_LOCK = "/tmp/tandem-netns.lock"


def unavailable_reason() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is missing"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"'ip netns' does not work here: {probe.stderr.strip()}"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass(frozen=True)
class SecondHost:
    namespace: str
    host_link: str
    peer_link: str = ""

    def popen(self, *argv: str, **kwargs: object) -> subprocess.Popen[str]:
        return subprocess.Popen(["ip", "netns", "exec", self.namespace, *argv], text=True, **kwargs)  # type: ignore[call-overload]

    def cut_link(self) -> None:
        _ip("link", "set", self.host_link, "down")

    def restore_link(self) -> None:
        _ip("link", "set", self.host_link, "up")

    def remove_worker_address(self) -> None:
        """The link is there but the worker's address is not (yet): a bridge still coming up."""
        self._worker_address("del")

    def add_worker_address(self) -> None:
        self._worker_address("add")

    def _worker_address(self, verb: str) -> None:
        address = f"{WORKER_IP}/16"
        _ip("netns", "exec", self.namespace, "ip", "addr", verb, address, "dev", self.peer_link)


@contextlib.contextmanager
def second_host() -> Iterator[SecondHost]:
    """Create the namespace and the veth link; remove both afterwards.

    A file lock keeps two test runs on one machine from fighting over the
    fixed addresses.
    """
    with open(_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        suffix = str(os.getpid() % 100000)
        peer = f"tdw{suffix}"
        host = SecondHost(f"tandem-w{suffix}", host_link=f"tdh{suffix}", peer_link=peer)
        subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
        _ip("netns", "add", host.namespace)
        try:
            _ip("link", "add", host.host_link, "type", "veth", "peer", "name", peer)
            _ip("link", "set", peer, "netns", host.namespace)
            _ip("addr", "add", f"{GATEWAY_IP}/16", "dev", host.host_link)
            _ip("link", "set", host.host_link, "up")
            _ip(
                "netns", "exec", host.namespace, "ip", "addr", "add", f"{WORKER_IP}/16", "dev", peer
            )
            _ip("netns", "exec", host.namespace, "ip", "link", "set", peer, "up")
            _ip("netns", "exec", host.namespace, "ip", "link", "set", "lo", "up")
            yield host
        finally:
            subprocess.run(["ip", "link", "del", host.host_link], capture_output=True)
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
