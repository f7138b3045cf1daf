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

from pathlib import Path

import torch
from torch import nn

from safin.blocks.encoder import TAPS_1_TO_5, VGG19Encoder
from safin.io.weights import load_encoder_weights
from safin.blocks.losses import distance
from safin.methods import AUTHORS_ENCODER, InputError, StyleTransfer, load_into, register
from safin.blocks.wct import whiten_colour

from safin.blocks.decoders import mirror_decoder


@register
class WCT(StyleTransfer):
    name = "wct"
    label = "WCT"
    test_resize = "content"  # PytorchWCT: content's longer side to fineSize, the style to the content's size
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

    def load_reference(self, *files, our_encoder: bool = False) -> "WCT":
        """The authors' Torch7 models (UniversalStyleTransfer, as PytorchWCT uses them): a folder holding
        them, or the files — ``feature_invertor_conv{1..5}_1.t7`` (the decoders, required) and
        ``vgg_normalised_conv{1..5}_1.t7`` (the encoders). Read with ``torchfile``
        (:mod:`safin.io.torch7`). This WCT runs one encoder to relu5_1, so the five encoders must agree
        on every layer they share (they are truncations of one network); the decoders' module indices are
        ours. Without the encoder files the load refuses (their decoders were trained on them) unless
        ``our_encoder``."""
        import re

        from safin.blocks.encoder import load_encoder_state, vgg_state_from_reference
        from safin.io.torch7 import Torch7Error, sequential_state

        paths = []
        for f in map(Path, files):
            paths += sorted(f.glob("*.t7")) if f.is_dir() else [f]
        found = {}
        for p in paths:
            m = re.fullmatch(r"(vgg_normalised|feature_invertor)_conv([1-5])_1\.t7", p.name)
            if m:
                found[(m.group(1), int(m.group(2)))] = p
        missing = [f"feature_invertor_conv{k}_1.t7" for k in range(1, 6) if ("feature_invertor", k) not in found]
        if missing:
            raise InputError(f"WCT reference: missing {', '.join(missing)} (given: {', '.join(p.name for p in paths) or 'nothing'})")
        try:
            for k in range(1, 6):
                load_into(self.decoders[str(k)], sequential_state(found[("feature_invertor", k)]),
                          f"{found[('feature_invertor', k)]}: WCT decoder {k}")
            encoders = {k: sequential_state(found[("vgg_normalised", k)]) for k in range(1, 6)
                        if ("vgg_normalised", k) in found}
        except Torch7Error as e:
            raise InputError(str(e)) from None
        if 5 not in encoders:
            if not our_encoder:
                raise InputError(f"WCT reference: no vgg_normalised_conv5_1.t7 given; {AUTHORS_ENCODER}. Give the "
                                 "encoder files too, or pass --our-encoder (our_encoder=True) to pair them anyway")
            self.reference_encoder = "this suite's vgg19_normalised, chosen explicitly (colours may shift)"
            return self
        deepest = encoders[5]
        for k, state in encoders.items():
            for key, value in state.items():
                if key not in deepest or not torch.equal(value, deepest[key]):
                    raise InputError(f"{found[('vgg_normalised', k)]}: layer {key} differs from "
                                     f"{found[('vgg_normalised', 5)].name}'s; this WCT runs one encoder for all levels")
        try:
            load_encoder_state(self.encoder, vgg_state_from_reference(deepest))
        except ValueError as e:
            raise InputError(f"{found[('vgg_normalised', 5)]}: {e}") from None
        self.reference_encoder = f"the authors' vgg_normalised_conv5_1.t7 ({found[('vgg_normalised', 5)]})"
        return self
