"""The paper's model: SAFIN in the wavelet base network (``safin``), and its FIN ablation (``safin_fin``).

Wiring (reference code, methods.md §1.3): the style is encoded once; the content is re-encoded level
by level with a transform between levels —

- after pool1 and pool2: AdaIN on LL and on each high-frequency band (LH, HL, HH) against the same
  band of the style;
- after pool3: AdaIN on LL; SAFIN(256) (one module shared by the three bands) on LH, HL, HH;
- at relu4_1: SAFIN(512) against the plain style relu4_1;
- ``t = alpha·t + (1 − alpha)·relu4_1(content)`` (plain content path); the skips are not blended;
- the wavelet decoder reconstructs from t with the transformed skips (Haar unpooling).

Loss (reference code): content = MSE(relu4_1(out), relu4_1(content)) on the wavelet encoder's LL
path; style = Σ_{relu1_1..relu4_1} MSE(μ) + MSE(σ); total = 1·content + 10·style.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from safin.blocks.encoder import WaveVGGEncoder
from safin.io.weights import load_encoder_weights
from safin.blocks.losses import content_loss, style_loss
from safin.methods import (InputError, Mixer, StyleTransfer, as_one_batch, load_checkpoint, load_into,
                      load_authors_encoder, register)
from safin.models.modules import SAFIN
from safin.blocks.statistics import adain
from safin.blocks.wavelet import WaveUnpool


class WaveDecoder(nn.Module):
    """Mirror of :class:`WaveVGGEncoder`: convs with reflection padding, Haar unpooling with skips.

    3,505,219 parameters (the same count as the AdaIN decoder). Layer names are the reference's.
    """

    LAYERS = (("conv4_1", 512, 256), ("unpool", 3, 256), ("conv3_4", 256, 256), ("conv3_3", 256, 256),
              ("conv3_2", 256, 256), ("conv3_1", 256, 128), ("unpool", 2, 128), ("conv2_2", 128, 128),
              ("conv2_1", 128, 64), ("unpool", 1, 64), ("conv1_2", 64, 64), ("conv1_1", 64, 3))

    def __init__(self):
        super().__init__()
        for name, a, b in self.LAYERS:
            if name == "unpool":
                self.add_module(f"recon_block{a}", WaveUnpool(b))
            else:
                self.add_module(name, nn.Conv2d(a, b, 3))

    def forward(self, x: torch.Tensor, skips: dict[int, Sequence[torch.Tensor]]) -> torch.Tensor:
        for name, a, _ in self.LAYERS:
            if name == "unpool":
                x = getattr(self, f"recon_block{a}")(x, *skips[a])
            else:
                x = getattr(self, name)(F.pad(x, (1, 1, 1, 1), mode="reflect"))
                if name != "conv1_1":
                    x = F.relu(x)
        return x


@dataclass
class WaveStyleCode:
    """The style's plain wavelet encoding: LL and bands per level, and relu4_1."""
    ll: dict[int, torch.Tensor]
    skips: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    relu4_1: torch.Tensor


