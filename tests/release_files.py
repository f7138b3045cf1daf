"""Synthetic copies of the authors' released files: exactly their containers, keys and shapes (written from
methods.md and the reference repositories' layouts, not from our modules), with He-scaled random values
so a model built from them gives finite images. Used by the loaders' tests and the pretrained profile's
end-to-end test (served from 127.0.0.1)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from safin.io.torch7 import read_modules

from .t7_writer import Module, conv, save_sequential

# pytorch-AdaIN / SANet decoder (nn.Sequential): conv module indices and (out, in) channels
ADAIN_DECODER_CONVS = {1: (256, 512), 5: (256, 256), 8: (256, 256), 11: (256, 256), 14: (128, 256),
                       18: (128, 128), 21: (64, 128), 25: (64, 64), 28: (3, 64)}
# pytorch-AdaIN vgg_normalised.pth (nn.Sequential of 53 modules): conv indices and (out, in, k)
VGG_SEQ = {0: (3, 3, 1), 2: (64, 3, 3), 5: (64, 64, 3), 9: (128, 64, 3), 12: (128, 128, 3), 16: (256, 128, 3),
           19: (256, 256, 3), 22: (256, 256, 3), 25: (256, 256, 3), 29: (512, 256, 3), 32: (512, 512, 3),
           35: (512, 512, 3), 38: (512, 512, 3), 42: (512, 512, 3), 45: (512, 512, 3), 48: (512, 512, 3),
           51: (512, 512, 3)}


def _conv(prefix, cout, cin, k, gen):
    scale = (2.0 / (cin * k * k)) ** 0.5  # He initialisation: activations stay finite through the layers
    return {f"{prefix}weight": scale * torch.randn(cout, cin, k, k, generator=gen),
            f"{prefix}bias": 0.01 * torch.randn(cout, generator=gen)}


def _adain_decoder(gen):
    state = {}
    for idx, (cout, cin) in ADAIN_DECODER_CONVS.items():
        state.update(_conv(f"{idx}.", cout, cin, 3, gen))
    return state


def _vgg_sequential(gen):
    state = {}
    for idx, (cout, cin, k) in VGG_SEQ.items():
        state.update(_conv(f"{idx}.", cout, cin, k, gen))
    return state


def _safin_module(c, gen):
    state = {"shared_weight": torch.randn(c, generator=gen), "shared_bias": torch.randn(c, generator=gen)}
    for name in ("gamma_conv", "beta_conv", "attention.query_conv", "attention.key_conv", "attention.value_conv"):
        state.update(_conv(f"{name}.", c, c, 1, gen))
    return state


def _safin_decoder(gen):
    state = {}
    for name, cin, cout in (("conv4_1", 512, 256), ("conv3_4", 256, 256), ("conv3_3", 256, 256),
                            ("conv3_2", 256, 256), ("conv3_1", 256, 128), ("conv2_2", 128, 128),
                            ("conv2_1", 128, 64), ("conv1_2", 64, 64), ("conv1_1", 64, 3)):
        state.update(_conv(f"{name}.", cout, cin, 3, gen))
    for level, c in ((3, 256), (2, 128), (1, 64)):  # the fixed Haar filters, saved as parameters
        state.update(haar_filters(f"recon_block{level}.", c))
    return state


def haar_filters(prefix: str, channels: int) -> dict:
    """SAFIN's (WCT2's) fixed 2x2 Haar filters as its pooling/unpooling convolutions hold them: L = H = 1/√2 ·
    [1, 1] with H's first entry negated; band XY = outer(X, Y), one (1, 2, 2) filter per channel (methods.md)."""
    low = np.full(2, 2 ** -0.5)
    high = low.copy()
    high[0] = -high[0]
    bands = {"LL": (low, low), "LH": (low, high), "HL": (high, low), "HH": (high, high)}
    return {f"{prefix}{band}.weight": torch.from_numpy(np.outer(a, b)).float().expand(channels, 1, 2, 2).clone()
            for band, (a, b) in bands.items()}


