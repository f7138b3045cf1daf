"""StyTr² (Deng et al., CVPR 2022): style transfer with transformers, written from the paper; the facts that
decide whether the authors' released files load and give their images (layer sizes, key names, the order of the
operations, their test-time handling) were read from diyiiyiii/StyTR-2 at c11ea32. That repository has no licence:
nothing of its text is here (docs/methods.md "StyTr²" says which fact comes from which of its lines).

- Patch embedding (``embedding``): an 8x8 convolution of stride 8, RGB in [0, 1] to 512 channels (key ``proj``).
- Content-aware positional encoding (CAPE, ``transformer.new_ps``): the content's embedding average-pooled to
  18x18, a 1x1 convolution, resized back bilinearly (align_corners False); added to the content's queries and
  keys only (never to values, never to the style).
- Two transformer encoders (``transformer.encoder_c``, ``transformer.encoder_s``): three post-norm layers each
  (d_model 512, 8 heads, feed-forward 2048, ReLU, dropout 0.1), no final LayerNorm.
- Transformer decoder (``transformer.decoder``): three post-norm layers, then a LayerNorm (``decoder.norm``). In
  the released code both attention blocks of a layer (``self_attn`` and ``multihead_attn``) attend from the
  content (+CAPE) to the style memory: the block named ``self_attn`` is a second cross-attention, and the released
  weights were trained so (``decoder_self_attention=True`` gives the DETR layer, a self-attention over the content
  tokens first, as the code's unused pre-norm path has it).
- CNN decoder (``decoder``): pytorch-AdaIN's relu4_1 decoder layout (keys ``1.weight`` .. ``28.weight``), from
  1/8 resolution back to RGB, no output activation.
- VGG-19 (normalised) to relu5_1, frozen: losses only; stylization never runs it.
- Loss: content = Σ_{relu4_1, relu5_1} MSE of the mean-variance normalised features; style = Σ_{relu1_1..5_1} MSE
  of μ and σ; identity 1 = MSE(I_cc, I_c) + MSE(I_ss, I_s) in pixels, identity 2 = Σ_{relu1_1..5_1} MSE of the
  features of I_cc, I_ss against I_c, I_s, where I_cc is the content stylized with itself (CAPE from its own
  embedding), I_ss the style with itself; total = 7 content + 10 style + 70 id1 + 1 id2 (train.py's values).

Two generalisations, both identical to the reference wherever it runs (content and style of one square size, as
its test.py's 512 px centre crop makes them): the CAPE is resized to the *content's* token grid (the reference
resizes it to the style's, which must then equal the content's) and the output is reshaped to the content's
(h, w) grid (the reference takes the last side as int(sqrt(tokens)), so a non-square content scrambles). Styles
of any size work: the style tokens carry no position.

Our ``alpha`` (the reference has none) blends the transformer's output for the style with its output for the
content as its own style, the identity path the identity losses train to reconstruct the content.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from safin.blocks.decoders import mirror_decoder
from safin.blocks.encoder import TAPS_1_TO_5, VGG19Encoder
from safin.blocks.losses import distance, style_loss
from safin.blocks.statistics import mean_variance_norm
from safin.io.weights import load_encoder_weights
from safin.methods import (InputError, StyleTransfer, as_one_batch, load_checkpoint, load_into, load_reference_vgg,
                           register)

D_MODEL = 512        # transformer width = the patch embedding's channels
HEADS = 8
FEEDFORWARD = 2048
LAYERS = 3           # encoder layers (content and style each) and decoder layers
PATCH = 8            # the patch embedding's kernel and stride
CAPE_GRID = 18       # the CAPE's pooled grid
DROPOUT = 0.1


class PatchEmbedding(nn.Module):
    """The image cut into 8x8 patches, each projected to 512 channels: one strided convolution (key ``proj``)."""

    def __init__(self, channels: int = D_MODEL, patch: int = PATCH):
        super().__init__()
        self.proj = nn.Conv2d(3, channels, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class _FeedForward(nn.Module):
    """The layers' position-wise MLP (keys ``linear1``, ``linear2``; ``dropout`` between them)."""

    def __init__(self, d: int, hidden: int, dropout: float):
        super().__init__()
        self.linear1 = nn.Linear(d, hidden)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(hidden, d)

    def feed_forward(self, x):
        return self.linear2(self.dropout(F.relu(self.linear1(x))))


def _attend(block: nn.MultiheadAttention, query, key, value, memory_efficient: bool = True):
    """``memory_efficient``: need_weights=False, PyTorch's scaled-dot-product kernel, which never holds the
    (tokens x tokens) map; False: the reference's call (need_weights left True: the map is formed and its head
    average returned, then dropped), the benchmark's naive path."""
    return block(query, key, value, need_weights=not memory_efficient)[0]


