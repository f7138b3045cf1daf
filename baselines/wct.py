"""WCT (Li et al. 2017): multi-level whitening–colouring with five reconstruction decoders (methods.md §4).

Inference, coarse to fine: for k = 5..1, encode the current image to reluk_1, whiten–colour it with
the style's reluk_1 (blended with ``alpha``), decode with decoder k. All five style levels come from
*one* encoder pass over the style (the reference re-encodes the style five times).

The reference code ships converted Torch decoders and no training code; here the five decoders are
trained by our trainer as auto-encoders: pixel reconstruction + feature reconstruction (weight 1 on
each, as in the WCT paper), summed over the five levels. The style argument of :meth:`losses` is not
used (the decoders never see a style). ``impl_params``: True = PytorchWCT's +I on the content
covariance; False = the official Torch code (no +I).
"""
from __future__ import annotations

import torch
from torch import nn

from safin.blocks.encoder import TAPS_1_TO_5, VGG19Encoder
from safin.io.weights import load_encoder_weights
from safin.blocks.losses import distance
from safin.methods import StyleTransfer, register
from safin.blocks.wct import whiten_colour

from safin.blocks.decoders import mirror_decoder


@register
class WCT(StyleTransfer):
    name = "wct"
    label = "WCT"
    # whitening divides by the square roots of small eigenvalues and the five levels feed each other:
    # bf16 rounding anywhere is amplified (docs/performance.md), so precision "auto" keeps WCT in float32
    bf16_safe = False
    size_multiple = 16
    min_side = 32

    def __init__(self, encoder_weights: str | dict = "normalised", *, impl_params: bool = True,
                 naive: bool = False, pixel_weight: float = 1.0, feature_weight: float = 1.0,
                 levels: tuple[int, ...] = (5, 4, 3, 2, 1)):
        super().__init__()
        self.encoder = load_encoder_weights(VGG19Encoder(last="relu5_1"), encoder_weights).eval()
        self.decoders = nn.ModuleDict({str(k): mirror_decoder(k) for k in (1, 2, 3, 4, 5)})
        self.impl_params, self.naive = impl_params, naive
        self.pixel_weight, self.feature_weight = pixel_weight, feature_weight
        self.levels = levels

    def trainable(self):
        return list(self.decoders.parameters())

    def encode_style(self, style):
        return self.encoder(style, TAPS_1_TO_5)

    def _wct(self, cf: torch.Tensor, sf: torch.Tensor) -> torch.Tensor:
        return torch.stack([whiten_colour(c, s, content_identity=self.impl_params, naive=self.naive)
                            for c, s in zip(cf, sf)])

    def transfer(self, content, codes, mix, alpha):
        x = content
        for k in self.levels:
            tap = f"relu{k}_1"
            cf = self.encoder(x, [tap])[tap]
            csf = mix([self._wct(cf, s[tap]) for s in codes])
            x = self.decoders[str(k)](alpha * csf + (1.0 - alpha) * cf)
        return x

    def losses(self, content, style=None):
        with torch.no_grad():
            feats = self.encoder(content, TAPS_1_TO_5)
        out: dict[str, torch.Tensor] = {}
        total = content.new_zeros(())
        for k in (1, 2, 3, 4, 5):
            tap = f"relu{k}_1"
            rec = self.decoders[str(k)](feats[tap])
            pix = distance(rec, content, self.impl_params)
            feat = distance(self.encoder(rec, [tap])[tap], feats[tap], self.impl_params)
            out[f"pixel{k}"], out[f"feature{k}"] = pix, feat
            total = total + self.pixel_weight * pix + self.feature_weight * feat
        out["total"] = total
        return out
