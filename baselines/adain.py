"""AdaIN (Huang & Belongie 2017), as pytorch-AdaIN implements it (methods.md §2).

Normalised VGG-19 to relu4_1 (frozen), AdaIN at relu4_1, the mirror decoder.
Loss (reference code): content = MSE(relu4_1(g), t) with t the AdaIN output (not the content
features); style = Σ_{relu1_1..relu4_1} MSE(μ) + MSE(σ); total = 1·content + 10·style.
"""
from __future__ import annotations

import torch

from safin.blocks.encoder import TAPS_1_TO_4, VGG19Encoder
from safin.io.weights import load_encoder_weights
from safin.blocks.losses import content_loss, style_loss
from safin.methods import StyleTransfer, as_one_batch, load_checkpoint, load_into, load_authors_encoder, register
from safin.blocks.statistics import adain

from safin.blocks.decoders import mirror_decoder


@register
class AdaIN(StyleTransfer):
    name = "adain"
    label = "AdaIN"
    test_resize = "shorter"  # pytorch-AdaIN test.py: transforms.Resize(size), the shorter side
    size_multiple = 8
    min_side = 16

    def __init__(self, encoder_weights: str | dict = "normalised", *, impl_params: bool = True,
                 content_weight: float = 1.0, style_weight: float = 10.0):
        super().__init__()
        self.encoder = load_encoder_weights(VGG19Encoder(last="relu4_1"), encoder_weights).eval()
        self.decoder = mirror_decoder(4)
        self.impl_params = impl_params
        self.content_weight, self.style_weight = content_weight, style_weight

    def trainable(self):
        return list(self.decoder.parameters())

    def encode_style(self, style):
        return self.encoder(style, ["relu4_1"])["relu4_1"]

    def transfer(self, content, codes, mix, alpha):
        c4 = self.encoder(content, ["relu4_1"])["relu4_1"]
        t = mix([adain(c4, s4) for s4 in codes])
        t = alpha * t + (1.0 - alpha) * c4
        return self.decoder(t)

    def losses(self, content, style):
        with torch.no_grad():
            c_feats, s_feats = as_one_batch(lambda x: self.encoder(x, TAPS_1_TO_4), [(content,), (style,)])
        c4, s_feats = c_feats["relu4_1"], list(s_feats.values())
        t = adain(c4, s_feats[-1])
        out = self.decoder(t)
        o_feats = list(self.encoder(out, TAPS_1_TO_4).values())
        lc = content_loss(o_feats[-1], t, impl_params=self.impl_params)
        ls = style_loss(o_feats, s_feats, impl_params=self.impl_params)
        return {"content": lc, "style": ls, "total": self.content_weight * lc + self.style_weight * ls}

    def load_reference(self, decoder, vgg=None, *, our_encoder: bool = False) -> "AdaIN":
        """pytorch-AdaIN's ``decoder.pth`` (a Sequential state dict; keys match ours as they are) and
        optionally its ``vgg_normalised.pth``."""
        state = load_checkpoint(decoder) if not isinstance(decoder, dict) else decoder
        load_into(self.decoder, state, f"{decoder}: AdaIN decoder")
        load_authors_encoder(self, vgg, our_encoder=our_encoder, what=f"{decoder}: AdaIN decoder")
        return self
