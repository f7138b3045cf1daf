"""SANet (Park & Lee 2019), as GlebSBrykin/SANET implements it (methods.md §3), and SAFIN in SANet's
base network (paper §4.1, Fig. 5: ``sanet_safin``).

SANet: normalised VGG-19 to relu5_1 (frozen); SANet blocks at relu4_1 and relu5_1, merged by
``merge_conv(pad(sanet4_1(c4, s4) + upsample(sanet5_1(c5, s5))))``; the AdaIN mirror decoder.
Loss: content = MSE(mvn φ4_1(g), mvn φ4_1(c)) + same at 5_1; style = Σ_{relu1_1..relu5_1} μ/σ MSE;
identity 1 = MSE(I_cc, c) + MSE(I_ss, s) (pixels), identity 2 = Σ_5 layers feature MSE;
total = 1·content + 3·style + 50·id1 + 1·id2.

``sanet_safin`` swaps both SANet blocks for SAFIN(512) modules and keeps everything else (merge conv,
decoder, losses, recipe), so the two train on identical terms — what the paper's Fig. 5b compares.
The reference SANet code has no ``alpha``; ours blends the merged feature with relu4_1 like AdaIN.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from safin.encoder import VGG19Encoder, load_encoder_weights
from safin.losses import content_loss, distance, style_loss
from safin.methods import (StyleTransfer, as_one_batch, load_checkpoint, load_into, load_reference_vgg,
                          register)
from safin.modules import SAFIN
from safin.ops import attention, mean_variance_norm
from safin.precision import full_precision

from .decoders import mirror_decoder

TAPS5 = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


class SANetBlock(nn.Module):
    """Style-attentional block: out_conv(softmax(f(mvn c)ᵀ g(mvn s)) · h(s)) + c (default init)."""

    def __init__(self, channels: int, memory_efficient: bool = True):
        super().__init__()
        self.f = nn.Conv2d(channels, channels, 1)
        self.g = nn.Conv2d(channels, channels, 1)
        self.h = nn.Conv2d(channels, channels, 1)
        self.out_conv = nn.Conv2d(channels, channels, 1)
        self.memory_efficient = memory_efficient

    @full_precision  # the attention logits are unscaled: bf16 would move the softmax
    def forward(self, content, style):
        b, c, hh, ww = content.shape
        q = self.f(mean_variance_norm(content)).flatten(2).transpose(1, 2)
        k = self.g(mean_variance_norm(style)).flatten(2).transpose(1, 2)
        v = self.h(style).flatten(2).transpose(1, 2)
        o = attention(q, k, v, scale=1.0, memory_efficient=self.memory_efficient)
        return self.out_conv(o.transpose(1, 2).reshape(b, c, hh, ww)) + content


class Transform(nn.Module):
    """SANet's two-level transform; ``block`` chooses SANet blocks or SAFIN modules."""

    def __init__(self, block: str = "sanet", memory_efficient: bool = True, impl_params: bool = True):
        super().__init__()
        if block == "sanet":
            self.sanet4_1 = SANetBlock(512, memory_efficient)
            self.sanet5_1 = SANetBlock(512, memory_efficient)
        elif block == "safin":
            self.sanet4_1 = SAFIN(512, memory_efficient=memory_efficient, impl_params=impl_params)
            self.sanet5_1 = SAFIN(512, memory_efficient=memory_efficient, impl_params=impl_params)
        else:
            raise ValueError(f"block must be 'sanet' or 'safin', not {block!r}")
        self.merge_conv = nn.Conv2d(512, 512, 3)

    def forward(self, c4, s4, c5, s5):
        up = F.interpolate(self.sanet5_1(c5, s5), scale_factor=2, mode="nearest")
        return self.merge_conv(F.pad(self.sanet4_1(c4, s4) + up[..., :c4.shape[-2], :c4.shape[-1]],
                                     (1, 1, 1, 1), mode="reflect"))


