"""Our import of each authors' release against a restatement of the authors' own forward pass.

For ``adain``, ``sanet``, ``safin`` and ``wct`` this file restates, in plain float64 torch, the code path
of the authors' reference repository that turns their released files into a stylized image: the layer
order, padding and pooling of their networks, the encoder slices, how each file is read into them (by
module index or by layer name, exactly as their ``load_state_dict`` / ``load_lua(...).get(i)`` binds it)
and their transfer function. The synthetic release files of ``tests/release_files.py`` are loaded both
into that restatement and into our model (``load_reference``), and the two images must agree to ~1e-9.

Why not a key/shape check: a loader whose key map swaps two layers of one shape (two 256->256 decoder
convs, ``f`` and ``g`` of an attention block) loads every tensor without complaint and only shows up in
the images. So each test also rewrites one file with two same-shaped layers swapped and checks that our
import of the broken file moves far away from the reference computed from the original files.

Reference code is read, never copied: everything below is restated from these files (mirrors of the
authors' repositories):

- AdaIN: naoto0804/pytorch-AdaIN ``net.py`` (``vgg``, ``decoder`` Sequentials), ``function.py``
  (``calc_mean_std``, ``adaptive_instance_normalization``), ``test.py`` (``style_transfer``; ``vgg``
  cut to its first 31 children).
- SANet: GlebSBrykin/SANET ``Eval.py`` (``vgg``/``decoder`` Sequentials, ``enc_1``..``enc_5`` slices,
  ``SANet``, ``Transform``, the evaluation loop with one step).
- SAFIN: Aaditya-Singh/SAFIN ``wave_net.py`` (``WaveEncoder.encode``/``encode_transform``/``forward``,
  ``WaveDecoder.decode``), ``utils.py`` (``get_wav``, ``WavePool``, ``WaveUnpool``, ``stat_transform``),
  ``function.py`` (``Attention``, ``SAFIN``), ``test.py`` (``style_transfer`` with ``safin_list``). That
  repository has no licence: only facts (order, shapes, formulas) are taken, written here in our own form.
- WCT: sunshineatnoon/PytorchWCT at ee9d813, ``modelsNIPS.py`` (``encoder1..5``, ``decoder1..5``: which
  ``.get(i)`` module feeds which conv, reflection pads, max-pool, nearest upsampling), ``util.py``
  (``WCT.__init__``: one file per encoder and decoder; ``whiten_and_color``: float64 ``torch.svd``, +I on
  the content covariance, eigenvalues below 1e-5 cut; ``transform``), ``WCT.py`` (``styleTransfer``: levels
  5..1, level k encodes the previous level's output and the style with ``e_k``, decodes with ``d_k``).

Outputs are compared unclamped (``clamp=False``: with random weights many pixels leave [0, 1] and a
clamp would hide differences there) and clamped (the default call, against the reference clamped as
``save_image`` does). Content 48x64 and style 64x48 px: every side a multiple of 16, so none of our
wrappers pads (AdaIN/SAFIN ``size_multiple`` 8, SANet/WCT 16) and the comparison is exact.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import baselines
from safin.io.releases import RELEASES
from tests.release_files import conv_like, write_release
from tests.t7_writer import save_sequential

TOL = 1e-9            # max |ours - reference|, relative to max |reference|
BROKEN_MIN = 1e-5     # a swapped pair of layers must move the output at least this much (relative)
SEED = 3

# --------------------------------------------------------------------------------------------------
# Shared building blocks of the reference code (each repository defines its own copy of these)


def mean_std(x, eps=1e-5):
    """calc_mean_std (pytorch-AdaIN function.py; copies in SANET Eval.py, SAFIN utils.py/function.py):
    per-channel mean and sqrt(unbiased variance over positions + eps)."""
    flat = x.flatten(2)
    return flat.mean(2)[..., None, None], (flat.var(2) + eps).sqrt()[..., None, None]


def normalise(x):
    """mean_variance_norm (SANET) / mean_normalization (SAFIN)."""
    m, s = mean_std(x)
    return (x - m) / s


def adain(c, s):
    """adaptive_instance_normalization / stat_transform: content standardised, style's mean and std."""
    sm, ss = mean_std(s)
    return normalise(c) * ss + sm


