"""Reading the Torch7 models WCT's authors released (``*.t7``), with the ``torchfile`` package.

``torch.utils.serialization.load_lua`` left PyTorch in 1.0, so the released files of
UniversalStyleTransfer / PytorchWCT (``vgg_normalised_convK_1.t7``, ``feature_invertor_convK_1.t7``)
are read with ``torchfile`` (a pure-Python reader of Torch7's binary serialisation). Each file is one
``nn.Sequential``; :func:`sequential_state` turns its convolutions into a state dict keyed by module
index, the layout of pytorch-AdaIN's ``vgg_normalised.pth`` and of our ``mirror_decoder`` (methods.md §4).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class Torch7Error(ValueError):
    """A file that is not the Torch7 model it should be, with the reason."""


def read_modules(path: Path) -> list:
    """The modules of the ``nn.Sequential`` saved in ``path`` (torchfile objects, 0-based)."""
    import torchfile

    path = Path(path)
    head = path.read_bytes()[:64] if path.is_file() else b""
    if not path.is_file():
        raise Torch7Error(f"{path}: no such file")
    if head.lstrip().lower().startswith((b"<!doctype", b"<html")):
        raise Torch7Error(f"{path}: an HTML page saved under a .t7 name (a download link's confirm page?), "
                          "not a Torch7 model")
    try:
        obj = torchfile.load(str(path))
    except Exception as e:  # noqa: BLE001 - truncated or foreign bytes raise anything from struct to numpy
        raise Torch7Error(f"{path}: not a readable Torch7 file ({type(e).__name__}: {e})") from None
    typename = obj.torch_typename() if hasattr(obj, "torch_typename") else type(obj).__name__
    if not hasattr(obj, "torch_typename") or not typename.endswith(b"Sequential"):
        raise Torch7Error(f"{path}: holds {typename!r}, not an nn.Sequential")
    modules = obj.modules
    if not isinstance(modules, list):
        raise Torch7Error(f"{path}: its nn.Sequential has no module list")
    return modules


def sequential_state(path: Path) -> dict[str, torch.Tensor]:
    """``{"I.weight", "I.bias"}`` of every convolution (``*SpatialConvolution``) of the file's
    ``nn.Sequential``, ``I`` its 0-based index; weights (out, in, kH, kW), float32."""
    state = {}
    for i, m in enumerate(read_modules(path)):
        name = m.torch_typename() if hasattr(m, "torch_typename") else b""
        if not name.endswith(b"SpatialConvolution"):
            continue
        weight, bias = m.weight, m.bias
        if not isinstance(weight, np.ndarray) or weight.ndim != 4 or not isinstance(bias, np.ndarray):
            raise Torch7Error(f"{path}: module {i} ({name.decode()}) has no 4-D weight and bias")
        state[f"{i}.weight"] = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)).clone()
        state[f"{i}.bias"] = torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32)).clone()
    if not state:
        raise Torch7Error(f"{path}: its nn.Sequential holds no convolution")
    return state
