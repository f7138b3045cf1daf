"""Which CPU and instruction set a run uses, and how to make PyTorch use an older instruction set.

float32 results depend on the instruction set: oneDNN, MKL and ATen's vectorised kernels choose AVX-512,
AVX2 or SSE code with different summation orders. :func:`describe` names what a run used, so every
measured time and metric can say it; :data:`SETTINGS` are the environment variables that make this
process's libraries use an older set than the CPU has (they must be set before ``import torch``, so a
setting applies to a new process: :func:`env_for`). A machine with AVX-512 can emulate AVX2 and the
baseline (SSE4) this way; one with AVX2 only, the baseline.
"""
from __future__ import annotations

import contextlib
import functools
import os
import platform
from pathlib import Path

import torch

#: setting -> the variables that cap ATen, oneDNN and MKL at that instruction set (lowest first)
SETTINGS: dict[str, dict[str, str]] = {
    "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
}
_ORDER = list(SETTINGS)


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's word for it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def hardware_isa() -> str:
    """The newest of :data:`SETTINGS` the CPU itself has (from its flags), whatever this process uses."""
    flags = cpu_flags()
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return "avx512"
    if {"avx2", "fma"} <= flags:
        return "avx2"
    return "default"


def active_isa() -> str:
    """The instruction set ATen's kernels use in this process (``ATEN_CPU_CAPABILITY`` lowers it)."""
    cap = torch.backends.cpu.get_cpu_capability().lower()
    return "avx512" if cap.startswith("avx512") else cap if cap in SETTINGS else "default"


def emulatable() -> list[str]:
    """The settings this CPU can run: its own and every older one (lowest first)."""
    return _ORDER[: _ORDER.index(hardware_isa()) + 1]


def env_for(setting: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with ``setting``'s variables set."""
    if setting not in SETTINGS:
        raise ValueError(f"unknown instruction-set setting {setting!r}; choose one of {', '.join(SETTINGS)}")
    return {**(os.environ if base is None else base), **SETTINGS[setting]}


def describe() -> str:
    """One line: model, the instruction set in use (and the CPU's own when lower), bf16 or not, e.g.
    ``Intel(R) Xeon(R) Processor, AVX-512, bf16`` or ``AMD EPYC 7B13, AVX2 (emulated on AVX-512), no bf16``."""
    from safin.runtime.precision import bf16_native

    names = {"default": "SSE4 (no AVX)", "avx2": "AVX2", "avx512": "AVX-512"}
    active, hw = active_isa(), hardware_isa()
    isa = names[active] + (f" (emulated on {names[hw]})" if active != hw else "")
    return f"{cpu_model()}, {isa}, {'bf16' if bf16_native('cpu') else 'no bf16'}"


@contextlib.contextmanager
def portable_init():
    """Weight initialisation that gives the same values under every instruction set.

    ``Tensor.uniform_(a, b)`` (behind PyTorch's default, Kaiming and Xavier inits) computes
    a + (b − a)·u with a fused multiply-add in its AVX2/AVX-512 kernels and with two roundings in its
    baseline kernel, so the same seed gives weights 1 ulp apart (measured: AdaIN's and SANet's initial
    weights differ between ``ATEN_CPU_CAPABILITY=default`` and ``avx2``). While this is active,
    ``uniform_`` draws u in [0, 1) — the same random numbers, exact everywhere — and scales it in two
    separately rounded steps: the same distribution and the same draws as PyTorch's (equal to its
    baseline kernel, within 1 ulp of its vector kernels). Not thread-safe: for constructing models.
    """
    original = torch.Tensor.uniform_

    def uniform_(self, from_=0.0, to=1.0, *, generator=None):
        original(self, 0.0, 1.0, generator=generator)
        if (from_, to) != (0.0, 1.0):
            with torch.no_grad():
                self.mul_(to - from_).add_(from_)
        return self

    torch.Tensor.uniform_ = uniform_
    try:
        yield
    finally:
        torch.Tensor.uniform_ = original