class EncoderLayer(_FeedForward):
    """Post-norm self-attention layer; the positional encoding (when given) joins the queries and keys only."""

    def __init__(self, d: int = D_MODEL, heads: int = HEADS, hidden: int = FEEDFORWARD, dropout: float = DROPOUT):
        super().__init__(d, hidden, dropout)
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.memory_efficient = True

    def forward(self, x, pos=None):
        qk = x if pos is None else x + pos
        x = self.norm1(x + self.dropout1(_attend(self.self_attn, qk, qk, x, self.memory_efficient)))
        return self.norm2(x + self.dropout2(self.feed_forward(x)))


class DecoderLayer(_FeedForward):
    """Post-norm decoder layer: two attention blocks from the content tokens (+CAPE) to the style memory, then the
    MLP (``decoder_self_attention``: the first block attends over the content tokens instead)."""

    def __init__(self, d: int = D_MODEL, heads: int = HEADS, hidden: int = FEEDFORWARD, dropout: float = DROPOUT,
                 decoder_self_attention: bool = False):
        super().__init__(d, hidden, dropout)
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.dropout1, self.dropout2, self.dropout3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)
        self.decoder_self_attention = decoder_self_attention
        self.memory_efficient = True

    def forward(self, t, memory, query_pos):
        q, me = t + query_pos, self.memory_efficient
        first = (_attend(self.self_attn, q, q, t, me) if self.decoder_self_attention
                 else _attend(self.self_attn, q, memory, memory, me))
        t = self.norm1(t + self.dropout1(first))
        t = self.norm2(t + self.dropout2(_attend(self.multihead_attn, t + query_pos, memory, memory, me)))
        return self.norm3(t + self.dropout3(self.feed_forward(t)))