def attend(q, k, v, out_shape):
    """The attention both SANet.forward and SAFIN's Attention.forward compute: logits Qᵀ K over the
    style positions (no scaling), softmax over the style positions, values Vᵀ-weighted back onto the
    content positions, reshaped to the content map."""
    a = torch.softmax(q.flatten(2).transpose(1, 2) @ k.flatten(2), dim=-1)   # (B, Nc, Ns)
    return (v.flatten(2) @ a.transpose(1, 2)).reshape(out_shape)


def conv(x, w, b, pad=True):
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect") if pad else x, w, b)


# Module kinds of an nn.Sequential, one character per child, in child order (so child i's parameters are
# the state dict's "i.weight"/"i.bias", as load_state_dict binds them): C conv, P ReflectionPad2d(1),
# R ReLU, M MaxPool2d(2, 2), U Upsample(x2, nearest).
def _kinds(spec: str) -> str:
    return spec.replace(" ", "")


# pytorch-AdaIN net.py ``vgg`` (= SANET Eval.py ``vgg``): the 1x1 preprocessing conv, then VGG-19's
# 16 convs (each pad, conv, relu) with a max-pool after relu1_2, relu2_2, relu3_4 and relu4_4.
VGG = _kinds("C PCR PCR M PCR PCR M PCR PCR PCR PCR M PCR PCR PCR PCR M PCR PCR PCR PCR")
# pytorch-AdaIN net.py ``decoder`` (= SANET Eval.py ``decoder``): relu4_1 back to RGB.
DECODER = _kinds("PCR U PCR PCR PCR PCR U PCR PCR U PCR PC")
assert len(VGG) == 53 and len(DECODER) == 29


def run_sequential(kinds: str, state: dict, x, start=0, stop=None, ceil_mode=True, get=None):
    """Children ``start:stop`` of a Sequential of ``kinds`` whose conv i takes ``get(i)`` -> (weight, bias)
    (default: ``state["i.weight"]``, ``state["i.bias"]``)."""
    get = get or (lambda i: (state[f"{i}.weight"], state[f"{i}.bias"]))
    for i in range(start, len(kinds) if stop is None else stop):
        kind = kinds[i]
        if kind == "C":
            x = F.conv2d(x, *get(i))
        elif kind == "P":
            x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        elif kind == "R":
            x = F.relu(x)
        elif kind == "M":
            x = F.max_pool2d(x, 2, 2, ceil_mode=ceil_mode)
        elif kind == "U":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
    return x


def load_pth(path) -> dict:
    """torch.load then load_state_dict into the float32 model, made float64 here."""
    return _double(torch.load(path, map_location="cpu", weights_only=True))


def _double(obj):
    if isinstance(obj, dict):
        return {k: _double(v) for k, v in obj.items()}
    return obj.double()


# --------------------------------------------------------------------------------------------------
# AdaIN: pytorch-AdaIN test.py


def reference_adain(files: dict[str, Path], content, style):
    decoder, vgg = load_pth(files["decoder.pth"]), load_pth(files["vgg_normalised.pth"])
    encode = lambda x: run_sequential(VGG, vgg, x, stop=31)  # test.py keeps children[:31]: up to relu4_1
    t = adain(encode(content), encode(style))                 # style_transfer, alpha = 1
    return run_sequential(DECODER, decoder, t)


# --------------------------------------------------------------------------------------------------
# SANet: GlebSBrykin/SANET Eval.py


def reference_sanet(files: dict[str, Path], content, style):
    decoder = load_pth(files["decoder_iter_500000.pth"])
    tr = load_pth(files["transformer_iter_500000.pth"])
    vgg = load_pth(files["vgg_normalised.pth"])

    def encode(x):  # enc_1..enc_4 = children[0:31] (relu4_1), enc_5 = children[31:44] (relu5_1)
        f4 = run_sequential(VGG, vgg, x, stop=31)
        return f4, run_sequential(VGG, vgg, f4, start=31, stop=44)

    def sanet_block(name, c, s):
        p = lambda layer, x: F.conv2d(x, tr[f"{name}.{layer}.weight"], tr[f"{name}.{layer}.bias"])
        o = attend(p("f", normalise(c)), p("g", normalise(s)), p("h", s), c.shape)
        return p("out_conv", o) + c

    (c4, c5), (s4, s5) = encode(content), encode(style)
    up = F.interpolate(sanet_block("sanet5_1", c5, s5), scale_factor=2, mode="nearest")
    t = conv(sanet_block("sanet4_1", c4, s4) + up, tr["merge_conv.weight"], tr["merge_conv.bias"])
    return run_sequential(DECODER, decoder, t)  # one step (args.steps = 1); no alpha in the reference


