"""The named evaluation protocols (``evaluate.protocol``): which reference each metric's number must equal, and the
preprocessing that takes. Every protocol computes this suite's own metrics (content, style and Gram losses, SSIM,
χ²: the gate and the paper's claims) and, the same way in all three, CFSD (:mod:`evaluation.cfsd`, StyleID's) and
the HistoGAN colour distance (:func:`evaluation.metrics.rgb_uv_histogram`, StyleID's copy of HistoGAN's block).
They differ in LPIPS and the FID family:

- ``styleid``: StyleID's ``evaluation/eval_artfid.py`` (jiwoogit/StyleID at d4ea655), the code behind the table
  recent papers quote: each image read with PIL as RGB, its shorter side resized to 512 (torchvision's
  ``Resize(512)``: bilinear, antialiased, the longer side truncated) before the Inception (FID) and before LPIPS,
  and LPIPS also on greyscale copies (``Resize(512)``, ``Grayscale()``: PIL's ``convert('L')``; one channel,
  broadcast over LPIPS's three);
- ``art-fid``: art-fid upstream (matthias-wright/art-fid at 37ce02e, ``art_fid/art_fid.py``): ``ToTensor()`` only,
  each image at its own size;
- ``suite``: this suite's own: LPIPS at the images' own size, no ArtFID/FID.

In both reference protocols FID is the plain FID of the N pairs at hand (both codes' default mode, FID∞, fits a line
through FIDs at ``linspace(5000, N, num_points)`` images — 15 points in art-fid, 8 in StyleID, whose call passes
``num_workers`` where ``num_points`` is — and with N < 5000 every one of them takes all N, so it is FID_N up to
rounding) and ArtFID = (1 + mean LPIPS) · (1 + FID); the style set is each pair's style image (StyleID's
``util/copy_inputs.py`` copies a style once per stylized image).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Protocol:
    name: str
    source: str
    resize: int | None          # the shorter side before LPIPS and the Inception (torchvision Resize), or None
    lpips_gray: bool            # LPIPS on greyscale copies too
    artfid: bool                # ArtFID and FID computed (when the art Inception is at hand)
    description: str


PROTOCOLS = {p.name: p for p in (
    Protocol("styleid", "jiwoogit/StyleID evaluation/ at d4ea655 (eval_artfid.py, image_metrics.py, eval_histogan.py)",
             resize=512, lpips_gray=True, artfid=True,
             description="StyleID's evaluation code: LPIPS, LPIPS on grey and the art Inception's FID with the shorter "
                         "side resized to 512; CFSD at the images' own size on torchvision's VGG-19; HistoGAN's "
                         "RGB-uv distance"),
    Protocol("art-fid", "matthias-wright/art-fid at 37ce02e (art_fid/art_fid.py)", resize=None, lpips_gray=False,
             artfid=True,
             description="art-fid upstream: LPIPS and the art Inception's FID on each image at its own size"),
    Protocol("suite", "this suite (evaluation/metrics.py)", resize=None, lpips_gray=False, artfid=False,
             description="this suite's own: LPIPS at the images' own size, no FID family"),
)}


def get(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"evaluate.protocol: {name!r} is not one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def load(path: Path, protocol: Protocol, gray: bool = False) -> torch.Tensor:
    """One image file as the protocol feeds LPIPS and the Inception: (C, H, W) in [0, 1], C = 3, or 1 when
    ``gray``. PIL, then torchvision's transforms, in the reference's order."""
    from PIL import Image
    from torchvision import transforms as T

    steps = ([T.Resize(protocol.resize)] if protocol.resize else []) + ([T.Grayscale()] if gray else []) + [T.ToTensor()]
    with Image.open(path) as im:
        return T.Compose(steps)(im.convert("RGB"))