class _Stack(nn.Module):
    """``layers`` applied in turn (key ``layers.i``); ``norm`` after them when given (the decoder's)."""

    def __init__(self, layers: list[nn.Module], norm: nn.Module | None = None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        if norm is not None:
            self.norm = norm

    def forward(self, x, *args):
        for layer in self.layers:
            x = layer(x, *args)
        return self.norm(x) if hasattr(self, "norm") else x


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h*w, C), row-major over the positions."""
    return x.flatten(2).transpose(1, 2)


class StyTr2Transformer(nn.Module):
    """The two encoders, the decoder and the CAPE projection (keys ``encoder_c``, ``encoder_s``, ``decoder``,
    ``new_ps``: the released ``transformer_iter_160000.pth`` loads by key)."""

    def __init__(self, layers: int = LAYERS, decoder_self_attention: bool = False, dropout: float = DROPOUT):
        super().__init__()
        self.encoder_c = _Stack([EncoderLayer(dropout=dropout) for _ in range(layers)])
        self.encoder_s = _Stack([EncoderLayer(dropout=dropout) for _ in range(layers)])
        self.decoder = _Stack([DecoderLayer(dropout=dropout, decoder_self_attention=decoder_self_attention)
                               for _ in range(layers)], nn.LayerNorm(D_MODEL))
        self.new_ps = nn.Conv2d(D_MODEL, D_MODEL, 1)

    def cape(self, content: torch.Tensor) -> torch.Tensor:
        """The content-aware positional encoding of a content embedding (B, C, h, w), at its own grid."""
        p = self.new_ps(F.adaptive_avg_pool2d(content, CAPE_GRID))
        return F.interpolate(p, size=content.shape[-2:], mode="bilinear", align_corners=False)

    def encode_style(self, style: torch.Tensor) -> torch.Tensor:
        """The style memory: the style encoder over the style embedding's tokens (no positions)."""
        return self.encoder_s(_tokens(style))

    def stylize(self, content: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """The decoder's output for a content embedding (B, C, h, w) and a style memory, as a (B, C, h, w) map."""
        b, c, h, w = content.shape
        pos = _tokens(self.cape(content))
        t = self.decoder(self.encoder_c(_tokens(content), pos), memory, pos)
        return t.transpose(1, 2).reshape(b, c, h, w)

    def forward(self, style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        return self.stylize(content, self.encode_style(style))


@register
class StyTr2(StyleTransfer):
    name = "stytr2"
    label = "StyTr²"
    size_multiple = PATCH
    min_side = 2 * PATCH   # the CNN decoder's first reflection pad needs 2 tokens a side
    # test.py: Resize(512) (the shorter side) then CenterCrop(512), for content and style alike
    test_resize = "shorter-crop"

    def __init__(self, encoder_weights: str | dict = "normalised", *, impl_params: bool = True,
                 decoder_self_attention: bool = False, content_weight: float = 7.0, style_weight: float = 10.0,
                 identity1_weight: float = 70.0, identity2_weight: float = 1.0, dropout: float = DROPOUT):
        super().__init__()
        self.impl_params = impl_params
        self.encoder = load_encoder_weights(VGG19Encoder(last="relu5_1"), encoder_weights).eval()
        self.embedding = PatchEmbedding()
        self.transformer = StyTr2Transformer(decoder_self_attention=decoder_self_attention, dropout=dropout)
        self.decoder = mirror_decoder(4)
        self.weights = dict(content=content_weight, style=style_weight, identity1=identity1_weight,
                            identity2=identity2_weight)

    #: train.py's recipe: Adam at lr 5e-4 (``--lr``), ``--lr_decay`` 1e-5, batch 8, 160000 steps, 256 px crops of
    #: images resized to 512 x 512
    RECIPE = dict(lr=5e-4, lr_decay=1e-5, batch_size=8, max_iter=160_000, crop=256)
    WARMUP = 10_000

    @classmethod
    def lr_factor(cls, i: int, lr_decay: float) -> float:
        """The factor of the base lr at step ``i`` (0-based), train.py's schedule: a linear warm-up from 0.1 of it
        (``warmup_learning_rate``: lr * 0.1 * (1 + 3e-4 i)) for 10000 steps, then 2e-4 / (1 + lr_decay (i - 10000))
        (``adjust_learning_rate``; 2e-4 is a literal there: 0.4 of its lr 5e-4, kept as that ratio here, so another
        base lr scales the whole schedule)."""
        if i < cls.WARMUP:
            return 0.1 * (1.0 + 3e-4 * i)
        return 0.4 / (1.0 + lr_decay * (i - cls.WARMUP))

    def trainable(self):
        return [p for m in (self.embedding, self.transformer, self.decoder) for p in m.parameters()]

    def encode_style(self, style):
        return self.transformer.encode_style(self.embedding(style))

    def transfer(self, content, codes, mix, alpha):
        emb = self.embedding(content)
        t = mix([self.transformer.stylize(emb, memory) for memory in codes])
        if alpha < 1.0:
            t = alpha * t + (1.0 - alpha) * self.transformer(emb, emb)
        return self.decoder(t)

    def _features(self, x) -> list[torch.Tensor]:
        return list(self.encoder(x, TAPS_1_TO_5).values())

    def losses(self, content, style):
        p = self.impl_params
        with torch.no_grad():
            c_feats, s_feats = as_one_batch(self._features, [(content,), (style,)])
        c_emb, s_emb = self.embedding(content), self.embedding(style)
        out = self.decoder(self.transformer(s_emb, c_emb))
        icc = self.decoder(self.transformer(c_emb, c_emb))
        iss = self.decoder(self.transformer(s_emb, s_emb))
        o_feats, cc_feats, ss_feats = as_one_batch(self._features, [(out,), (icc,), (iss,)])
        lc = sum(distance(mean_variance_norm(o_feats[lv]), mean_variance_norm(c_feats[lv]), p) for lv in (3, 4))
        ls = style_loss(o_feats, s_feats, impl_params=p)
        lid1 = distance(icc, content, p) + distance(iss, style, p)
        lid2 = sum(distance(a, b, p) + distance(x, y, p)
                   for a, b, x, y in zip(cc_feats, c_feats, ss_feats, s_feats, strict=True))
        w = self.weights
        total = (w["content"] * lc + w["style"] * ls + w["identity1"] * lid1 + w["identity2"] * lid2)
        return {"content": lc, "style": ls, "identity1": lid1, "identity2": lid2, "total": total}

    def load_reference(self, decoder, transformer=None, embedding=None, vgg=None, *, our_encoder: bool = False):
        # our_encoder: the loaders' common keyword; without their VGG StyTr² stylizes as it is (it never runs it)
        """diyiiyiii/StyTR-2's ``decoder_iter_160000.pth``, ``transformer_iter_160000.pth`` and
        ``embedding_iter_160000.pth`` (plain state dicts, keys as ours: their test.py loads them strictly, unrenamed)
        and their ``vgg_normalised.pth`` (the losses' encoder; stylization never runs it, so it may be left out);
        or the folder holding them (their README's ``experiments/``)."""
        if transformer is None and not isinstance(decoder, dict) and Path(decoder).is_dir():
            from safin.io.releases import ReleaseError, files_in_folder

            try:
                decoder, transformer, embedding, vgg = files_in_folder(self.name, decoder)
            except ReleaseError as e:
                raise InputError(str(e)) from None
        if transformer is None or embedding is None:
            raise InputError(f"{decoder}: StyTr² needs decoder_iter_160000.pth, transformer_iter_160000.pth, "
                             "embedding_iter_160000.pth (and vgg_normalised.pth), or the folder holding them")
        for module, src, what in ((self.decoder, decoder, "decoder"), (self.transformer, transformer, "transformer"),
                                  (self.embedding, embedding, "embedding")):
            state = load_checkpoint(src) if not isinstance(src, dict) else src
            load_into(module, state, f"{src if not isinstance(src, dict) else what}: StyTr² {what}")
        if vgg is not None:
            load_reference_vgg(self.encoder, vgg)
            self.reference_encoder = f"the authors' vgg_normalised ({vgg if not isinstance(vgg, dict) else 'state dict'})"
        else:
            self.reference_encoder = "none needed: StyTr² stylizes without its VGG (the losses' encoder)"
        return self