# --------------------------------------------------------------------------------------------------
# SAFIN: Aaditya-Singh/SAFIN test.py (style_transfer with safin_list), wave_net.py, utils.py, function.py

# WaveEncoder.encode, level by level: the convs (each reflection-padded 3x3 + ReLU, except the unpadded
# 1x1 conv0 without ReLU) then, for levels 1-3, the Haar pool named after the level.
WAVE_LEVELS = {1: ("conv0", "conv1_1", "conv1_2"), 2: ("conv2_1", "conv2_2"),
               3: ("conv3_1", "conv3_2", "conv3_3", "conv3_4"), 4: ("conv4_1",)}
# WaveDecoder.decode: the convs in order, ("unpool", k) = recon_block k with the skips of pool k; ReLU
# after every conv but the last.
WAVE_DECODER = ("conv4_1", ("unpool", 3), "conv3_4", "conv3_3", "conv3_2", "conv3_1", ("unpool", 2), "conv2_2",
                "conv2_1", ("unpool", 1), "conv1_2", "conv1_1")
BANDS = ("LL", "LH", "HL", "HH")


def reference_safin(files: dict[str, Path], content, style):
    ckpt = load_pth(files["decoder.pth.tar"])
    dec, safin4, safin3 = ckpt["decoder_state_dict"], ckpt["meta_adain4_state_dict"], ckpt["meta_adain3_state_dict"]
    enc = load_pth(files["vgg_normalised.pth"])  # WaveEncoder layout, pool filters included (as loaded)

    def encode_level(level, x):
        """-> (LL or relu4_1, [LH, HL, HH] or None). The pools are grouped stride-2 2x2 convs holding
        the file's filters (get_wav's Conv2d, groups = channels, no bias)."""
        for name in WAVE_LEVELS[level]:
            x = F.conv2d(x, enc[f"{name}.weight"], enc[f"{name}.bias"]) if name == "conv0" else \
                F.relu(conv(x, enc[f"{name}.weight"], enc[f"{name}.bias"]))
        if level == 4:
            return x, None
        out = [F.conv2d(x, enc[f"pool{level}.{b}.weight"], stride=2, groups=x.shape[1]) for b in BANDS]
        return out[0], out[1:]

    def safin(m, c, s):
        """function.py SAFIN.forward: attention(content, style) -> relu(gamma_conv), relu(beta_conv);
        standardised content times shared_weight plus shared_bias, then times gamma plus beta."""
        p = lambda layer, x: F.conv2d(x, m[f"{layer}.weight"], m[f"{layer}.bias"])
        a = attend(p("attention.query_conv", normalise(c)), p("attention.key_conv", normalise(s)),
                   p("attention.value_conv", s), c.shape)
        gamma, beta = F.relu(p("gamma_conv", a)), F.relu(p("beta_conv", a))
        shared = normalise(c) * m["shared_weight"].view(1, -1, 1, 1) + m["shared_bias"].view(1, -1, 1, 1)
        return shared * gamma + beta

    # encode_transform: the style's plain features (get_all_features: LL per level, bands, relu4_1)
    s_feat, s_skips, x = {}, {}, style
    for level in (1, 2, 3, 4):
        x, s_skips[level] = encode_level(level, x)
        s_feat[level] = x
    # the content level by level: LL takes the style LL's statistics; bands: stat_transform at levels
    # 1-2, safin3 (one module for the three bands) at level 3
    c_skips, x = {}, content
    for level in (1, 2, 3, 4):
        x, bands = encode_level(level, x)
        if level == 4:
            break
        x = adain(x, s_feat[level])
        band_fn = (lambda c, s: safin(safin3, c, s)) if level == 3 else adain
        c_skips[level] = [band_fn(b, sb) for b, sb in zip(bands, s_skips[level])]
    t = safin(safin4, x, s_feat[4])  # style_transfer: safin_list[1](transformed, vgg(style)[-1]); alpha = 1

    for step in WAVE_DECODER:
        if isinstance(step, tuple):  # WaveUnpool: transposed grouped convs of LL and the skips, summed
            k = step[1]
            ll, rest = t, [b[..., :t.shape[2], :t.shape[3]] for b in c_skips[k]]
            t = sum(F.conv_transpose2d(band, dec[f"recon_block{k}.{name}.weight"], stride=2, groups=band.shape[1])
                    for name, band in zip(BANDS, [ll, *rest]))
        else:
            t = conv(t, dec[f"{step}.weight"], dec[f"{step}.bias"])
            if step != "conv1_1":
                t = F.relu(t)
    return t