@register
class SafinNet(StyleTransfer):
    """SAFIN with the wavelet base network (the paper's model).

    ``attention="sa"`` is SAFIN; ``"uniform"`` the FIN ablation (:class:`SafinFinNet`).
    ``impl_params``: True = reference code (MSE losses, raw-style value path), False = paper text.
    """

    name = "safin"
    label = "SAFIN"
    test_resize = "square"  # SAFIN test.py: transforms.Resize((size, size))
    size_multiple = 8
    min_side = 16
    attention_kind = "sa"

    def __init__(self, encoder_weights: str | dict = "normalised", *, impl_params: bool = True,
                 memory_efficient: bool = True, content_weight: float = 1.0, style_weight: float = 10.0):
        super().__init__()
        self.encoder = load_encoder_weights(WaveVGGEncoder(), encoder_weights).eval()
        self.decoder = WaveDecoder()
        kw = dict(attention=self.attention_kind, impl_params=impl_params, memory_efficient=memory_efficient)
        self.safin4 = SAFIN(512, **kw)
        self.safin3 = SAFIN(256, **kw)
        self.impl_params = impl_params
        self.content_weight, self.style_weight = content_weight, style_weight

    def trainable(self) -> Iterable[nn.Parameter]:
        return [*self.decoder.parameters(), *self.safin4.parameters(), *self.safin3.parameters()]

    def encode_style(self, style: torch.Tensor) -> WaveStyleCode:
        return self._style_code(self.encoder(style))

    @staticmethod
    def _style_code(out: dict) -> WaveStyleCode:
        return WaveStyleCode(ll={i: out[f"ll{i}"] for i in (1, 2, 3)},
                             skips={i: out[f"skips{i}"] for i in (1, 2, 3)}, relu4_1=out["relu4_1"])

    def _chain(self, content: torch.Tensor, code: WaveStyleCode):
        """One style's chain through the wavelet encoder: AdaIN on LL and on the bands after pool1 and pool2,
        AdaIN on LL and SAFIN(256) on the bands after pool3, SAFIN(512) at relu4_1. Returns (t, skips)."""
        h = content
        skips: dict[int, tuple] = {}
        for level in (1, 2, 3):
            ll, bands = self.encoder.block(level, h)
            h = adain(ll, code.ll[level])
            transform = adain if level < 3 else self.safin3
            skips[level] = tuple(transform(b, code.skips[level][j]) for j, b in enumerate(bands))
        return self.safin4(self.encoder.relu4_1(h), code.relu4_1), skips

    def _stylize_features(self, content: torch.Tensor, codes: Sequence[WaveStyleCode], mix: Mixer):
        if len(codes) == 1:
            return self._chain(content, codes[0])
        if self.impl_params:
            # Reference code (test.py style_transfer with interpolation weights): the content is expanded
            # into one independent chain per style, and only SAFIN-4's output and the skips are blended.
            chains = [self._chain(content, c) for c in codes]
            t = mix([t_i for t_i, _ in chains])
            skips = {level: tuple(mix([sk[level][j] for _, sk in chains]) for j in range(3)) for level in (1, 2, 3)}
            return t, skips
        # impl_params=False (this suite's earlier reading; the paper does not describe interpolation): one
        # chain whose LL is blended after every level's AdaIN, so deeper levels see the blended LL.
        h = content
        skips = {}
        for level in (1, 2, 3):
            ll, bands = self.encoder.block(level, h)
            h = mix([adain(ll, c.ll[level]) for c in codes])
            transform = adain if level < 3 else self.safin3
            skips[level] = tuple(mix([transform(b, c.skips[level][j]) for c in codes]) for j, b in enumerate(bands))
        return mix([self.safin4(self.encoder.relu4_1(h), c.relu4_1) for c in codes]), skips

    def transfer(self, content, codes, mix, alpha):
        t, skips = self._stylize_features(content, codes, mix)
        if alpha < 1.0:
            plain = self.encoder(content)["relu4_1"]
            t = alpha * t + (1.0 - alpha) * plain
        return self.decoder(t, skips)

    def losses(self, content: torch.Tensor, style: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():   # one plain pass over content and style gives the code and the loss targets
            plain_c, plain_s = as_one_batch(self.encoder, [(content,), (style,)])
        content_relu4_1 = plain_c["relu4_1"]
        style_feats = [plain_s[f"relu{i}_1"] for i in (1, 2, 3, 4)]
        t, skips = self._stylize_features(content, [self._style_code(plain_s)], Mixer(1))
        out = self.decoder(t, skips)
        out_feats = self.encoder.taps(out)
        lc = content_loss(out_feats[-1], content_relu4_1, impl_params=self.impl_params)
        ls = style_loss(out_feats, style_feats, impl_params=self.impl_params)
        return {"content": lc, "style": ls, "total": self.content_weight * lc + self.style_weight * ls}

    def load_reference(self, decoder_ckpt, vgg=None, *, our_encoder: bool = False) -> "SafinNet":
        """Load the authors' ``decoder.pth``: ``decoder_state_dict`` plus the SAFIN modules under
        ``meta_adain4/3_state_dict`` (what test.py reads) or ``safin4/3_state_dict`` (what train.py
        writes). ``vgg``: optionally their ``vgg_normalised.pth`` (WaveEncoder keys ``conv0``.. or
        pytorch-AdaIN's Sequential keys)."""
        ckpt = load_checkpoint(decoder_ckpt) if not isinstance(decoder_ckpt, dict) else decoder_ckpt
        if "decoder_state_dict" not in ckpt:
            raise InputError(f"{decoder_ckpt}: no 'decoder_state_dict' (keys: {sorted(ckpt)[:8]})")
        haar = lambda k: k.split(".")[0].startswith(("recon_block", "pool"))  # fixed filters, not weights
        load_into(self.decoder, ckpt["decoder_state_dict"], f"{decoder_ckpt}: decoder", drop=haar)
        for level, module in ((4, self.safin4), (3, self.safin3)):
            for key in (f"meta_adain{level}_state_dict", f"safin{level}_state_dict"):
                if key in ckpt:
                    load_into(module, ckpt[key], f"{decoder_ckpt}: {key}")
                    break
            else:
                raise InputError(f"{decoder_ckpt}: neither meta_adain{level}_state_dict nor safin{level}_state_dict")
        load_authors_encoder(self, vgg, our_encoder=our_encoder, what=f"{decoder_ckpt}: SAFIN decoder")
        return self


@register
class SafinFinNet(SafinNet):
    """The ablation of paper §4.2.1: SAFIN's modules with self-attention removed (FIN).

    γ_s and β_s come from the style alone: the SA map is replaced by uniform attention, so they are
    ReLU(W ⊗ mean_positions(value_conv(F_s))), constant over the content's positions (see
    :class:`safin.models.modules.UniformAttention`). Everything else equals ``safin``.
    """

    name = "safin_fin"
    label = "FIN (no SA)"
    attention_kind = "uniform"
