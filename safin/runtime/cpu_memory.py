"""Keep freed CPU memory in the process instead of returning it to the OS after every tensor.

glibc serves each allocation above ``M_MMAP_THRESHOLD`` (128 KiB, adaptive up to 32 MiB) with a
fresh ``mmap`` and unmaps it on free, so every large activation of every forward pass is
page-faulted and zeroed again by the kernel. Raising that threshold and the trim threshold keeps
the freed buffers in the heap for the next pass (what PyTorch's CPU tuning guide gets from jemalloc
or tcmalloc). What it gains, measured: docs/performance.md.

The ``safin`` command turns it on for its process; ``SAFIN_MALLOC=default`` leaves glibc's defaults.
A no-op (returns False) where the C library is not glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_state = {"keep_freed": False}


def keep_freed_memory(threshold_bytes: int = 1 << 30) -> bool:
    """Serve allocations below ``threshold_bytes`` from the heap and keep freed heap memory
    (up to twice that) for reuse. True when glibc accepted both settings."""
    if os.environ.get("SAFIN_MALLOC", "").lower() == "default":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, threshold_bytes)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 * threshold_bytes))
    _state["keep_freed"] = _state["keep_freed"] or ok
    return ok


def allocator() -> str:
    """What this process's large CPU allocations do: for benchmark records."""
    return "glibc, freed memory kept (safin.runtime.cpu_memory)" if _state["keep_freed"] else "C library default"