# --------------------------------------------------------------------------------------------------
# WCT: sunshineatnoon/PytorchWCT (ee9d813) WCT.py styleTransfer, util.py WCT, modelsNIPS.py

# modelsNIPS encoderK: the vgg_normalised_convK_1.t7 modules at these Sequential positions, the layers of
# ``VGG`` up to reluK_1 (MaxPool2d(2, 2) without ceil_mode); decoderK: ``.get(i)`` of
# feature_invertor_convK_1.t7 at the positions of these layer strings (UpsamplingNearest2d(x2)).
WCT_ENCODER_END = {1: 4, 2: 11, 3: 18, 4: 31, 5: 44}       # children up to and including reluK_1
WCT_DECODERS = {1: _kinds("PC"), 2: _kinds("PCR U PCR PC"), 3: _kinds("PCR U PCR PCR U PCR PC"), 4: DECODER,
                5: _kinds("PCR U PCR PCR PCR PCR U PCR PCR PCR PCR U PCR PCR U PCR PC")}
# the .get(i) indices modelsNIPS reads, to check the strings above
_WCT_DECODER_GETS = {1: (1,), 2: (1, 5, 8), 3: (1, 5, 8, 12, 15), 4: (1, 5, 8, 11, 14, 18, 21, 25, 28),
                     5: (1, 5, 8, 11, 14, 18, 21, 24, 27, 31, 34, 38, 41)}
_WCT_ENCODER_GETS = {5: (0, 2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42)}
assert all(tuple(i for i, c in enumerate(WCT_DECODERS[k]) if c == "C") == g for k, g in _WCT_DECODER_GETS.items())
assert tuple(i for i, c in enumerate(VGG[:WCT_ENCODER_END[5]]) if c == "C") == _WCT_ENCODER_GETS[5]


def t7_getter(path):
    """load_lua(path) then ``.get(i).weight`` / ``.bias`` (0-based), here with torchfile, in float64."""
    import torchfile

    modules = torchfile.load(str(path)).modules
    return lambda i: (torch.from_numpy(modules[i].weight).double(), torch.from_numpy(modules[i].bias).double())


def first_below(values, eps) -> int:
    """The reference's loop over the (descending) singular values: the index of the first one < eps."""
    small = torch.nonzero(values < eps)
    return int(small[0]) if len(small) else len(values)


def whiten_and_color(cf, sf, eps=1e-5):
    """util.py WCT.whiten_and_color on (C, N) features in float64: covariances / (N - 1); +I on the content
    one; torch.svd; singular values from the first one below eps on dropped; c_v d^-1/2 c_vᵀ whitens,
    s_v e^1/2 s_vᵀ colours, then the style mean is added."""
    cf = cf - cf.mean(1, keepdim=True)
    c_u, c_e, c_v = torch.svd(cf @ cf.T / (cf.shape[1] - 1) + torch.eye(cf.shape[0], dtype=cf.dtype), some=False)
    s_mean = sf.mean(1, keepdim=True)
    sf = sf - s_mean
    s_u, s_e, s_v = torch.svd(sf @ sf.T / (sf.shape[1] - 1), some=False)
    k_c, k_s = first_below(c_e, eps), first_below(s_e, eps)
    whitened = c_v[:, :k_c] @ torch.diag(c_e[:k_c].pow(-0.5)) @ c_v[:, :k_c].T @ cf
    return s_v[:, :k_s] @ torch.diag(s_e[:k_s].pow(0.5)) @ s_v[:, :k_s].T @ whitened + s_mean


def reference_wct(folder: Path, content, style):
    enc = {k: t7_getter(folder / f"vgg_normalised_conv{k}_1.t7") for k in range(1, 6)}
    dec = {k: t7_getter(folder / f"feature_invertor_conv{k}_1.t7") for k in range(1, 6)}
    encode = lambda k, x: run_sequential(VGG, {}, x, stop=WCT_ENCODER_END[k], ceil_mode=False, get=enc[k])
    image = content
    for k in (5, 4, 3, 2, 1):  # styleTransfer: e_k on the style and on the previous level's image
        sf, cf = encode(k, style)[0], encode(k, image)[0]
        csf = whiten_and_color(cf.reshape(cf.shape[0], -1), sf.reshape(sf.shape[0], -1)).reshape(cf.shape)
        image = run_sequential(WCT_DECODERS[k], {}, csf[None], get=dec[k])  # transform's alpha = 1
    return image


