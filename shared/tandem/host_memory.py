"""This host's memory as the user means it: pressure and swap, not just "available".

On macOS psutil's "available" leaves out wired memory, and a model Ollama keeps
resident on the GPU is wired: a Mac Mini serving a 52 GB model would always
look short of memory. The kernel's own verdict, ``kern.memorystatus_vm_pressure_level``
(what Activity Monitor's memory-pressure graph shows), is what counts there.
Elsewhere pressure is derived from the available fraction and swap use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import psutil

from tandem.v1 import worker_pb2

NORMAL = worker_pb2.MEMORY_PRESSURE_NORMAL
WARN = worker_pb2.MEMORY_PRESSURE_WARN
CRITICAL = worker_pb2.MEMORY_PRESSURE_CRITICAL
UNSPECIFIED = worker_pb2.MEMORY_PRESSURE_UNSPECIFIED

# kern.memorystatus_vm_pressure_level: the kernel's dispatch memory-pressure levels.
_MACOS_LEVELS = {1: NORMAL, 2: WARN, 4: CRITICAL}
# Derived pressure (Linux and others): available share of total memory.
CRITICAL_AVAILABLE_FRACTION = 0.05
WARN_AVAILABLE_FRACTION = 0.10
# Heavy swap use counts as pressure while available memory is also getting short.
SWAP_WARN_FRACTION = 0.5
SWAP_WARN_AVAILABLE_FRACTION = 0.20


def pressure_from_macos_level(level: int | None) -> worker_pb2.MemoryPressure:
    """The MemoryPressure of a ``kern.memorystatus_vm_pressure_level`` value."""
    return _MACOS_LEVELS.get(level or 0, UNSPECIFIED)


def derived_pressure(
    total: int, available: int, swap_total: int, swap_used: int
) -> worker_pb2.MemoryPressure:
    """Pressure from the available fraction and swap use, where the kernel gives none."""
    if total <= 0:
        return UNSPECIFIED
    free = available / total
    if free < CRITICAL_AVAILABLE_FRACTION:
        return CRITICAL
    swapping = swap_total > 0 and swap_used / swap_total > SWAP_WARN_FRACTION
    if free < WARN_AVAILABLE_FRACTION or (swapping and free < SWAP_WARN_AVAILABLE_FRACTION):
        return WARN
    return NORMAL


def _macos_pressure_level() -> int | None:
    """``sysctl kern.memorystatus_vm_pressure_level`` through libc (no subprocess per probe)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        value = ctypes.c_int(0)
        size = ctypes.c_size_t(ctypes.sizeof(value))
        name = b"kern.memorystatus_vm_pressure_level"
        if libc.sysctlbyname(name, ctypes.byref(value), ctypes.byref(size), None, 0) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return value.value


def host_memory() -> worker_pb2.MemoryInfo:
    """Total, available, used, swap and pressure of this host."""
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    pressure = UNSPECIFIED
    if sys.platform == "darwin":
        pressure = pressure_from_macos_level(_macos_pressure_level())
    if pressure == UNSPECIFIED:
        pressure = derived_pressure(memory.total, memory.available, swap.total, swap.used)
    return worker_pb2.MemoryInfo(
        total_bytes=memory.total,
        available_bytes=memory.available,
        used_bytes=memory.used,
        swap_total_bytes=swap.total,
        swap_used_bytes=swap.used,
        pressure=pressure,
    )
