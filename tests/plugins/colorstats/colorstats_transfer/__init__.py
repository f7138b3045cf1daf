"""A tiny arbitrary-style-transfer method in its own package, to show the plugin interface end to end.

Transfer: each RGB channel of the content takes the style's mean and standard deviation (a colour-
statistics transfer, as Reinhard et al. 2001 in RGB), then a small residual convolutional decoder
refines it. The decoder is trained with the suite's losses on the suite's VGG-19: content loss at
relu3_1 against the content, style loss (means and standard deviations) at relu1_1..relu3_1.
It is deliberately small: it exists to exercise the harness, not to win.
"""
from __future__ import annotations

import torch
from torch import nn

from safin.blocks.encoder import VGG19Encoder
from safin.blocks.losses import content_loss, style_loss
from safin.io.weights import load_encoder_weights
from safin.methods import StyleTransfer

TAPS = ["relu1_1", "relu2_1", "relu3_1"]


def channel_stats(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.flatten(2)
    return flat.mean(-1)[..., None, None], (flat.var(-1, unbiased=False) + eps).sqrt()[..., None, None]


class ColorStats(StyleTransfer):
    name = "colorstats"
    label = "Colour statistics (plugin)"
    size_multiple = 4
    min_side = 16

    def __init__(self, encoder_weights="normalised", *, content_weight: float = 1.0, style_weight: float = 10.0):
        super().__init__()
        self.encoder = load_encoder_weights(VGG19Encoder(last="relu3_1"), encoder_weights).eval()
        self.decoder = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
        nn.init.zeros_(self.decoder[2].weight)
        nn.init.zeros_(self.decoder[2].bias)
        self.content_weight, self.style_weight = content_weight, style_weight

    def trainable(self):
        return list(self.decoder.parameters())

    def encode_style(self, style):
        return channel_stats(style)

    def _recolour(self, content, stats):
        mean, std = channel_stats(content)
        s_mean, s_std = stats
        return (content - mean) / std * s_std + s_mean

    def transfer(self, content, codes, mix, alpha):
        recoloured = mix([self._recolour(content, code) for code in codes])
        recoloured = alpha * recoloured + (1 - alpha) * content
        return recoloured + self.decoder(recoloured)

    def losses(self, content, style):
        out = self.transfer(content, [self.encode_style(style)], lambda feats: feats[0], 1.0)
        with torch.no_grad():
            c_feats = self.encoder(content, TAPS)
            s_feats = list(self.encoder(style, TAPS).values())
        o_feats = self.encoder(out, TAPS)
        lc = content_loss(o_feats["relu3_1"], c_feats["relu3_1"])
        ls = style_loss(list(o_feats.values()), s_feats)
        return {"content": lc, "style": ls, "total": self.content_weight * lc + self.style_weight * ls}
