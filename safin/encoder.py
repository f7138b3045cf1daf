"""VGG-19 as every style-transfer method here uses it: RGB in [0, 1], reflection padding, named layers.

Layer names follow the (normalised) VGG-19 of the style-transfer literature and WCT2/SAFIN's
``WaveEncoder`` state-dict keys: ``conv0`` is the fixed 1x1 convolution holding the caffe
preprocessing (RGB [0,1] -> BGR [0,255] minus the ImageNet mean), then ``conv1_1`` .. ``conv5_4``.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
import torch.nn.functional as F

# (block, number of convs, output channels) of VGG-19's convolutional part.
VGG19_BLOCKS: tuple[tuple[int, int, int], ...] = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512),
                                                   (5, 4, 512))

#: conv layer names in forward order (without conv0).
CONV_NAMES: tuple[str, ...] = tuple(f"conv{b}_{i}" for b, n, _ in VGG19_BLOCKS for i in range(1, n + 1))

#: the feature taps style-transfer losses use.
STYLE_TAPS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

#: caffe/ImageNet mean in BGR order, 0..255 scale (the VGG authors' preprocessing).
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)


def conv_shapes() -> dict[str, tuple[int, int]]:
    """``{conv name: (in_channels, out_channels)}`` for conv1_1 .. conv5_4."""
    shapes, cin = {}, 3
    for b, n, cout in VGG19_BLOCKS:
        for i in range(1, n + 1):
            shapes[f"conv{b}_{i}"] = (cin, cout)
            cin = cout
    return shapes


def preprocessing_conv0() -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (3,3,1,1) and bias (3,) of the 1x1 conv mapping RGB [0,1] to mean-free BGR [0,255]."""
    w = torch.zeros(3, 3, 1, 1)
    for out_c, in_c in enumerate((2, 1, 0)):  # B <- R-channel index 2, G <- 1, R <- 0
        w[out_c, in_c] = 255.0
    b = -torch.tensor(IMAGENET_MEAN_BGR)
    return w, b


class VGG19Encoder(nn.Module):
    """VGG-19 convolutional trunk with reflection padding and 2x2 max pooling (``ceil_mode``).

    ``forward(x, taps)`` returns ``{tap: tensor}`` for the requested ``reluX_Y`` names and stops at
    the deepest one requested. Parameters are frozen (``requires_grad=False``) unless ``trainable``.
    """

    def __init__(self, last: str = "relu5_4", trainable: bool = False):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 3, 1)
        w, b = preprocessing_conv0()
        with torch.no_grad():
            self.conv0.weight.copy_(w)
            self.conv0.bias.copy_(b)
        self.names: list[str] = []
        for name, (cin, cout) in conv_shapes().items():
            self.add_module(name, nn.Conv2d(cin, cout, 3, padding=0))
            self.names.append(name)
            if "relu" + name[4:] == last:
                break
        for p in self.parameters():
            p.requires_grad_(trainable)

    def forward(self, x: torch.Tensor, taps: Iterable[str] = STYLE_TAPS) -> dict[str, torch.Tensor]:
        taps = list(taps)
        wanted = set(taps)
        unknown = wanted - {"relu" + n[4:] for n in self.names}
        if unknown:
            raise ValueError(f"unknown or truncated taps {sorted(unknown)}; encoder ends at {self.names[-1]}")
        out: dict[str, torch.Tensor] = {}
        h = self.conv0(x)
        block = 1
        for name in self.names:
            b = int(name[4])
            if b != block:
                h = F.max_pool2d(h, 2, 2, ceil_mode=True)
                block = b
            h = F.relu(getattr(self, name)(F.pad(h, (1, 1, 1, 1), mode="reflect")))
            relu = "relu" + name[4:]
            if relu in wanted:
                out[relu] = h
                if len(out) == len(wanted):
                    break
        return {t: out[t] for t in taps}
