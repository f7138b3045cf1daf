"""Instance statistics: per-channel mean and std, mean-variance normalisation, AdaIN."""
from __future__ import annotations

import torch

from safin.runtime.precision import full_precision

#: eps of every reference implementation's ``calc_mean_std`` (added to the unbiased variance).
EPS = 1e-5


@full_precision
def calc_mean_std(x: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and std of a (B, C, H, W) map, each (B, C, 1, 1).

    std = sqrt(unbiased variance + eps), exactly as pytorch-AdaIN, SANet and SAFIN compute it.
    """
    b, c = x.shape[:2]
    flat = x.reshape(b, c, -1)
    var = flat.var(dim=2, unbiased=True) + eps
    return flat.mean(dim=2).view(b, c, 1, 1), var.sqrt().view(b, c, 1, 1)


@full_precision
def mean_variance_norm(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Channel-wise instance normalisation without affine parameters (SANet's ``mvn``)."""
    mean, std = calc_mean_std(x, eps)
    return (x - mean) / std


@full_precision
def adain(content: torch.Tensor, style: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Adaptive instance normalisation: content normalised, then given the style's mean and std."""
    c_mean, c_std = calc_mean_std(content, eps)
    s_mean, s_std = calc_mean_std(style, eps)
    return (content - c_mean) / c_std * s_std + s_mean


#: pixel standard deviation (0..1) below which an image is seen as one colour (about 5/255): a collapsed model's
#: output (safin.training.health at the end of training, evaluation.degenerate on the evaluation outputs)
FLAT_STD = 0.02


def spatial_sd(images: torch.Tensor) -> torch.Tensor:
    """Per image of a (B, C, H, W) batch (or one (C, H, W) image): the largest over the channels of the pixel SD over
    the image: 0 for an image of one colour, whatever the colour."""
    x = images.detach().double()
    x = x[None] if x.dim() == 3 else x
    return x.flatten(2).std(dim=2).amax(dim=1)
