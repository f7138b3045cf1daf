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

from safin.blocks.wavelet import WavePool

# (block, number of convs, output channels) of VGG-19's convolutional part.
VGG19_BLOCKS: tuple[tuple[int, int, int], ...] = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512),
                                                   (5, 4, 512))

#: conv layer names in forward order (without conv0).
CONV_NAMES: tuple[str, ...] = tuple(f"conv{b}_{i}" for b, n, _ in VGG19_BLOCKS for i in range(1, n + 1))

#: the feature taps style-transfer losses use: the first ReLU of each block (SANet, WCT, the metrics)...
TAPS_1_TO_5: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
#: ... and of the first four blocks (AdaIN's and SAFIN's style loss)
TAPS_1_TO_4: tuple[str, ...] = TAPS_1_TO_5[:4]

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


def preprocessing_layer() -> nn.Conv2d:
    """``conv0``: the fixed 1x1 convolution holding the caffe preprocessing (see :func:`preprocessing_conv0`)."""
    conv = nn.Conv2d(3, 3, 1)
    w, b = preprocessing_conv0()
    with torch.no_grad():
        conv.weight.copy_(w)
        conv.bias.copy_(b)
    return conv


class VGG19Encoder(nn.Module):
    """VGG-19 convolutional trunk with reflection padding and 2x2 max pooling (``ceil_mode``).

    ``forward(x, taps)`` returns ``{tap: tensor}`` for the requested ``reluX_Y`` names and stops at
    the deepest one requested. Parameters are frozen (``requires_grad=False``) unless ``trainable``.
    """

    def __init__(self, last: str = "relu5_4", trainable: bool = False):
        super().__init__()
        self.conv0 = preprocessing_layer()
        self.names: list[str] = []
        for name, (cin, cout) in conv_shapes().items():
            self.add_module(name, nn.Conv2d(cin, cout, 3, padding=0))
            self.names.append(name)
            if "relu" + name[4:] == last:
                break
        for p in self.parameters():
            p.requires_grad_(trainable)

    def forward(self, x: torch.Tensor, taps: Iterable[str] = TAPS_1_TO_5) -> dict[str, torch.Tensor]:
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


class WaveVGGEncoder(nn.Module):
    """VGG-19 to relu4_1 with Haar wavelet pooling instead of max pooling (SAFIN's / WCT2's encoder).

    Same conv layers and names (``conv0`` .. ``conv4_1``) as :class:`VGG19Encoder`, so it takes the
    same (normalised) weights. Only the LL band continues down; LH, HL, HH are skips for the decoder.
    """

    BLOCK_CONVS = {1: ("conv1_1", "conv1_2"), 2: ("conv2_1", "conv2_2"),
                   3: ("conv3_1", "conv3_2", "conv3_3", "conv3_4"), 4: ("conv4_1",)}

    def __init__(self, trainable: bool = False):
        super().__init__()
        self.conv0 = preprocessing_layer()
        shapes = conv_shapes()
        for names in self.BLOCK_CONVS.values():
            for name in names:
                self.add_module(name, nn.Conv2d(*shapes[name], 3, padding=0))
        self.pool1, self.pool2, self.pool3 = WavePool(64), WavePool(128), WavePool(256)
        for p in self.parameters():
            p.requires_grad_(trainable)

    def _conv(self, name: str, h: torch.Tensor) -> torch.Tensor:
        return F.relu(getattr(self, name)(F.pad(h, (1, 1, 1, 1), mode="reflect")))

    def block(self, level: int, h: torch.Tensor, first_tap: dict | None = None):
        """Run block ``level`` (1..3) on ``h``; returns (LL, (LH, HL, HH)). Block 1 starts from RGB.
        ``first_tap``, if given, receives ``reluN_1`` (the block's first activation)."""
        if level == 1:
            h = self.conv0(h)
        for i, name in enumerate(self.BLOCK_CONVS[level]):
            h = self._conv(name, h)
            if i == 0 and first_tap is not None:
                first_tap[f"relu{level}_1"] = h
        ll, lh, hl, hh = getattr(self, f"pool{level}")(h)
        return ll, (lh, hl, hh)

    def relu4_1(self, ll3: torch.Tensor) -> torch.Tensor:
        return self._conv("conv4_1", ll3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything of one plain pass: taps ``relu1_1``..``relu4_1``, ``ll1``..``ll3`` and
        ``skips1``..``skips3`` (tuples of LH, HL, HH)."""
        out: dict = {}
        h = x
        for level in (1, 2, 3):
            h, skips = self.block(level, h, out)
            out[f"ll{level}"], out[f"skips{level}"] = h, skips
        out["relu4_1"] = self.relu4_1(h)
        return out

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[relu1_1, relu2_1, relu3_1, relu4_1] on the LL path (the loss network)."""
        out = self.forward(x)
        return [out[f"relu{i}_1"] for i in (1, 2, 3, 4)]


def load_encoder_state(encoder: nn.Module, state: dict) -> nn.Module:
    """Load a VGG-19 state dict (our key layout) into any encoder built from these layer names; keys
    the encoder does not have (deeper layers) are ignored, keys it has must all be there. Names of
    pretrained weights are resolved by :func:`safin.io.weights.load_encoder_weights`."""
    own = encoder.state_dict()
    encoder.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    missing = [k for k in own if k not in state]
    if missing:
        raise ValueError(f"encoder weights lack {missing[:5]}")
    return encoder


#: pytorch-AdaIN's ``vgg_normalised.pth`` is an ``nn.Sequential`` state dict: module index -> our name.
SEQUENTIAL_VGG_INDEX = {0: "conv0", 2: "conv1_1", 5: "conv1_2", 9: "conv2_1", 12: "conv2_2", 16: "conv3_1",
                        19: "conv3_2", 22: "conv3_3", 25: "conv3_4", 29: "conv4_1", 32: "conv4_2",
                        35: "conv4_3", 38: "conv4_4", 42: "conv5_1", 45: "conv5_2", 48: "conv5_3",
                        51: "conv5_4"}


def vgg_state_from_reference(state: dict) -> dict:
    """A VGG state dict in any of the reference layouts -> ours (``conv0.weight``, ``conv1_1.bias``, ...).

    Accepts pytorch-AdaIN/SANet's Sequential keys (``0.weight``, ``2.weight``, ...), SAFIN/WCT2's
    WaveEncoder keys (``conv0.weight``, ..., ``pool1.LL.weight`` — the fixed Haar filters are dropped)
    and ours.
    """
    out = {}
    for key, value in state.items():
        head, _, kind = key.rpartition(".")
        if head.isdigit():
            idx = int(head)
            if idx not in SEQUENTIAL_VGG_INDEX:
                raise ValueError(f"VGG state dict key {key!r}: module {idx} is not a conv of the normalised VGG-19")
            out[f"{SEQUENTIAL_VGG_INDEX[idx]}.{kind}"] = value
        elif head.startswith("pool"):
            continue
        elif head == "conv0" or head in CONV_NAMES:
            out[key] = value
        else:
            raise ValueError(f"VGG state dict key {key!r} is not a VGG-19 conv layer")
    return out