#: SAFIN's vgg_normalised.pth as its test.py loads it into WaveEncoder: named convs to conv4_1, Haar pools
WAVE_ENCODER = (("conv0", 3, 3, 1), ("conv1_1", 64, 3, 3), ("conv1_2", 64, 64, 3), ("pool1", 64), ("conv2_1", 128, 64, 3),
                ("conv2_2", 128, 128, 3), ("pool2", 128), ("conv3_1", 256, 128, 3), ("conv3_2", 256, 256, 3),
                ("conv3_3", 256, 256, 3), ("conv3_4", 256, 256, 3), ("pool3", 256), ("conv4_1", 512, 256, 3))


def _wave_encoder(gen):
    state = {}
    for name, *shape in WAVE_ENCODER:
        state.update(haar_filters(f"{name}.", shape[0]) if name.startswith("pool") else _conv(f"{name}.", *shape, gen))
    return state


#: the relu after which vgg_normalised_convK_1.t7 ends, and the conv indices it holds (methods.md §4)
VGG_CONVS = {0: (3, 3, 1), 2: (64, 3, 3), 5: (64, 64, 3), 9: (128, 64, 3), 12: (128, 128, 3), 16: (256, 128, 3),
             19: (256, 256, 3), 22: (256, 256, 3), 25: (256, 256, 3), 29: (512, 256, 3), 32: (512, 512, 3),
             35: (512, 512, 3), 38: (512, 512, 3), 42: (512, 512, 3)}
LAST_CONV = {1: 2, 2: 9, 3: 16, 4: 29, 5: 42}
#: feature_invertor_convK_1.t7: conv index -> (out, in), written from methods.md §4, not from our code
DECODER_CONVS = {
    1: {1: (3, 64)},
    2: {1: (64, 128), 5: (64, 64), 8: (3, 64)},
    3: {1: (128, 256), 5: (128, 128), 8: (64, 128), 12: (64, 64), 15: (3, 64)},
    4: {1: (256, 512), 5: (256, 256), 8: (256, 256), 11: (256, 256), 14: (128, 256), 18: (128, 128), 21: (64, 128),
        25: (64, 64), 28: (3, 64)},
    5: {1: (512, 512), 5: (512, 512), 8: (512, 512), 11: (512, 512), 14: (256, 512), 18: (256, 256), 21: (256, 256),
        24: (256, 256), 27: (128, 256), 31: (128, 128), 34: (64, 128), 38: (64, 64), 41: (3, 64)},
}


def other(name: str) -> Module:
    return Module(name)


def vgg_t7(path, k: int, rng) -> dict:
    modules, weights = [], {}
    for i in range(LAST_CONV[k] + 2):  # up to and including reluK_1
        if i in VGG_CONVS:
            cout, cin, ks = VGG_CONVS[i]
            modules.append(conv(cout, cin, ks, rng))
            weights[i] = modules[-1]
        else:
            modules.append(other("nn.ReLU" if i - 1 in VGG_CONVS else "nn.SpatialReflectionPadding"))
    save_sequential(path, modules)
    return weights


def decoder_t7(path, k: int, rng) -> dict:
    convs = DECODER_CONVS[k]
    modules, weights = [], {}
    for i in range(max(convs) + 1):
        if i in convs:
            modules.append(conv(*convs[i], 3, rng))
            weights[i] = modules[-1]
        else:
            modules.append(other("nn.SpatialReflectionPadding" if i + 1 in convs else "nn.ReLU"))
    save_sequential(path, modules)
    return weights


def conv_like(m) -> Module:
    name = m.torch_typename().decode()
    if name.endswith("SpatialConvolution"):
        return Module(name, weight=np.array(m.weight), bias=np.array(m.bias))
    return Module(name)




