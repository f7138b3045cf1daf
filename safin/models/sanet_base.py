"""SANet's base network (Park & Lee 2019, as GlebSBrykin/SANET implements it; methods.md §3): the
backbone the paper's §4.1 puts SAFIN into, shared by ``baselines.sanet.SANet`` and
:class:`safin.models.sanet_safin.SANetSAFIN`.

Normalised VGG-19 to relu5_1 (frozen); a fusion block at relu4_1 and one at relu5_1, merged by
``merge_conv(pad(block4_1(c4, s4) + upsample(block5_1(c5, s5))))``; the AdaIN mirror decoder.
Loss: content = MSE(mvn φ4_1(g), mvn φ4_1(c)) + same at 5_1; style = Σ_{relu1_1..relu5_1} μ/σ MSE;
identity 1 = MSE(I_cc, c) + MSE(I_ss, s) (pixels), identity 2 = Σ_5 layers feature MSE;
total = 1·content + 3·style + 50·id1 + 1·id2.

A subclass chooses the fusion block (:meth:`SANetBase.make_block`) and the name its two blocks are
stored under (``block_key``: ``sanet`` -> ``transform.sanet4_1``, ``transform.sanet5_1``). The reference
SANet code has no ``alpha``; ours blends the merged feature with relu4_1 like AdaIN.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
import torch.nn.functional as F

from safin.blocks.decoders import mirror_decoder
from safin.blocks.encoder import TAPS_1_TO_5, VGG19Encoder
from safin.blocks.losses import content_loss, distance, style_loss
from safin.io.weights import load_encoder_weights
from safin.methods import StyleTransfer, as_one_batch


class TwoLevelTransform(nn.Module):
    """SANet's two-level transform around two fusion blocks ``{key}4_1`` and ``{key}5_1``."""

    def __init__(self, make_block: Callable[[int], nn.Module], key: str):
        super().__init__()
        self.key = key
        setattr(self, f"{key}4_1", make_block(512))
        setattr(self, f"{key}5_1", make_block(512))
        self.merge_conv = nn.Conv2d(512, 512, 3)

    def forward(self, c4, s4, c5, s5):
        up = F.interpolate(getattr(self, f"{self.key}5_1")(c5, s5), scale_factor=2, mode="nearest")
        merged = getattr(self, f"{self.key}4_1")(c4, s4) + up[..., :c4.shape[-2], :c4.shape[-1]]
        return self.merge_conv(F.pad(merged, (1, 1, 1, 1), mode="reflect"))


class SANetBase(StyleTransfer):
    """SANet's base network with the fusion block a subclass chooses (see the module docstring)."""

    # the unscaled attention softmax is sharp: bf16-rounded encoder features flip it (docs/performance.md)
    bf16_encoder = False
    size_multiple = 16
    min_side = 32
    #: the fusion blocks are stored as ``transform.{block_key}4_1`` / ``transform.{block_key}5_1``
    block_key = "block"

    def make_block(self, channels: int) -> nn.Module:
        raise NotImplementedError

    def __init__(self, encoder_weights: str | dict = "normalised", *, impl_params: bool = True,
                 memory_efficient: bool = True, content_weight: float = 1.0, style_weight: float = 3.0,
                 identity1_weight: float = 50.0, identity2_weight: float = 1.0):
        super().__init__()
        self.impl_params = impl_params
        self.memory_efficient = memory_efficient
        self.encoder = load_encoder_weights(VGG19Encoder(last="relu5_1"), encoder_weights).eval()
        self.transform = TwoLevelTransform(self.make_block, self.block_key)
        self.decoder = mirror_decoder(4)
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
            c_feats, s_feats = as_one_batch(lambda x: self.encoder(x, TAPS_1_TO_5), [(content,), (style,)])
        c4, c5, s4, s5 = c_feats["relu4_1"], c_feats["relu5_1"], s_feats["relu4_1"], s_feats["relu5_1"]
        # The stylized image and the two identity reconstructions (I_cc, I_ss) go through the transform,
        # decoder and loss encoder as one batch of 3B when content and style have one size: every op is
        # per sample, so it is the reference's three passes with a third of the kernel calls.
        out, i_cc, i_ss = as_one_batch(lambda *f: self.decoder(self.transform(*f)),
                                       [(c4, s4, c5, s5), (c4, c4, c5, c5), (s4, s4, s5, s5)])
        o_feats, f_cc, f_ss = as_one_batch(lambda x: self.encoder(x, TAPS_1_TO_5), [(out,), (i_cc,), (i_ss,)])
        p = self.impl_params
        lc = (content_loss(o_feats["relu4_1"], c4, impl_params=p, normalise=True)
              + content_loss(o_feats["relu5_1"], c5, impl_params=p, normalise=True))
        ls = style_loss(list(o_feats.values()), list(s_feats.values()), impl_params=p)
        l_id1 = distance(i_cc, content, p) + distance(i_ss, style, p)
        l_id2 = sum(distance(f_cc[t], c_feats[t], p) + distance(f_ss[t], s_feats[t], p) for t in TAPS_1_TO_5)
        w = self.weights
        total = w["content"] * lc + w["style"] * ls + w["identity1"] * l_id1 + w["identity2"] * l_id2
        return {"content": lc, "style": ls, "identity1": l_id1, "identity2": l_id2, "total": total}