@register
class SANet(StyleTransfer):
    name = "sanet"
    # the unscaled attention softmax is sharp: bf16-rounded encoder features flip it (measured on the
    # trained demo model: mean |Δ| 2.2/255 with a bf16 encoder, 0.2/255 with a float32 one)
    bf16_encoder = False
    size_multiple = 16
    min_side = 32
    block = "sanet"

    def __init__(self, encoder_weights: str | dict = "normalised", *, impl_params: bool = True,
                 memory_efficient: bool = True, content_weight: float = 1.0, style_weight: float = 3.0,
                 identity1_weight: float = 50.0, identity2_weight: float = 1.0):
        super().__init__()
        self.encoder = load_encoder_weights(VGG19Encoder(last="relu5_1"), encoder_weights).eval()
        self.transform = Transform(self.block, memory_efficient, impl_params)
        self.decoder = mirror_decoder(4)
        self.impl_params = impl_params
        self.weights = dict(content=content_weight, style=style_weight, identity1=identity1_weight,
                            identity2=identity2_weight)

    def trainable(self):
        return [*self.transform.parameters(), *self.decoder.parameters()]

    def encode_style(self, style):
        return self.encoder(style, ["relu4_1", "relu5_1"])

    def transfer(self, content, codes, mix, alpha):
        c = self.encoder(content, ["relu4_1", "relu5_1"])
        t = mix([self.transform(c["relu4_1"], s["relu4_1"], c["relu5_1"], s["relu5_1"]) for s in codes])
        t = alpha * t + (1.0 - alpha) * c["relu4_1"]
        return self.decoder(t)

    def losses(self, content, style):
        with torch.no_grad():
            c_feats, s_feats = as_one_batch(lambda x: self.encoder(x, TAPS5), [(content,), (style,)])
        c4, c5, s4, s5 = c_feats["relu4_1"], c_feats["relu5_1"], s_feats["relu4_1"], s_feats["relu5_1"]
        # The stylized image and the two identity reconstructions (I_cc, I_ss) go through the transform,
        # decoder and loss encoder as one batch of 3B when content and style have one size: every op is
        # per sample, so it is the reference's three passes with a third of the kernel calls.
        out, i_cc, i_ss = as_one_batch(lambda *f: self.decoder(self.transform(*f)),
                                       [(c4, s4, c5, s5), (c4, c4, c5, c5), (s4, s4, s5, s5)])
        o_feats, f_cc, f_ss = as_one_batch(lambda x: self.encoder(x, TAPS5), [(out,), (i_cc,), (i_ss,)])
        p = self.impl_params
        lc = (content_loss(o_feats["relu4_1"], c4, impl_params=p, normalise=True)
              + content_loss(o_feats["relu5_1"], c5, impl_params=p, normalise=True))
        ls = style_loss(list(o_feats.values()), list(s_feats.values()), impl_params=p)
        l_id1 = distance(i_cc, content, p) + distance(i_ss, style, p)
        l_id2 = sum(distance(f_cc[t], c_feats[t], p) + distance(f_ss[t], s_feats[t], p) for t in TAPS5)
        w = self.weights
        total = w["content"] * lc + w["style"] * ls + w["identity1"] * l_id1 + w["identity2"] * l_id2
        return {"content": lc, "style": ls, "identity1": l_id1, "identity2": l_id2, "total": total}

    def load_reference(self, decoder, transform, vgg=None):
        """GlebSBrykin/SANET's ``decoder_iter_*.pth`` and ``transformer_iter_*.pth`` (keys match ours)."""
        dec = load_checkpoint(decoder) if not isinstance(decoder, dict) else decoder
        tr = load_checkpoint(transform) if not isinstance(transform, dict) else transform
        load_into(self.decoder, dec, f"{decoder}: decoder")
        load_into(self.transform, tr, f"{transform}: transformer")
        if vgg is not None:
            load_reference_vgg(self.encoder, vgg)
        return self


@register
class SANetSAFIN(SANet):
    """SAFIN modules in SANet's base network (paper §4.1): ``sanet4_1``/``sanet5_1`` are SAFIN(512)."""

    name = "sanet_safin"
    block = "safin"