def sanet_transformer(gen):
    state = {}
    for block in ("sanet4_1", "sanet5_1"):
        for c in ("f", "g", "h", "out_conv"):
            state.update(_conv(f"{block}.{c}.", 512, 512, 1, gen))
    state.update(_conv("merge_conv.", 512, 512, 3, gen))
    return state


# Huage001/AdaAttN (models/networks.py): Decoder's two Sequentials, conv child index -> (out, in) channels
ADAATTN_DECODER_1 = {1: (256, 512)}
ADAATTN_DECODER_2 = {1: (256, 512), 4: (256, 256), 7: (256, 256), 10: (128, 256), 14: (128, 128), 17: (64, 128),
                     21: (64, 64), 24: (3, 64)}


def adaattn_block(prefix: str, channels: int, key_channels: int, gen) -> dict:
    """One ``AdaAttN(in_planes, key_planes)``: 1x1 convs f, g (key channels), h (value channels)."""
    state = {}
    for name, c in (("f", key_channels), ("g", key_channels), ("h", channels)):
        state.update(_conv(f"{prefix}{name}.", c, c, 1, gen))
    return state


def adaattn_decoder(gen):
    state = {}
    for seq, convs in (("decoder_layer_1", ADAATTN_DECODER_1), ("decoder_layer_2", ADAATTN_DECODER_2)):
        for idx, (cout, cin) in convs.items():
            state.update(_conv(f"{seq}.{idx}.", cout, cin, 3, gen))
    return state


def adaattn_transformer(gen):
    """``Transformer(512, key_planes=960, shallow_layer=True)``: keys 960 at relu4_1, 960 + 512 at relu5_1."""
    state = {**adaattn_block("attn_adain_4_1.", 512, 960, gen), **adaattn_block("attn_adain_5_1.", 512, 1472, gen)}
    state.update(_conv("merge_conv.", 512, 512, 3, gen))
    return state


def adaattn_3(gen):
    """``AdaAttN(256, 64 * 64, key_planes=64 + 128 + 256)``: the relu3_1 block of ``--skip_connection_3``."""
    return adaattn_block("", 256, 448, gen)


# diyiiyiii/StyTR-2 (models/transformer.py, models/StyTR.py): the state dicts test.py loads strictly
STYTR2_D, STYTR2_FFN, STYTR2_LAYERS = 512, 2048, 3


def _linear(prefix, cout, cin, gen):
    return {f"{prefix}weight": cin ** -0.5 * torch.randn(cout, cin, generator=gen),
            f"{prefix}bias": 0.02 * torch.randn(cout, generator=gen)}


def _layer_norm(prefix, d, gen):
    return {f"{prefix}weight": 1.0 + 0.1 * torch.randn(d, generator=gen), f"{prefix}bias": 0.1 * torch.randn(d, generator=gen)}


def _mha(prefix, d, gen):
    """``nn.MultiheadAttention(d, 8)``: the packed q/k/v projection and the output projection."""
    return {f"{prefix}in_proj_weight": d ** -0.5 * torch.randn(3 * d, d, generator=gen),
            f"{prefix}in_proj_bias": 0.02 * torch.randn(3 * d, generator=gen),
            **_linear(f"{prefix}out_proj.", d, d, gen)}