# --------------------------------------------------------------------------------------------------
# AdaAttN: Huage001/AdaAttN at 524b2b1 (Apache-2.0), models/adaattn_model.py (the VGG Sequential, enc_1..enc_5,
# encode_with_intermediate, get_key, forward with --shallow_layer --skip_connection_3 as test_adaattn.sh runs it,
# seed 6666) and models/networks.py (calc_mean_std, mean_variance_norm, AdaAttN, Transformer, Decoder)

ENC_SLICES = ((0, 4), (4, 11), (11, 18), (18, 31), (31, 44))   # relu1_1 .. relu5_1


def encode_slices(vgg: dict, x) -> list:
    """``encode_with_intermediate`` (AdaAttN, StyTR-2, as SANET's): the VGG Sequential's enc_1..enc_5 slices in
    turn, relu1_1 .. relu5_1."""
    feats = []
    for start, stop in ENC_SLICES:
        x = run_sequential(VGG, vgg, x, start, stop)
        feats.append(x)
    return feats
ADAATTN_DECODER_1 = _kinds("PCRU")
ADAATTN_DECODER_2 = _kinds("PCR PCR PCR PCR U PCR PCR U PCR PC")


def reference_adaattn(files: dict[str, Path], content, style, max_sample_3=64 * 64, max_sample=256 * 256, seed=6666):
    dec = load_pth(files["latest_net_decoder.pth"])
    tr = load_pth(files["latest_net_transformer.pth"])
    a3 = load_pth(files["latest_net_adaattn_3.pth"])
    vgg = load_pth(files["vgg_normalised.pth"])
    encode = lambda x: encode_slices(vgg, x)  # noqa: E731

    def get_key(feats, last):  # shallow layers: each shallower map resized by F.interpolate's default, normalised
        h, w = feats[last].shape[2:]
        return torch.cat([normalise(F.interpolate(feats[i], (h, w))) for i in range(last)] + [normalise(feats[last])],
                         dim=1)

    def block(state, prefix, c, s, ck, sk, limit):
        p = lambda name, x: F.conv2d(x, state[f"{prefix}{name}.weight"], state[f"{prefix}{name}.bias"])
        fq, g, h = p("f", ck), p("g", sk), p("h", s)
        b, _, hg, wg = g.shape
        g = g.view(b, -1, wg * hg)
        if wg * hg > limit:
            torch.manual_seed(seed)
            index = torch.randperm(wg * hg)[:limit]
            g = g[:, :, index]
            sv = h.view(b, -1, wg * hg)[:, :, index].transpose(1, 2)
        else:
            sv = h.view(b, -1, wg * hg).transpose(1, 2)
        b, _, hc, wc = fq.shape
        fq = fq.view(b, -1, wc * hc).permute(0, 2, 1)
        a = torch.softmax(torch.bmm(fq, g), dim=-1)
        mean = torch.bmm(a, sv)
        std = torch.sqrt(torch.relu(torch.bmm(a, sv ** 2) - mean ** 2))
        mean = mean.view(b, hc, wc, -1).permute(0, 3, 1, 2)
        std = std.view(b, hc, wc, -1).permute(0, 3, 1, 2)
        return std * normalise(c) + mean

    with torch.random.fork_rng():  # the reference reseeds the global generator inside forward
        cf, sf = encode(content), encode(style)
        skip = block(a3, "", cf[2], sf[2], get_key(cf, 2), get_key(sf, 2), max_sample_3)
        t4 = block(tr, "attn_adain_4_1.", cf[3], sf[3], get_key(cf, 3), get_key(sf, 3), max_sample)
        t5 = block(tr, "attn_adain_5_1.", cf[4], sf[4], get_key(cf, 4), get_key(sf, 4), max_sample)
        t = conv(t4 + F.interpolate(t5, scale_factor=2, mode="nearest"), tr["merge_conv.weight"], tr["merge_conv.bias"])
    get = lambda name: (lambda i: (dec[f"{name}.{i}.weight"], dec[f"{name}.{i}.bias"]))
    x = run_sequential(ADAATTN_DECODER_1, dec, t, get=get("decoder_layer_1"))
    return run_sequential(ADAATTN_DECODER_2, dec, torch.cat([x, skip], dim=1), get=get("decoder_layer_2"))


