"""Decoders that mirror the VGG-19 encoder (AdaIN, SANet, and WCT's five reconstruction decoders).

``mirror_decoder(4)`` is exactly pytorch-AdaIN's ``decoder`` ``nn.Sequential`` (same module order, so
the same state-dict keys ``1.weight``, ``5.weight``, ...: the authors' ``decoder.pth`` loads as is):
reflection pad + 3x3 conv + ReLU per layer, nearest 2x upsampling where the encoder pooled, and no
activation after the last conv. ``mirror_decoder(k)`` inverts the encoder up to ``reluk_1``.
"""
from __future__ import annotations

from torch import nn

from safin.blocks.encoder import conv_shapes


def mirror_decoder(level: int) -> nn.Sequential:
    if level not in (1, 2, 3, 4, 5):
        raise ValueError(f"decoder level must be 1..5, not {level}")
    shapes = conv_shapes()
    convs = [n for n in shapes if int(n[4]) < level or n == f"conv{level}_1"]
    layers: list[nn.Module] = []
    for name in reversed(convs):
        cin, cout = shapes[name]
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(cout, cin, 3)]
        if name != "conv1_1":
            layers.append(nn.ReLU())
        if name.endswith("_1") and name != "conv1_1":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
    return nn.Sequential(*layers)
