"""Haar wavelet pooling and unpooling (WCT2's ``sum`` variant, as SAFIN uses it).

L = [1, 1]/√2, H = [-1, 1]/√2; the four 2x2 kernels are LL = LᵀL, LH = LᵀH, HL = HᵀL, HH = HᵀH.
Pooling is a depthwise stride-2 convolution with each kernel; unpooling is the transposed
convolution of each band, summed. The four kernels form an orthonormal basis of 2x2 blocks, so
unpooling inverts pooling exactly (on even sizes). The filters are fixed buffers, not parameters
(the reference registers them as frozen parameters built with ``expand``, which newer PyTorch refuses
to load: SAFIN issues #1 and #4).
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

BANDS = ("LL", "LH", "HL", "HH")


def haar_kernels() -> torch.Tensor:
    """(4, 1, 2, 2): LL, LH, HL, HH, exactly ±0.5.

    Built from the signs of L = [1, 1] and H = [-1, 1] times 0.5, so every entry is exact in any
    dtype: (1/√2)² rounded in float32 is 0.5·(1 − 2⁻²⁴), which made our float64 SAFIN differ from the
    reference by 1.6e-5 and pooling-then-unpooling inexact. The reference (``get_wav``) forms the
    products in float64 (0.5000000000000001) and casts them to float32, which gives exactly 0.5 too
    (tests/test_ops.py restates it).
    """
    low = torch.tensor([1.0, 1.0], dtype=torch.float64)
    high = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    bands = [torch.outer(low, low), torch.outer(low, high), torch.outer(high, low), torch.outer(high, high)]
    return (0.5 * torch.stack(bands)).unsqueeze(1).float()


class WavePool(nn.Module):
    """x (B, C, H, W) -> (LL, LH, HL, HH), each (B, C, H//2, W//2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.register_buffer("kernels", haar_kernels(), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        c = x.shape[1]
        w = self.kernels.to(x.dtype).repeat(c, 1, 1, 1)  # (4C, 1, 2, 2), band-major per channel
        y = F.conv2d(x, w, stride=2, groups=c)
        y = y.view(x.shape[0], c, 4, *y.shape[-2:])
        return y[:, :, 0], y[:, :, 1], y[:, :, 2], y[:, :, 3]


class WaveUnpool(nn.Module):
    """(LL, LH, HL, HH) -> the 2x larger map, the sum of the four bands' transposed convolutions.

    High-frequency bands larger than LL are cropped to LL's size (the reference's fix for SAFIN#3).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.register_buffer("kernels", haar_kernels(), persistent=False)

    def forward(self, ll: torch.Tensor, lh: torch.Tensor, hl: torch.Tensor, hh: torch.Tensor) -> torch.Tensor:
        h, w = ll.shape[-2:]
        bands = torch.stack([ll, lh[..., :h, :w], hl[..., :h, :w], hh[..., :h, :w]], dim=2)
        b, c = ll.shape[:2]
        k = self.kernels.to(ll.dtype).repeat(c, 1, 1, 1)  # (4C, 1, 2, 2)
        return F.conv_transpose2d(bands.reshape(b, 4 * c, h, w), k, stride=2, groups=c)