# --------------------------------------------------------------------------------------------------
# StyTr²: diyiiyiii/StyTR-2 at c11ea32 (no licence: facts only, restated here in our own form), models/StyTR.py
# (PatchEmbed, the decoder Sequential, StyTrans.forward's Ics path with the test-time `return Ics`),
# models/transformer.py (Transformer.forward with its defaults, TransformerEncoderLayer / TransformerDecoderLayer
# forward_post, nn.MultiheadAttention's packed projections), test.py (eval mode: no dropout). Sequence-first
# (tokens, batch, channels), as their code; the CAPE resized to the STYLE grid and the output reshaped with its last
# side int(sqrt(tokens)), as theirs: so only same-size square images are a case both can run.

STYTR2_HEADS = 8


def _mha(state, prefix, q, k, v):
    """nn.MultiheadAttention(512, 8) in eval mode on (L, B, C) inputs: in_proj_weight's three row blocks project
    q, k, v; 8 heads of 64; softmax(q kᵀ / sqrt(64)) v; heads concatenated; out_proj."""
    w, b = state[prefix + "in_proj_weight"], state[prefix + "in_proj_bias"]
    d = q.shape[-1]
    hd = d // STYTR2_HEADS

    def heads(x, i):  # (L, B, d) -> (B, heads, L, hd)
        y = x @ w[i * d:(i + 1) * d].T + b[i * d:(i + 1) * d]
        return y.reshape(y.shape[0], y.shape[1], STYTR2_HEADS, hd).permute(1, 2, 0, 3)

    qh, kh, vh = heads(q, 0), heads(k, 1), heads(v, 2)
    a = torch.softmax(qh @ kh.transpose(-1, -2) / hd ** 0.5, dim=-1) @ vh          # (B, heads, Lq, hd)
    out = a.permute(2, 0, 1, 3).reshape(q.shape[0], q.shape[1], d)
    return out @ state[prefix + "out_proj.weight"].T + state[prefix + "out_proj.bias"]


def _ln(state, prefix, x):
    return F.layer_norm(x, x.shape[-1:], state[prefix + "weight"], state[prefix + "bias"], eps=1e-5)


def _mlp(state, prefix, x):
    h = torch.relu(x @ state[prefix + "linear1.weight"].T + state[prefix + "linear1.bias"])
    return h @ state[prefix + "linear2.weight"].T + state[prefix + "linear2.bias"]


