"""CPU time and resident memory of the processes under test, sampled around a window."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import psutil


@dataclass
class ProcessUsage:
    """One process's CPU seconds spent in the window and its largest RSS seen."""

    cpu_s: float = 0.0
    rss_mb_peak: float = 0.0
    rss_mb_start: float = 0.0


@dataclass
class ProcSampler:
    """Watches named pids (and this process, as ``loadgen``)."""

    pids: dict[str, int]
    _procs: dict[str, psutil.Process] = field(default_factory=dict)
    _cpu_start: dict[str, float] = field(default_factory=dict)
    usage: dict[str, ProcessUsage] = field(default_factory=dict)

    def __post_init__(self) -> None:
        watched = {**self.pids, "loadgen": os.getpid()}
        for name, pid in watched.items():
            try:
                self._procs[name] = psutil.Process(pid)
            except psutil.NoSuchProcess:
                continue

    def _cpu(self, proc: psutil.Process) -> float:
        times = proc.cpu_times()
        return times.user + times.system

    def start(self) -> None:
        for name, proc in self._procs.items():
            try:
                rss = proc.memory_info().rss / 2**20
                self._cpu_start[name] = self._cpu(proc)
                self.usage[name] = ProcessUsage(rss_mb_peak=rss, rss_mb_start=rss)
            except psutil.Error:
                continue

    def sample(self) -> None:
        """Note the current RSS of each process (call a few times in the window)."""
        for name, proc in self._procs.items():
            usage = self.usage.get(name)
            if usage is None:
                continue
            try:
                usage.rss_mb_peak = max(usage.rss_mb_peak, proc.memory_info().rss / 2**20)
            except psutil.Error:
                continue

    def stop(self) -> dict[str, ProcessUsage]:
        self.sample()
        for name, proc in self._procs.items():
            if name not in self.usage:
                continue
            try:
                self.usage[name].cpu_s = self._cpu(proc) - self._cpu_start[name]
            except psutil.Error:
                continue
        return self.usage
