"""Per-pair metrics of a stylized output (:func:`pair_metrics`): content loss (MSE and Euclidean norm
of relu4_1), style loss (mean/std over relu1_1..relu4_1), Gram loss, LPIPS (Zhang et al. 2018, v0.1,
AlexNet trunk from the offline asset registry, not torchvision's run-time download), SSIM on
luminance, and the colour-histogram chi-squared distance to the style. Definitions: :data:`DESCRIPTION`.
"""
from __future__ import annotations

import functools
import logging
import warnings

import numpy as np
import torch

from safin.blocks.encoder import TAPS_1_TO_4, TAPS_1_TO_5
from safin.io.weights import load_state_dict

from .degenerate import output_measures

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


# --------------------------------------------------------------------------------------------------
# Per-pair metrics of a stylized output (see ../shared/design/evaluation.md §1)

#: direction of each metric: -1 = lower is better, +1 = higher is better
DIRECTION = {"content_loss": -1, "content_loss_euclid": -1, "style_loss": -1, "gram_loss": -1, "lpips": -1,
             "lpips_gray": -1, "ssim": 1, "hist_chi2": -1, "cfsd": -1, "hist_hellinger": -1, "edge_corr": 1}

DESCRIPTION = {
    "content_loss": "MSE of normalised-VGG-19 relu4_1 features, output vs content (SAFIN code; paper: Euclidean)",
    "content_loss_euclid": "Euclidean norm of the same feature difference (the paper's wording)",
    "style_loss": "sum over relu1_1..relu4_1 of MSE(mean) + MSE(std), output vs style (std: unbiased + 1e-5)",
    "gram_loss": "sum over relu1_1..relu5_1 of MSE of Gram matrices normalised by H*W, output vs style",
    "lpips": "LPIPS-alex v0.1 (torchvision's AlexNet trunk), output vs content, inputs in [-1, 1]; under protocol "
             "styleid the shorter side resized to 512 first",
    "lpips_gray": "LPIPS as above on greyscale copies (protocol styleid: Resize(512), Grayscale())",
    "ssim": "SSIM of grayscale output vs content (scikit-image, data range 1)",
    "hist_chi2": "chi-squared distance of 8x8x8 RGB histograms, output vs style",
    "cfsd": "CFSD (StyleID, CVPR 2024): KL(content || output) of the relu3_1 patch self-similarities (softmax of "
            "F.F^T / C^2), summed over positions; torchvision's ImageNet VGG-19, images at their own size "
            "(summary.json's cfsd_network says which network, and whether it is comparable with published CFSD)",
    "edge_corr": "structure: Pearson correlation of the Sobel gradient magnitudes of the grey output and content "
                 "(0 when either is flat); below 0.05 on average the method is degenerate (evaluation/degenerate.py)",
    "hist_hellinger": "HistoGAN RGB-uv histogram (64 bins, inverse-quadratic kernel sigma 0.02, resized to 256x256 only "
                      "when larger), Hellinger distance, output vs style",
}


# --------------------------------------------------------------------------------------------------
# The HistoGAN colour histogram: written here from HistoGAN's block (read, not copied: our kernel runs in place over
# bands), since no maintained package ships it (StyleID's and HistoGAN's are research scripts). CFSD:
# evaluation/cfsd.py.


#: HistoGAN's RGB-uv block as StyleID's ``eval_histogan.py`` sets it up: 64 bins, inverse-quadratic kernel with
#: σ = 0.02, intensity scaling, ``insz`` 256 with 'interpolation' resizing
HISTOGAN = {"bins": 64, "sigma": 0.02, "size": 256}


