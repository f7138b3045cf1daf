"""Compute precision and memory layout: bf16 autocast and channels_last where the hardware pays for them.

``precision``: ``"auto"`` = bf16 on CUDA GPUs that support it and on CPUs with native bf16 instructions
(AVX512-BF16 / AMX, as oneDNN reports them), float32 elsewhere; ``"bf16"`` / ``"fp32"`` force one;
``"fp64"`` runs everything in float64, NCHW: slow, but its results do not depend on the CPU's instruction
set (oneDNN/MKL pick AVX-512 or AVX2 kernels with different summation orders; in float32 four training
steps of an unscaled attention turn that into a 2.4 % move of a metric, in float64 into < 1e-9). The
``ci`` profile, whose metrics the regression gate compares with a frozen reference, uses it.

Under bf16 only the convolutions of the VGG encoder and the decoders run in bf16. Everything that is
numerically delicate — instance statistics, AdaIN, the attention of SANet and SAFIN (no 1/√C scaling:
its logits are large, and bf16's 8-bit mantissa would move the softmax), the whitening–colouring
transform, CORAL, the losses — is wrapped in :func:`full_precision` and runs in float32 on float32
copies of its inputs.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import TypeVar

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp64")
_LOW = (torch.bfloat16, torch.float16)

F = TypeVar("F", bound=Callable)


def bf16_native(device: torch.device | str) -> bool:
    """Whether ``device`` runs bf16 convolutions natively (fast), not by emulation."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
            return False
    return False


def resolve_precision(precision: str, device: torch.device | str) -> torch.dtype:
    """``"auto" | "fp32" | "bf16" | "fp64"`` -> the compute dtype on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "fp32":
        return torch.float32
    if precision == "fp64":
        return torch.float64
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if bf16_native(device) else torch.float32


def resolve_channels_last(channels_last: bool | str | None, device: torch.device | str,
                          dtype: torch.dtype | None = None) -> bool:
    """``"auto"``/None = on for CUDA and CPU (oneDNN convolutions are faster in NHWC:
    docs/performance.md), off elsewhere and for float64 (oneDNN has no float64
    kernels; PyTorch's own float64 convolution is an NCHW im2col + BLAS product)."""
    if isinstance(channels_last, bool):
        return channels_last
    if channels_last not in (None, "auto"):
        raise ValueError(f"channels_last must be true, false or 'auto', not {channels_last!r}")
    return torch.device(device).type in ("cuda", "cpu") and dtype != torch.float64


def autocast(device: torch.device | str, dtype: torch.dtype):
    """``torch.autocast`` to ``dtype`` on ``device``, or a no-op for float32 and float64."""
    device = torch.device(device)
    if dtype in (torch.float32, torch.float64):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _autocast_on() -> bool:
    return torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")


def _up(x):
    return x.float() if isinstance(x, torch.Tensor) and x.dtype in _LOW else x


def full_precision(fn: F) -> F:
    """Run ``fn`` in float32: autocast off, bf16/fp16 tensor arguments promoted. A no-op (no copies)
    when autocast is off and no argument is in low precision."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        low = any(isinstance(a, torch.Tensor) and a.dtype in _LOW for a in (*args, *kwargs.values()))
        if not low and not _autocast_on():
            return fn(*args, **kwargs)
        with contextlib.ExitStack() as stack:
            for kind in ("cpu", "cuda"):
                if torch.is_autocast_enabled(kind):
                    stack.enter_context(torch.autocast(kind, enabled=False))
            return fn(*(_up(a) for a in args), **{k: _up(v) for k, v in kwargs.items()})

    return wrapper  # type: ignore[return-value]