def stytr2_transformer(gen):
    """``Transformer()`` with its defaults: encoder_c, encoder_s (3 post-norm layers each, no final norm), decoder (3
    layers with self_attn and multihead_attn, then decoder.norm), new_ps (the CAPE's 1x1 conv): 130 tensors."""
    d, state = STYTR2_D, {}
    for enc in ("encoder_c", "encoder_s"):
        for i in range(STYTR2_LAYERS):
            p = f"{enc}.layers.{i}."
            state.update({**_mha(p + "self_attn.", d, gen), **_linear(p + "linear1.", STYTR2_FFN, d, gen),
                          **_linear(p + "linear2.", d, STYTR2_FFN, gen), **_layer_norm(p + "norm1.", d, gen),
                          **_layer_norm(p + "norm2.", d, gen)})
    for i in range(STYTR2_LAYERS):
        p = f"decoder.layers.{i}."
        state.update({**_mha(p + "self_attn.", d, gen), **_mha(p + "multihead_attn.", d, gen),
                      **_linear(p + "linear1.", STYTR2_FFN, d, gen), **_linear(p + "linear2.", d, STYTR2_FFN, gen)})
        for n in ("norm1.", "norm2.", "norm3."):
            state.update(_layer_norm(p + n, d, gen))
    state.update(_layer_norm("decoder.norm.", d, gen))
    state.update(_conv("new_ps.", d, d, 1, gen))
    return state


def stytr2_embedding(gen):
    """``PatchEmbed()``: ``proj``, an 8x8 convolution of stride 8 from RGB to 512 channels."""
    return _conv("proj.", STYTR2_D, 3, 8, gen)


def safin_checkpoint(gen, keys=("meta_adain4_state_dict", "meta_adain3_state_dict")):
    return {"decoder_state_dict": _safin_decoder(gen), keys[0]: _safin_module(512, gen), keys[1]: _safin_module(256, gen)}


def write_wct_release(root: Path, seed: int = 0, *, independent: bool = False) -> tuple[dict, dict]:
    """The ten .t7 files; returns (vgg, decoders) modules. The five encoders are truncations of one network,
    or with ``independent`` five networks of their own (PytorchWCT loads each level's file on its own)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vgg = vgg_t7(root / "vgg_normalised_conv5_1.t7", 5, rng)
    for k in (1, 2, 3, 4):
        if independent:
            vgg_t7(root / f"vgg_normalised_conv{k}_1.t7", k, np.random.default_rng(seed + 10 + k))
            continue
        modules = read_modules(root / "vgg_normalised_conv5_1.t7")[: LAST_CONV[k] + 2]
        save_sequential(root / f"vgg_normalised_conv{k}_1.t7", [conv_like(m) for m in modules])
    decoders = {k: decoder_t7(root / f"feature_invertor_conv{k}_1.t7", k, np.random.default_rng(seed + k))
                for k in range(1, 6)}
    return vgg, decoders


def write_release(method: str, folder: Path, seed: int = 0) -> dict[str, Path]:
    """The files of ``method``'s release in ``folder`` under their released names; returns name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    if method == "wct":
        write_wct_release(folder, seed, independent=True)
        return {p.name: p for p in sorted(folder.glob("*.t7"))}
    files = {"adain": {"decoder.pth": _adain_decoder, "vgg_normalised.pth": _vgg_sequential},
             "sanet": {"decoder_iter_500000.pth": _adain_decoder, "transformer_iter_500000.pth": sanet_transformer,
                       "vgg_normalised.pth": _vgg_sequential},
             # the Dropbox link saves decoder.pth.tar (a torch file despite the name); the VGG in WaveEncoder's layout
             "safin": {"decoder.pth.tar": safin_checkpoint, "vgg_normalised.pth": _wave_encoder},
             # AdaAttN_model.zip's three state dicts (unpacked), and the README's separate vgg_normalised.pth
             "adaattn": {"latest_net_decoder.pth": adaattn_decoder, "latest_net_transformer.pth": adaattn_transformer,
                         "latest_net_adaattn_3.pth": adaattn_3, "vgg_normalised.pth": _vgg_sequential},
             # the README's four Drive files under the names test.py reads from experiments/
             "stytr2": {"decoder_iter_160000.pth": _adain_decoder, "transformer_iter_160000.pth": stytr2_transformer,
                        "embedding_iter_160000.pth": stytr2_embedding, "vgg_normalised.pth": _vgg_sequential}}[method]
    out = {}
    for name, make in files.items():
        torch.save(make(gen), folder / name)
        out[name] = folder / name
    return out