def rgb_uv_histogram(img: torch.Tensor, bins: int = 64, sigma: float = 0.02, size: int = 256,
                     extent: float = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """HistoGAN's RGB-uv histogram (Afifi et al. 2021; ``RGBuvHistBlock`` of mahmoudnafifi/HistoGAN, as StyleID's
    ``eval_histogan.py`` at d4ea655 copies it) of a (3, H, W) image in [0, 1]: for each channel c, the log-chroma
    u = log(c + ε) − log(c' + ε), v = log(c + ε) − log(c'' + ε) of every pixel, weighted by its intensity
    √(R² + G² + B² + ε) and spread over ``bins`` × ``bins`` bins in [−extent, extent] by the inverse-quadratic
    kernel 1 / (1 + (d/σ)²); (3, bins, bins), divided by its sum + ε. As the block: clamped to [0, 1], and resized
    to ``size`` × ``size`` (bilinear, no antialiasing) **only when** its height or width exceeds ``size`` (smaller
    images are used as they are). In float64 throughout (the reference: float32 kernels and products)."""
    x = img.double().clamp(0, 1)[None]
    if size and (x.shape[-2] > size or x.shape[-1] > size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x[0].flatten(1)  # (3, N)
    weight = torch.sqrt((x ** 2).sum(0) + eps)  # intensity
    logs = torch.log(x + eps)
    centres = torch.linspace(-extent, extent, bins, dtype=torch.float64)

    def kernel(d: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        """(N, bins): 1 / (1 + ((d − centre) / σ)²), times ``w`` per row when given. Element by element the
        same arithmetic as the formula written out, done in place over bands of rows that stay in the CPU's
        cache (one (N, bins) float64 array is 32 MB at 256²): the histogram 3.5x faster, bit for bit the same."""
        out = torch.empty(d.shape[0], bins, dtype=d.dtype)
        for i in range(0, d.shape[0], 4096):
            band = torch.sub(d[i:i + 4096, None], centres[None], out=out[i:i + 4096])
            band.div_(sigma).square_().add_(1.0).reciprocal_()
            if w is not None:
                band.mul_(w[i:i + 4096, None])
        return out

    hists = []
    for c, (a, b) in enumerate(((1, 2), (0, 2), (0, 1))):
        ku, kv = kernel(logs[c] - logs[a], weight), kernel(logs[c] - logs[b])
        hists.append(ku.t() @ kv)
    h = torch.stack(hists)
    return h / (h.sum() + eps)


def hellinger(a: torch.Tensor, b: torch.Tensor) -> float:
    """(1/√2)·‖√a − √b‖₂ of two normalised histograms: 0 (equal) … 1 (disjoint)."""
    return float(torch.linalg.vector_norm(a.sqrt() - b.sqrt()) / np.sqrt(2.0))


#: the metrics' encoder by default (``evaluate.encoder_weights``; ``derived`` in the ci profile, so the
#: gated numbers do not depend on whether the machine could download bethgelab's weights)
METRIC_ENCODER = "normalised"


@functools.lru_cache(maxsize=4)
def _vgg(device: str = "cpu", weights: str = METRIC_ENCODER):
    from safin.blocks.encoder import VGG19Encoder
    from safin.io.weights import load_encoder_weights

    return load_encoder_weights(VGG19Encoder(last="relu5_1"), weights).eval().to(device)


def _feats(x: torch.Tensor, weights: str = METRIC_ENCODER):
    with torch.inference_mode():
        return _vgg(str(x.device), weights)(x, TAPS_1_TO_5)


def colour_histogram(img: torch.Tensor, bins: int = 8) -> torch.Tensor:
    """Normalised joint RGB histogram (bins³) of a (3, H, W) image in [0, 1]."""
    q = (img.clamp(0, 1) * bins).long().clamp(max=bins - 1)
    idx = (q[0] * bins + q[1]) * bins + q[2]
    h = torch.bincount(idx.flatten(), minlength=bins ** 3).double()
    return h / h.sum()


def hist_chi2(a: torch.Tensor, b: torch.Tensor, bins: int = 8) -> float:
    ha, hb = colour_histogram(a, bins), colour_histogram(b, bins)
    denom = ha + hb
    mask = denom > 0
    return float(0.5 * ((ha - hb)[mask] ** 2 / denom[mask]).sum())


def ssim_gray(a: torch.Tensor, b: torch.Tensor) -> float:
    from skimage.metrics import structural_similarity

    w = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    ga, gb = (a.cpu() * w).sum(0).numpy(), (b.cpu() * w).sum(0).numpy()
    return float(structural_similarity(ga, gb, data_range=1.0))


def features(image: torch.Tensor, encoder_weights: str = METRIC_ENCODER) -> dict[str, torch.Tensor]:
    """The normalised VGG-19 features (relu1_1..relu5_1) the metrics use, of one (3, H, W) image: pass
    them to :func:`pair_metrics` to measure several outputs of one pair without recomputing them."""
    return _feats(image[None], encoder_weights)


def pair_metrics(output: torch.Tensor, content: torch.Tensor, style: torch.Tensor, *,
                 content_features: dict | None = None, style_features: dict | None = None,
                 encoder_weights: str = METRIC_ENCODER, cfsd_network: torch.nn.Module | None = None,
                 lpips_inputs: dict | None = None) -> dict[str, float]:
    """All per-pair metrics of one output (3, H, W) against its content (same size) and style.
    ``content_features`` / ``style_features``: :func:`features` of ``content`` / ``style``, if at hand
    (computed with the same ``encoder_weights``); they may also carry ``"cfsd"`` (the content's
    :func:`evaluation.cfsd.features`) and ``"rgb_uv"`` (:func:`rgb_uv_histogram` of the style), so several outputs of
    one pair share them. ``cfsd_network``: :func:`evaluation.cfsd.load_network`'s extractor (None: no CFSD).
    ``lpips_inputs``: ``{column: (output, content)}`` as the protocol prepares them (:func:`evaluation.protocols.load`);
    None: ``{"lpips": (output, content)}``, the images as given."""
    from safin.blocks.losses import gram_matrix, style_loss as _style_loss

    from . import cfsd as _cfsd

    if output.shape != content.shape:
        raise ValueError(f"output {tuple(output.shape)} and content {tuple(content.shape)} differ in size")
    fo = _feats(output[None], encoder_weights)
    fc = content_features if content_features is not None else _feats(content[None], encoder_weights)
    fs = style_features if style_features is not None else _feats(style[None], encoder_weights)
    diff = fo["relu4_1"] - fc["relu4_1"]
    gram = sum(float(torch.nn.functional.mse_loss(gram_matrix(fo[t]), gram_matrix(fs[t]))) for t in fo)
    row = {
        "content_loss": float(diff.pow(2).mean()),
        "content_loss_euclid": float(diff.flatten().norm()),
        "style_loss": float(_style_loss([fo[t] for t in TAPS_1_TO_4], [fs[t] for t in TAPS_1_TO_4])),
        "gram_loss": gram,
    }
    for column, (a, b) in (lpips_inputs or {"lpips": (output, content)}).items():
        row[column] = float(lpips(a, b)[0])
    row["ssim"] = ssim_gray(output, content)
    row["hist_chi2"] = hist_chi2(output, style)
    if cfsd_network is not None:
        row["cfsd"] = _cfsd.cfsd(cfsd_network, output, content, fc.get("cfsd"))
    row["hist_hellinger"] = hellinger(rgb_uv_histogram(output),
                                      fs["rgb_uv"] if "rgb_uv" in fs else rgb_uv_histogram(style))
    row.update(output_measures(output, content))  # edge_corr (a metric) and output_std (degeneracy only)
    return row
