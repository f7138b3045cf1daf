"""AdaAttN (Liu et al., ICCV 2021), as Huage001/AdaAttN implements it (Apache-2.0; read at 524b2b1, facts in
docs/methods.md "AdaAttN"): attention over the style produces a *per-position* mean and standard deviation for
the normalised content (SAFIN's idea too, reached at the same time).

- Encoder: the normalised VGG-19 to relu5_1 (frozen), the image in [0, 1].
- Keys ("shallow layers", the released ``--shallow_layer``): at level l the features relu1_1 .. relu{l}_1, each
  resized to level l's size with ``F.interpolate``'s default nearest, mean-variance normalised per level, and
  concatenated shallowest first (448 / 960 / 1472 channels at relu3_1 / 4_1 / 5_1).
- :class:`AdaAttNBlock` (their ``AdaAttN``): ``f``, ``g`` 1x1 convolutions of the content and style keys, ``h`` of the
  raw style feature; A = softmax(f(Kc)ᵀ g(Ks)) over style positions, no 1/√C; mean = A·h(s),
  std = sqrt(relu(A·h(s)² - mean²)) (no eps); out = std * mvn(c) + mean. Above ``max_sample`` style positions a
  random subset of ``max_sample`` of them is attended to (the relu3_1 block: 4096, so a 512 px style's 16384
  relu3_1 positions are sampled; the others 65536), drawn as ``torch.randperm`` after ``torch.manual_seed(seed)``,
  seed 6666 at test time.
- Transform (their ``Transformer``): blocks ``attn_adain_4_1`` and ``attn_adain_5_1``,
  ``merge_conv(reflect_pad(block4_1 + nearest_up2(block5_1)))``. The relu3_1 block (``adaattn_3``, the released
  ``--skip_connection_3``) feeds the decoder after its first upsampling (concatenated after the decoder's feature).
- Decoder (their ``Decoder``): ``decoder_layer_1`` (512->256, up) and ``decoder_layer_2`` (512->256->256->256->128,
  up, 128->128->64, up, 64->64->3), reflection padding, ReLU after every conv but the last; Sequentials with
  their indices, so the released files load by key.
- Loss: global style (μ/σ of relu2_1..relu5_1, weight 10) + local feature (relu2_1..relu5_1: the decoded
  image's features against std * mvn(c) + mean from the parameter-free attention of the keys over the raw style
  features, weight 3) + content (weight 0 in the release's recipe); no identity losses.

Our ``alpha`` (the reference has none) blends both attended maps with the content's, as for SANet.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from safin.blocks.attention import attention
from safin.blocks.encoder import TAPS_1_TO_5, VGG19Encoder
from safin.blocks.losses import distance, style_loss
from safin.blocks.statistics import mean_variance_norm
from safin.io.weights import load_encoder_weights
from safin.methods import (InputError, StyleTransfer, as_one_batch, load_authors_encoder, load_checkpoint, load_into,
                           register)
from safin.runtime.precision import full_precision

#: the seed the reference's modules get at test time (``AdaAttNModel.seed``, adaattn_model.py:L118)
TEST_SEED = 6666
#: style positions the relu3_1 block and the local loss attend to at most (adaattn_model.py:L95)
MAX_SAMPLE_3 = 64 * 64
#: the relu4_1 / relu5_1 blocks' default (networks.py:L113; never passed)
MAX_SAMPLE = 256 * 256
#: channels of the key at relu{l}_1 with the shallow layers: Σ of relu1_1 .. relu{l}_1's channels
KEY_CHANNELS = {2: 64 + 128, 3: 64 + 128 + 256, 4: 64 + 128 + 256 + 512, 5: 64 + 128 + 256 + 512 + 512}


def keys(feats: list[torch.Tensor], level: int, shallow: bool = True) -> torch.Tensor:
    """The attention key at ``feats[level]`` (0: relu1_1): every shallower map resized to its size (nearest, as
    ``F.interpolate``'s default), each normalised, concatenated shallowest first; without ``shallow``: the
    normalised map alone."""
    if not shallow or level == 0:
        return mean_variance_norm(feats[level])
    size = feats[level].shape[-2:]
    return torch.cat([mean_variance_norm(F.interpolate(f, size=size)) for f in feats[:level]]
                     + [mean_variance_norm(feats[level])], dim=1)


def sampled_positions(n: int, max_sample: int, seed: int | None, device) -> torch.Tensor | None:
    """The style positions attended to: None (all) up to ``max_sample``; else the first ``max_sample`` of a random
    permutation, the one ``torch.manual_seed(seed); torch.randperm(n)`` gives (drawn on a generator of its own, so
    the caller's random stream is left alone); ``seed`` None: drawn from the global stream (the reference's
    training, which passes a fresh random seed every step)."""
    if n <= max_sample:
        return None
    gen = None
    if seed is not None:
        gen = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=gen)[:max_sample].to(device)


@full_precision  # unscaled attention logits: bf16 would move the softmax (as SANet's)
def attended_statistics(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, memory_efficient: bool = True):
    """(mean, std) of the values ``v`` (B, Ns, C) under the attention of queries ``q`` (B, Nc, Ck) over keys ``k``
    (B, Ns, Ck): mean = A v, std = sqrt(relu(A v² - mean²)), A = softmax(q kᵀ) without scaling; each (B, Nc, C).
    One attention call over [v, v²], so the memory-efficient path never holds A."""
    c = v.shape[-1]
    both = attention(q, k, torch.cat([v, v * v], dim=-1), scale=1.0, memory_efficient=memory_efficient)
    mean = both[..., :c]
    return mean, torch.sqrt(torch.relu(both[..., c:] - mean * mean))


def _to_map(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return x.transpose(1, 2).reshape(x.shape[0], -1, h, w)


class AdaAttNBlock(nn.Module):
    """Their ``AdaAttN(in_planes, max_sample, key_planes)``: keys ``f``, ``g``, ``h``."""

    def __init__(self, channels: int, key_channels: int | None = None, max_sample: int = MAX_SAMPLE,
                 memory_efficient: bool = True):
        super().__init__()
        kc = key_channels or channels
        self.f = nn.Conv2d(kc, kc, 1)
        self.g = nn.Conv2d(kc, kc, 1)
        self.h = nn.Conv2d(channels, channels, 1)
        self.max_sample = max_sample
        self.memory_efficient = memory_efficient

    @full_precision
    def forward(self, content, style, content_key, style_key, seed: int | None = TEST_SEED):
        b, _, hc, wc = content.shape
        q = self.f(content_key).flatten(2).transpose(1, 2)
        k = self.g(style_key).flatten(2)
        v = self.h(style).flatten(2)
        index = sampled_positions(k.shape[-1], self.max_sample, seed, k.device)
        if index is not None:
            k, v = k[..., index], v[..., index]
        mean, std = attended_statistics(q, k.transpose(1, 2), v.transpose(1, 2), self.memory_efficient)
        return _to_map(std, hc, wc) * mean_variance_norm(content) + _to_map(mean, hc, wc)


class AdaAttNTransform(nn.Module):
    """Their ``Transformer``: blocks at relu4_1 and relu5_1, merged by ``merge_conv`` (keys ``attn_adain_4_1``,
    ``attn_adain_5_1``, ``merge_conv``)."""

    def __init__(self, shallow: bool = True, memory_efficient: bool = True):
        super().__init__()
        self.attn_adain_4_1 = AdaAttNBlock(512, KEY_CHANNELS[4] if shallow else 512, memory_efficient=memory_efficient)
        self.attn_adain_5_1 = AdaAttNBlock(512, KEY_CHANNELS[5] if shallow else 512, memory_efficient=memory_efficient)
        self.merge_conv = nn.Conv2d(512, 512, 3)

    def forward(self, c4, s4, c5, s5, c4_key, s4_key, c5_key, s5_key, seed=TEST_SEED):
        up = F.interpolate(self.attn_adain_5_1(c5, s5, c5_key, s5_key, seed), scale_factor=2, mode="nearest")
        merged = self.attn_adain_4_1(c4, s4, c4_key, s4_key, seed) + up
        return self.merge_conv(F.pad(merged, (1, 1, 1, 1), mode="reflect"))


def _pad_conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]


class AdaAttNDecoder(nn.Module):
    """Their ``Decoder`` (keys ``decoder_layer_1.1``, ``decoder_layer_2.{1,4,7,10,14,17,21,24}``); ``skip``: the
    relu3_1 block's output joins after the first upsampling (``skip_connection_3``)."""

    def __init__(self, skip: bool = True):
        super().__init__()
        up = lambda: nn.Upsample(scale_factor=2, mode="nearest")  # noqa: E731
        self.decoder_layer_1 = nn.Sequential(*_pad_conv(512, 256), nn.ReLU(), up())
        layers: list[nn.Module] = []
        for cin, cout, then_up in ((512 if skip else 256, 256, False), (256, 256, False), (256, 256, False),
                                   (256, 128, True), (128, 128, False), (128, 64, True), (64, 64, False)):
            layers += [*_pad_conv(cin, cout), nn.ReLU()] + ([up()] if then_up else [])
        self.decoder_layer_2 = nn.Sequential(*layers, *_pad_conv(64, 3))
        self.skip = skip

    def forward(self, transformed, skip3=None):
        x = self.decoder_layer_1(transformed)
        if self.skip:
            x = torch.cat([x, skip3], dim=1)
        return self.decoder_layer_2(x)


@register
class AdaAttN(StyleTransfer):
    name = "adaattn"
    label = "AdaAttN"
    size_multiple = 16   # relu5_1 (1/16) upsampled by 2 must meet relu4_1 exactly (ceil-mode pooling)
    min_side = 32
    # test_adaattn.sh: --load_size 512 --crop_size 512, Resize([512, 512], BICUBIC) then a no-op crop
    test_resize = "square-bicubic"
    bf16_encoder = False  # unscaled attention softmax over normalised keys, as SANet's

    def __init__(self, encoder_weights: str | dict = "normalised", *, impl_params: bool = True, shallow: bool = True,
                 skip3: bool = True, memory_efficient: bool = True, global_weight: float = 10.0,
                 local_weight: float = 3.0, content_weight: float = 0.0, max_sample_3: int = MAX_SAMPLE_3,
                 seed: int = TEST_SEED):
        super().__init__()
        self.impl_params, self.shallow, self.skip3 = impl_params, shallow, skip3
        self.max_sample_3, self.seed = max_sample_3, seed
        self.encoder = load_encoder_weights(VGG19Encoder(last="relu5_1"), encoder_weights).eval()
        self.transform = AdaAttNTransform(shallow, memory_efficient)
        self.adaattn_3 = (AdaAttNBlock(256, KEY_CHANNELS[3] if shallow else 256, max_sample_3, memory_efficient)
                          if skip3 else None)
        self.decoder = AdaAttNDecoder(skip3)
        self.weights = dict(content=content_weight, global_style=global_weight, local=local_weight)

    def trainable(self):
        mods = [self.transform, self.decoder] + ([self.adaattn_3] if self.adaattn_3 is not None else [])
        return [p for m in mods for p in m.parameters()]

    def _features(self, x) -> list[torch.Tensor]:
        return list(self.encoder(x, TAPS_1_TO_5).values())

    def encode_style(self, style):
        feats = self._features(style)
        return {"feats": feats, "keys": {lv: keys(feats, lv, self.shallow) for lv in (2, 3, 4)
                                         if lv != 2 or self.adaattn_3 is not None}}

    def _attend(self, c, ckeys, s, seed):
        """(relu4_1 transform output, relu3_1 block output or None) for content features/keys and a style code."""
        t = self.transform(c[3], s["feats"][3], c[4], s["feats"][4], ckeys[3], s["keys"][3], ckeys[4], s["keys"][4],
                           seed)
        a3 = (self.adaattn_3(c[2], s["feats"][2], ckeys[2], s["keys"][2], seed)
              if self.adaattn_3 is not None else None)
        return t, a3

    def _decode(self, c, codes, mix, alpha, seed):
        ckeys = {lv: keys(c, lv, self.shallow) for lv in (2, 3, 4) if lv != 2 or self.adaattn_3 is not None}
        outs = [self._attend(c, ckeys, s, seed) for s in codes]
        t = mix([o[0] for o in outs])
        t = alpha * t + (1.0 - alpha) * c[3]
        a3 = None
        if self.adaattn_3 is not None:
            a3 = mix([o[1] for o in outs])
            a3 = alpha * a3 + (1.0 - alpha) * c[2]
        return self.decoder(t, a3)

    def transfer(self, content, codes, mix, alpha):
        return self._decode(self._features(content), codes, mix, alpha, self.seed)

    def losses(self, content, style):
        with torch.no_grad():
            c_feats, s_feats = as_one_batch(self._features, [(content,), (style,)])
            code = {"feats": s_feats, "keys": {lv: keys(s_feats, lv, self.shallow) for lv in (2, 3, 4)}}
        # the reference draws a fresh seed every training step (adaattn_model.py:L220): here from the trainer's
        # seeded stream, so a run stays a pure function of its seed
        seed = int(torch.randint(10_000_000, (1,)))
        out = self._decode(c_feats, [code], lambda maps: maps[0], 1.0, seed)
        o_feats = self._features(out)
        p = self.impl_params
        lg = style_loss(o_feats[1:], s_feats[1:], impl_params=p)
        ll = out.new_zeros(())
        with torch.no_grad():
            targets = [self._local_target(c_feats, s_feats, lv, seed) for lv in (1, 2, 3, 4)]
        for lv, target in zip((1, 2, 3, 4), targets):
            ll = ll + distance(o_feats[lv], target, p)
        lc = out.new_zeros(())
        if self.weights["content"] > 0:
            lc = sum(distance(mean_variance_norm(o_feats[lv]), mean_variance_norm(c_feats[lv]), p) for lv in (1, 2, 3, 4))
        w = self.weights
        total = w["global_style"] * lg + w["local"] * ll + w["content"] * lc
        return {"global_style": lg, "local": ll, "content": lc, "total": total}

    def _local_target(self, c_feats, s_feats, level, seed):
        """The local feature loss's target at ``level``: the parameter-free attention of the content keys over the
        style keys (no f, g, h), over the raw style features, as std * mvn(c) + mean (adaattn_model.py:L182-208)."""
        ck, sk = keys(c_feats, level, self.shallow), keys(s_feats, level, self.shallow)
        b, _, h, w = c_feats[level].shape
        k, v = sk.flatten(2), s_feats[level].flatten(2)
        index = sampled_positions(k.shape[-1], self.max_sample_3, seed, k.device)
        if index is not None:
            k, v = k[..., index], v[..., index]
        mean, std = attended_statistics(ck.flatten(2).transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                        self.transform.attn_adain_4_1.memory_efficient)
        return _to_map(std, h, w) * mean_variance_norm(c_feats[level]) + _to_map(mean, h, w)

    def load_reference(self, decoder, transformer=None, adaattn_3=None, vgg=None, *, our_encoder: bool = False):
        """Huage001/AdaAttN's ``latest_net_decoder.pth``, ``latest_net_transformer.pth`` and
        ``latest_net_adaattn_3.pth`` (plain state dicts; keys match ours, as their ``load_networks`` loads them
        strictly), and their ``vgg_normalised.pth``; or one folder holding them (as their README leaves them:
        ``checkpoints/AdaAttN/``, ``checkpoints/vgg_normalised.pth``; or AdaAttN_model.zip as downloaded)."""
        if transformer is None and not isinstance(decoder, dict) and Path(decoder).is_dir():
            from safin.io.releases import ReleaseError, files_in_folder

            try:
                decoder, transformer, adaattn_3, vgg = files_in_folder(self.name, decoder)
            except ReleaseError as e:
                raise InputError(str(e)) from None
        if transformer is None:
            raise InputError(f"{decoder}: AdaAttN needs latest_net_decoder.pth, latest_net_transformer.pth, "
                             "latest_net_adaattn_3.pth and vgg_normalised.pth, or the folder holding them")
        parts = [(self.decoder, decoder, "decoder"), (self.transform, transformer, "transformer")]
        if self.adaattn_3 is not None:
            if adaattn_3 is None:
                raise InputError(f"{decoder}: AdaAttN with the relu3_1 block needs latest_net_adaattn_3.pth as well")
            parts.append((self.adaattn_3, adaattn_3, "adaattn_3"))
        for module, src, what in parts:
            state = load_checkpoint(src) if not isinstance(src, dict) else src
            load_into(module, state, f"{src if not isinstance(src, dict) else what}: AdaAttN {what}")
        load_authors_encoder(self, vgg, our_encoder=our_encoder, what=f"{decoder}: AdaAttN decoder")
        return self
