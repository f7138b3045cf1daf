"""SAFIN's building blocks: the self-attention module (SA), FIN, and SAFIN = FIN with SA-inferred γ_s, β_s.

Attribute names follow the reference code's state-dict keys (``shared_weight``, ``gamma_conv``,
``attention.query_conv``, ...) so the authors' checkpoints load without renaming.

Paper vs code (``impl_params``; True = the reference code, the default):
- value path of SA: code ``V = value_conv(F_s)`` (raw style); paper writes SA(F̄c, F̄s), i.e. the
  normalised style also for V (``impl_params=False``).
"""
from __future__ import annotations

import torch
from torch import nn

from safin.blocks.attention import attention
from safin.blocks.statistics import calc_mean_std, mean_variance_norm
from safin.runtime.precision import full_precision


def _reference_init(conv: nn.Conv2d) -> None:
    """SAFIN's init of its 1x1 convs: xavier-uniform weights, biases uniform in [0, 1)."""
    nn.init.xavier_uniform_(conv.weight)
    nn.init.uniform_(conv.bias, 0.0, 1.0)


class SelfAttention(nn.Module):
    """SA(content, style): for each content position, a softmax-weighted sum of style values.

    Q = query_conv(IN(F_c)), K = key_conv(IN(F_s)), V = value_conv(F_s); softmax over style
    positions, no 1/√C scaling, no output conv, no residual (unlike SANet's module).
    """

    def __init__(self, channels: int, *, impl_params: bool = True, memory_efficient: bool = True):
        super().__init__()
        self.query_conv = nn.Conv2d(channels, channels, 1)
        self.key_conv = nn.Conv2d(channels, channels, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        for conv in (self.query_conv, self.key_conv, self.value_conv):
            _reference_init(conv)
        self.impl_params = impl_params
        self.memory_efficient = memory_efficient

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, c, h, w = content.shape
        style_n = mean_variance_norm(style)
        q = self.query_conv(mean_variance_norm(content)).flatten(2).transpose(1, 2)  # (B, HcWc, C)
        k = self.key_conv(style_n).flatten(2).transpose(1, 2)                          # (B, HsWs, C)
        v = self.value_conv(style if self.impl_params else style_n).flatten(2).transpose(1, 2)
        out = attention(q, k, v, scale=1.0, memory_efficient=self.memory_efficient)   # (B, HcWc, C)
        return out.transpose(1, 2).reshape(b, c, h, w)


class UniformAttention(nn.Module):
    """The FIN ablation's stand-in for SA: every content position attends *uniformly* to all style
    positions, so the output is the spatial mean of ``value_conv(F_s)`` (no query/key, no semantic
    matching). This is SA with its attention map replaced by the uniform one — our reading of the
    paper's "FIN module (normalization without self-attention)", §4.2.1, which the reference code does
    not contain.
    """

    def __init__(self, channels: int, *, impl_params: bool = True):
        super().__init__()
        self.value_conv = nn.Conv2d(channels, channels, 1)
        _reference_init(self.value_conv)
        self.impl_params = impl_params

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        v = self.value_conv(style if self.impl_params else mean_variance_norm(style))
        return v.mean(dim=(2, 3), keepdim=True).expand(-1, -1, *content.shape[-2:])


class SAFIN(nn.Module):
    """Self-Attentive Factorized Instance Normalisation (paper Eq. 1–3).

    FIN(F_c) = γ_s ⊙ (γ_ind ⊙ IN(F_c) + β_ind) + β_s, with γ_s = ReLU(W_γ ⊗ SA(F_c, F_s)) and
    β_s = ReLU(W_β ⊗ SA(F_c, F_s)) spatially varying (B, C, Hc, Wc); γ_ind (init 1), β_ind (init 0)
    per channel. ``attention="uniform"`` gives the FIN ablation (see :class:`UniformAttention`).
    Parameters: 5C² + 7C with SA, 3C² + 5C with uniform attention.
    """

    def __init__(self, channels: int, *, attention: str = "sa", impl_params: bool = True,
                 memory_efficient: bool = True):
        super().__init__()
        self.shared_weight = nn.Parameter(torch.ones(channels))   # γ_ind
        self.shared_bias = nn.Parameter(torch.zeros(channels))    # β_ind
        self.gamma_conv = nn.Conv2d(channels, channels, 1)        # W_γ
        self.beta_conv = nn.Conv2d(channels, channels, 1)         # W_β
        _reference_init(self.gamma_conv)
        _reference_init(self.beta_conv)
        if attention == "sa":
            self.attention = SelfAttention(channels, impl_params=impl_params, memory_efficient=memory_efficient)
        elif attention == "uniform":
            self.attention = UniformAttention(channels, impl_params=impl_params)
        else:
            raise ValueError(f"attention must be 'sa' or 'uniform', not {attention!r}")
        self.relu = nn.ReLU()

    def style_params(self, content: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(γ_s, β_s), both ≥ 0 and of the content's shape."""
        s = self.attention(content, style)
        return self.relu(self.gamma_conv(s)), self.relu(self.beta_conv(s))

    @full_precision  # SA's unscaled attention logits and the statistics stay in float32 under bf16
    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        gamma_s, beta_s = self.style_params(content, style)
        mean, std = calc_mean_std(content)
        shared = (content - mean) / std * self.shared_weight.view(1, -1, 1, 1) + self.shared_bias.view(1, -1, 1, 1)
        return shared * gamma_s + beta_s
