"""Where the time goes: a py-spy raw profile (collapsed stacks) summed up.

Each line of ``py-spy record --format raw`` is ``frame;frame;…;leaf COUNT`` with
frames like ``name (file:line)``. The summary gives the share of samples by
category of the leaf frame (syscalls, gRPC core, protobuf, httpx, json, …),
the same split by thread (the event loop's, and the others: gRPC's poller, the
encoder's executor), and, over the busy samples (not waiting in epoll), the leaf
functions with most samples and the Python functions most often on the stack
(inclusive), leaving out the event loop's own frames.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^():]*)(?::\d+)?\)$")
_GENERIC = {
    "<module>",
    "main",
    "run",
    "Runner.run",
    "BaseEventLoop.run_until_complete",
    "BaseEventLoop.run_forever",
    "BaseEventLoop._run_once",
    "Handle._run",
    "_run_code",
    "_run_module_as_main",
    "Thread._bootstrap",
    "Thread._bootstrap_inner",
    "Thread.run",
}
_WAITING = "waiting (epoll/poll)"
_LOOP_THREAD = "event loop thread"
_OTHER_THREADS = "other threads"
_LOOP_FRAMES = frozenset({"BaseEventLoop.run_forever", "Runner.run"})
# (category, leaf-name patterns, leaf-file patterns); the first match wins.
_CATEGORIES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("syscall: send/write", ("sendmsg", "send", "write", "writev", "sendto"), ()),
    ("syscall: receive/read", ("recv", "recvmsg", "read", "readv", "recvfrom"), ()),
    (_WAITING, ("epoll_wait", "poll", "select", "EpollSelector.select"), ()),
    ("gRPC core (native)", (), ("cygrpc", "libgrpc", "grpc/_cython")),
    ("protobuf (native)", (), ("_message", "upb", "protobuf")),
    ("httpx/httpcore/h11", (), ("httpx/", "httpcore/", "h11/")),
    ("json", (), ("json/", "_json")),
    ("grpc (Python)", (), ("grpc/",)),
    ("logging", (), ("logging/",)),
    ("asyncio", (), ("asyncio/", "selectors.py")),
    ("Tandem code", (), ("tandem/", "tandem_worker/", "tandem_gateway/")),
    ("pydantic", (), ("pydantic",)),
    ("CPython runtime (native)", (), ("libpython",)),
    ("libc/kernel (other)", (), ("libc", "ld-linux", "vdso")),
)


@dataclass(frozen=True, slots=True)
class Frame:
    name: str
    file: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.file})"


def parse_frame(text: str) -> Frame:
    match = _FRAME.match(text.strip())
    if match is None:
        return Frame(text.strip(), "")
    return Frame(match["name"], match["file"])


def category(frame: Frame) -> str:
    for name, leaf_names, files in _CATEGORIES:
        if frame.name in leaf_names or any(part in frame.file for part in files):
            return name
    return "other"


def summarize(raw: str, top: int = 12) -> dict[str, Any]:
    by_category: Counter[str] = Counter()
    by_thread: dict[str, Counter[str]] = {_LOOP_THREAD: Counter(), _OTHER_THREADS: Counter()}
    by_leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = busy = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [parse_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        leaf = frames[-1]
        by_category[category(leaf)] += count
        thread = _LOOP_THREAD if any(f.name in _LOOP_FRAMES for f in frames) else _OTHER_THREADS
        by_thread[thread][category(leaf)] += count
        if category(leaf) == _WAITING:
            continue
        busy += count
        by_leaf[leaf.label] += count
        for label in {f.label for f in frames if _is_python(f) and f.name not in _GENERIC}:
            inclusive[label] += count

    def shares(counter: Counter[str], whole: int, limit: int | None = None) -> list[dict[str, Any]]:
        return (
            [
                {"what": what, "share": n / whole, "samples": n}
                for what, n in counter.most_common(limit)
            ]
            if whole
            else []
        )

    return {
        "samples": total,
        "busy_samples": busy,
        "by_category": shares(by_category, total),
        # The event loop's thread apart from the rest (gRPC's poller, the encoder's
        # executor): shares of all samples.
        "by_thread": {name: shares(counter, total) for name, counter in by_thread.items()},
        "top_leaf_busy": shares(by_leaf, busy, top),
        "top_inclusive_busy": shares(inclusive, busy, top),
    }


def _is_python(frame: Frame) -> bool:
    return frame.file.endswith(".py") or frame.file == "tandem"


def summarize_file(path: Path, top: int = 12) -> dict[str, Any]:
    return summarize(path.read_text(errors="replace"), top)
