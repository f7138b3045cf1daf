"""SANet (Park & Lee 2019), as GlebSBrykin/SANET implements it (methods.md §3): SANet's base network
(:mod:`safin.models.sanet_base`: encoder, two-level transform, decoder, losses) with the
style-attentional block at relu4_1 and relu5_1. SAFIN in the same base network is
:mod:`safin.models.sanet_safin`.
"""
from __future__ import annotations

from torch import nn

from safin.blocks.attention import attention
from safin.blocks.statistics import mean_variance_norm
from safin.methods import load_checkpoint, load_into, load_authors_encoder, register
from safin.models.sanet_base import SANetBase
from safin.runtime.precision import full_precision


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


@register
class SANet(SANetBase):
    name = "sanet"
    label = "SANet"
    test_resize = "none"  # SANET Eval.py's test_transform: ToTensor() only, the image at its own size
    block_key = "sanet"

    def make_block(self, channels: int) -> SANetBlock:
        return SANetBlock(channels, self.memory_efficient)

    def load_reference(self, decoder, transform, vgg=None, *, our_encoder: bool = False):
        """GlebSBrykin/SANET's ``decoder_iter_*.pth`` and ``transformer_iter_*.pth`` (keys match ours)."""
        dec = load_checkpoint(decoder) if not isinstance(decoder, dict) else decoder
        tr = load_checkpoint(transform) if not isinstance(transform, dict) else transform
        load_into(self.decoder, dec, f"{decoder}: decoder")
        load_into(self.transform, tr, f"{transform}: transformer")
        load_authors_encoder(self, vgg, our_encoder=our_encoder, what=f"{decoder}: SANet decoder")
        return self
