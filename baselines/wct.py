"""WCT (Li et al. 2017): multi-level whitening–colouring with five reconstruction decoders (methods.md §4).

Inference, coarse to fine: for k = 5..1, encode the current image to reluk_1, whiten–colour it with
the style's reluk_1 (blended with ``alpha``), decode with decoder k. All five style levels come from
*one* encoder pass over the style (the reference re-encodes the style five times) — unless the authors'
release was loaded with five encoders that differ: then each level runs its own encoder
(``level_encoders``), as PytorchWCT's ``e1``..``e5`` do.

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
    # PytorchWCT's Loader: the content's longer side to fineSize; the style to the content's new size, and only
    # when the content was resized (otherwise both keep their sizes)
    test_resize = "content"
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
        self.level_encoders: nn.ModuleDict | None = None  # the release's five encoders, when they differ

    def _make_level_encoders(self) -> nn.ModuleDict:
        self.level_encoders = nn.ModuleDict({str(k): VGG19Encoder(last=f"relu{k}_1").eval() for k in (1, 2, 3, 4, 5)})
        return self.level_encoders

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        # weights saved from a release with five different encoders hold them: make room before loading
        if self.level_encoders is None and any(k.startswith("level_encoders.") for k in state_dict):
            self._make_level_encoders().to(next(self.encoder.parameters()).device)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _encode(self, x: torch.Tensor, k: int) -> torch.Tensor:
        tap = f"relu{k}_1"
        enc = self.encoder if self.level_encoders is None else self.level_encoders[str(k)]
        return enc(x, [tap])[tap]

    def trainable(self):
        return list(self.decoders.parameters())

    def encode_style(self, style):
        if self.level_encoders is None:
            return self.encoder(style, TAPS_1_TO_5)
        return {f"relu{k}_1": self._encode(style, k) for k in (1, 2, 3, 4, 5)}

    def _wct(self, cf: torch.Tensor, sf: torch.Tensor) -> torch.Tensor:
        return torch.stack([whiten_colour(c, s, content_identity=self.impl_params, naive=self.naive)
                            for c, s in zip(cf, sf)])

    def transfer(self, content, codes, mix, alpha):
        x = content
        for k in self.levels:
            tap = f"relu{k}_1"
            cf = self._encode(x, k)
            csf = mix([self._wct(cf, s[tap]) for s in codes])
            x = self.decoders[str(k)](alpha * csf + (1.0 - alpha) * cf)
        return x

    def health_outputs(self, content, style):
        """The stylized output and each level's decoder on its own level's features of the content (what it is
        trained to reconstruct): one dead level flattens the whole cascade after it."""
        out = {"output": self(content, style)}
        feats = self.encoder(content, TAPS_1_TO_5)
        for k in (1, 2, 3, 4, 5):
            out[f"decoder{k}"] = self.decoders[str(k)](feats[f"relu{k}_1"])
        return out

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
        (:mod:`safin.io.torch7`). Each level runs its own encoder file, as PytorchWCT does (``e1``..``e5``);
        when the five agree on every layer they share (truncations of one network) one encoder pass serves
        every level, which gives the same features. Without the encoder files the load refuses (their
        decoders were trained on them) unless ``our_encoder``."""
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
        if not encoders:
            if not our_encoder:
                raise InputError(f"WCT reference: no vgg_normalised_conv{{1..5}}_1.t7 given; {AUTHORS_ENCODER}. Give "
                                 "the encoder files too, or pass --our-encoder (our_encoder=True) to pair them anyway")
            self.reference_encoder = "this suite's vgg19_normalised, chosen explicitly (colours may shift)"
            return self
        lacking = [f"vgg_normalised_conv{k}_1.t7" for k in range(1, 6) if k not in encoders]
        if lacking:
            raise InputError(f"WCT reference: {', '.join(lacking)} missing; each level runs its own encoder file "
                             f"(given: {', '.join(p.name for p in paths)})")
        try:
            ours = {k: vgg_state_from_reference(state) for k, state in encoders.items()}
        except ValueError as e:
            raise InputError(f"WCT reference encoders: {e}") from None
        deepest = ours[5]
        truncations = all(key in deepest and torch.equal(value, deepest[key])
                          for state in ours.values() for key, value in state.items())
        try:
            load_encoder_state(self.encoder, deepest)
            if truncations:
                self.level_encoders = None
            else:
                levels = self._make_level_encoders().to(next(self.encoder.parameters()).device)
                for k, state in ours.items():
                    load_encoder_state(levels[str(k)], state)
        except ValueError as e:
            raise InputError(f"WCT reference encoders: {e}") from None
        where = found[("vgg_normalised", 5)].parent
        self.reference_encoder = (f"the authors' vgg_normalised_conv{{1..5}}_1.t7 ({where}; "
                                  + ("truncations of one network: one pass" if truncations else "one per level") + ")")
        return self
