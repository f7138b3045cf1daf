"""Image-quality metrics for stylized outputs.

So far: LPIPS (Zhang et al. 2018, v0.1, AlexNet trunk) with the trunk loaded offline from the asset
registry instead of torchvision's run-time download.
"""
from __future__ import annotations

import functools
import logging
import warnings

import torch

from safin.assets import load_state_dict

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def lpips_model(device: str = "cpu", random_trunk: bool = False) -> torch.nn.Module:
    """``lpips.LPIPS(net='alex')`` v0.1 with its linear heads from the ``lpips`` wheel and the AlexNet
    trunk from the ``alexnet`` asset (``random_trunk=True`` leaves it random: for tests only)."""
    import lpips as lpips_lib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's 'pretrained' deprecation notice
        model = lpips_lib.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    if not random_trunk:
        trunk = load_state_dict("alexnet")
        slices = {0: "slice1", 3: "slice2", 6: "slice3", 8: "slice4", 10: "slice5"}
        mapped = {}
        for key, value in trunk.items():
            _, idx, kind = key.split(".")
            mapped[f"{slices[int(idx)]}.{idx}.{kind}"] = value
        missing, unexpected = model.net.load_state_dict(mapped, strict=False)
        if unexpected or any("weight" in k or "bias" in k for k in missing):
            raise RuntimeError(f"AlexNet trunk did not fit LPIPS: missing {missing}, unexpected {unexpected}")
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval().to(device)


def lpips(a: torch.Tensor, b: torch.Tensor, *, random_trunk: bool = False) -> torch.Tensor:
    """LPIPS distance between images ``a`` and ``b`` (RGB in [0, 1], (N,3,H,W) or (3,H,W)).

    Returns one value per image (shape (N,)). Inputs are scaled to [-1, 1] as LPIPS expects.
    """
    if a.shape != b.shape:
        raise ValueError(f"lpips: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.dim() == 3:
        a, b = a[None], b[None]
    model = lpips_model(str(a.device), random_trunk)
    with torch.inference_mode():
        d = model(a.float(), b.float(), normalize=True)
    return d.flatten()