def reference_stytr2(files: dict[str, Path], content, style):
    tr = load_pth(files["transformer_iter_160000.pth"])
    emb = load_pth(files["embedding_iter_160000.pth"])
    dec = load_pth(files["decoder_iter_160000.pth"])
    embed = lambda x: F.conv2d(x, emb["proj.weight"], emb["proj.bias"], stride=8)
    c_map, s_map = embed(content), embed(style)
    # CAPE: adaptive average pool to 18 x 18, new_ps, bilinear (align_corners False) to the style's size
    pos = F.conv2d(F.adaptive_avg_pool2d(c_map, 18), tr["new_ps.weight"], tr["new_ps.bias"])
    pos = F.interpolate(pos, size=s_map.shape[-2:], mode="bilinear", align_corners=False)
    seq = lambda m: m.flatten(2).permute(2, 0, 1)                                   # (L, B, C)
    s, c, p = seq(s_map), seq(c_map), seq(pos)
    for i in range(3):  # the style encoder: no positions
        e = f"encoder_s.layers.{i}."
        s = _ln(tr, e + "norm1.", s + _mha(tr, e + "self_attn.", s, s, s))
        s = _ln(tr, e + "norm2.", s + _mlp(tr, e, s))
    for i in range(3):  # the content encoder: CAPE on queries and keys
        e = f"encoder_c.layers.{i}."
        c = _ln(tr, e + "norm1.", c + _mha(tr, e + "self_attn.", c + p, c + p, c))
        c = _ln(tr, e + "norm2.", c + _mlp(tr, e, c))
    t = c
    for i in range(3):  # forward_post: both blocks attend from the content (+CAPE) to the style memory
        e = f"decoder.layers.{i}."
        t = _ln(tr, e + "norm1.", t + _mha(tr, e + "self_attn.", t + p, s, s))
        t = _ln(tr, e + "norm2.", t + _mha(tr, e + "multihead_attn.", t + p, s, s))
        t = _ln(tr, e + "norm3.", t + _mlp(tr, e, t))
    t = _ln(tr, "decoder.norm.", t)
    n, b, ch = t.shape
    side = int(n ** 0.5)
    hs = t.permute(1, 2, 0).reshape(b, ch, n // side, side)
    return run_sequential(DECODER, dec, hs)


REFERENCES = {"adain": reference_adain, "sanet": reference_sanet, "safin": reference_safin, "wct": reference_wct,
              "adaattn": reference_adaattn, "stytr2": reference_stytr2}

# The deliberate breaks: (method, file, the two same-shaped layers to swap in it)
BREAKS = (
    ("adain", "decoder.pth", "5", "8"),                                   # two 256->256 decoder convs
    ("sanet", "transformer_iter_500000.pth", "sanet4_1.f", "sanet4_1.g"),  # query and key convs of one block
    ("safin", "decoder.pth.tar", "conv3_3", "conv3_2"),                   # two 256->256 decoder convs
    ("wct", "feature_invertor_conv5_1.t7", 5, 8),                         # two 512->512 decoder convs
    ("wct", "vgg_normalised_conv4_1.t7", 19, 22),                         # two 256->256 convs of e4 only
    ("adaattn", "latest_net_transformer.pth", "attn_adain_4_1.f", "attn_adain_4_1.g"),  # content and style key convs
    ("adaattn", "latest_net_decoder.pth", "decoder_layer_2.4", "decoder_layer_2.7"),   # two 256->256 decoder convs
    ("stytr2", "transformer_iter_160000.pth", "encoder_c.layers.0.linear1", "encoder_s.layers.0.linear1"),  # the two encoders
    ("stytr2", "transformer_iter_160000.pth", "decoder.layers.1.norm1", "decoder.layers.1.norm2"),  # two norms of a layer
    ("stytr2", "decoder_iter_160000.pth", "5", "8"),                                  # two 256->256 decoder convs
)

# --------------------------------------------------------------------------------------------------


def images(method: str = ""):
    """Content 48 x 64 and style 64 x 48; for StyTr² both 64 x 64 (its code runs same-size square images only)."""
    gen = torch.Generator().manual_seed(SEED)
    if method == "stytr2":
        return tuple(torch.rand(1, 3, 64, 64, generator=gen, dtype=torch.float64) for _ in range(2))
    return (torch.rand(1, 3, 48, 64, generator=gen, dtype=torch.float64),
            torch.rand(1, 3, 64, 48, generator=gen, dtype=torch.float64))


def release_path(files: dict[str, Path], release_file) -> Path:
    """The written file that is the release's ``release_file`` (its name, an alias, or with .tar)."""
    names = (release_file.name, *getattr(release_file, "aliases", ()), release_file.name + ".tar")
    return next(files[n] for n in names if n in files)


def ours(method: str, files: dict[str, Path], folder: Path, content, style, clamp: bool):
    model = baselines.build(method, encoder_weights="random")
    if method == "wct":
        model.load_reference(folder)
    else:  # the release's load order (SAFIN's decoder is written under its Dropbox name decoder.pth.tar)
        model.load_reference(*(release_path(files, f) for f in RELEASES[method].files))
    model = model.double().eval()
    with torch.inference_mode():
        return model, model(content, style, alpha=1.0, clamp=clamp)


def reference(method, files, folder, content, style):
    with torch.inference_mode():
        return REFERENCES[method](folder if method == "wct" else files, content, style)


def rel_diff(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """method -> (files, folder, reference output): written and computed once per method."""
    made = {}

    def get(method):
        if method not in made:
            folder = tmp_path_factory.mktemp(f"release-{method}")
            files = write_release(method, folder, seed=SEED)
            made[method] = (files, folder, reference(method, files, folder, *images(method)))
        return made[method]

    return get


METHODS = ("adain", "sanet", "safin", "wct", "adaattn", "stytr2")


@pytest.mark.parametrize("method", METHODS)
def test_release_matches_restated_reference(method, release):
    files, folder, ref = release(method)
    content, style = images(method)
    assert ref.shape == content.shape and torch.isfinite(ref).all()
    model, out = ours(method, files, folder, content, style, clamp=False)
    if method == "wct":  # five different encoder files: our WCT must run one per level, as e1..e5 do
        assert model.level_encoders is not None
    assert out.dtype == torch.float64
    diff = rel_diff(out, ref)
    # the random weights must give a non-trivial image: a clamp-free comparison with real spread
    assert float(ref.std()) > 1e-3 * float(ref.abs().max())
    _, clamped = ours(method, files, folder, content, style, clamp=True)
    diff_clamped = float((clamped - ref.clamp(0, 1)).abs().max())
    print(f"\n{method}: max|ours - reference| / max|reference| = {diff:.3g} (max|ref| {float(ref.abs().max()):.3g});"
          f" clamped: {diff_clamped:.3g}")
    assert diff <= TOL, f"{method}: our import differs from the restated reference by {diff:.3g} (relative)"
    assert diff_clamped <= TOL


def _swap_layers(method: str, path: Path, a, b) -> None:
    """Rewrite ``path`` with the two same-shaped layers ``a`` and ``b`` exchanged."""
    if path.suffix == ".t7":
        from safin.io.torch7 import read_modules

        modules = [conv_like(m) for m in read_modules(path)]
        assert modules[a].fields["weight"].shape == modules[b].fields["weight"].shape
        modules[a], modules[b] = modules[b], modules[a]
        save_sequential(path, modules)
        return
    obj = torch.load(path, map_location="cpu", weights_only=True)
    state = obj["decoder_state_dict"] if method == "safin" else obj
    for kind in ("weight", "bias"):
        ka, kb = f"{a}.{kind}", f"{b}.{kind}"
        assert state[ka].shape == state[kb].shape
        state[ka], state[kb] = state[kb], state[ka]
    torch.save(obj, path)


@pytest.mark.parametrize("method, name, a, b", BREAKS, ids=[f"{m}-{n.split('.')[0]}" for m, n, *_ in BREAKS])
def test_swapped_layers_are_caught(method, name, a, b, release, tmp_path):
    """Our import of a file with two same-shaped layers swapped loads without complaint, and the
    comparison against the reference from the ORIGINAL files fails by far (> BROKEN_MIN, 10^4 x TOL):
    the test above would catch a wrong key map. The WCT encoder case swaps two convs of
    vgg_normalised_conv4_1.t7 only, which only the level-4 encoder reads."""
    files, folder, ref = release(method)
    broken_folder = tmp_path / "broken"
    broken = write_release(method, broken_folder, seed=SEED)  # a fresh copy of the same files
    _swap_layers(method, broken[name], a, b)
    content, style = images(method)
    _, out = ours(method, broken, broken_folder, content, style, clamp=False)
    diff = rel_diff(out, ref)
    print(f"\n{method}: swapped {a} <-> {b} in {name}: relative difference {diff:.3g}")
    assert diff > BROKEN_MIN, f"{method}: swapping {a} and {b} in {name} went unnoticed ({diff:.3g})"


def test_adaattn_samples_the_style_positions_as_the_reference(release):
    """Above ``max_sample`` style positions AdaAttN attends to a random subset: ``torch.manual_seed(6666)`` then
    ``torch.randperm`` (the relu3_1 block at 4096, so every 512 px style is sampled there). Limits small enough
    for this 64 x 48 style (relu3_1: 192 positions, relu4_1: 48) must give the reference's subset, hence its image;
    and the sampling must matter (a model that ignored it would differ)."""
    files, folder, full = release("adaattn")
    content, style = images()
    with torch.inference_mode():
        ref = reference_adaattn(files, content, style, max_sample_3=64, max_sample=20)
    model = baselines.build("adaattn", encoder_weights="random", max_sample_3=64)
    model.load_reference(*(release_path(files, f) for f in RELEASES["adaattn"].files))
    for block in (model.transform.attn_adain_4_1, model.transform.attn_adain_5_1):
        block.max_sample = 20
    model = model.double().eval()
    state = torch.random.get_rng_state()
    with torch.inference_mode():
        out = model(content, style, alpha=1.0, clamp=False)
        model.seed = 1
        other_seed = model(content, style, alpha=1.0, clamp=False)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random stream is left alone
    assert rel_diff(out, ref) <= TOL, rel_diff(out, ref)
    assert rel_diff(full, ref) > BROKEN_MIN and rel_diff(other_seed, ref) > BROKEN_MIN
