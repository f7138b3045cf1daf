"""Training losses of the methods, with the paper-vs-code switch.

``impl_params=True`` (default) is the reference code: ``nn.MSELoss`` (mean of squared differences).
``impl_params=False`` is the paper's text: the Euclidean distance ‖a − b‖₂ (per sample, averaged over
the batch). The loss weights of the reference recipes were tuned for the MSE form.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from safin.blocks.statistics import calc_mean_std, mean_variance_norm


def distance(a: torch.Tensor, b: torch.Tensor, impl_params: bool = True) -> torch.Tensor:
    if impl_params:
        return F.mse_loss(a, b)
    return (a - b).flatten(1).norm(dim=1).mean()


def content_loss(output_feat: torch.Tensor, target_feat: torch.Tensor, *, impl_params: bool = True,
                 normalise: bool = False) -> torch.Tensor:
    """Distance of feature maps; ``normalise`` compares instance-normalised maps (SANet)."""
    if normalise:
        output_feat, target_feat = mean_variance_norm(output_feat), mean_variance_norm(target_feat)
    return distance(output_feat, target_feat, impl_params)


def style_loss(output_feats: Sequence[torch.Tensor], style_feats: Sequence[torch.Tensor], *,
               impl_params: bool = True) -> torch.Tensor:
    """Σ over layers of d(μ(out), μ(style)) + d(σ(out), σ(style)), σ = sqrt(unbiased var + 1e-5)."""
    total = output_feats[0].new_zeros(())
    for o, s in zip(output_feats, style_feats, strict=True):
        o_mean, o_std = calc_mean_std(o)
        s_mean, s_std = calc_mean_std(s)
        total = total + distance(o_mean, s_mean, impl_params) + distance(o_std, s_std, impl_params)
    return total


def gram_matrix(x: torch.Tensor) -> torch.Tensor:
    """(B, C, C) Gram matrix normalised by the number of positions H·W."""
    b, c = x.shape[:2]
    f = x.reshape(b, c, -1)
    return f.bmm(f.transpose(1, 2)) / f.shape[-1]
