"""Feature-space operations shared by the methods: instance statistics, AdaIN, attention, CORAL, WCT."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .precision import full_precision

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


@full_precision
def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, scale: float = 1.0,
              memory_efficient: bool = True, chunk: int = 4096) -> torch.Tensor:
    """softmax(q kᵀ · scale) v over key positions, for q (B, Nq, C), k (B, Nk, C), v (B, Nk, Cv).

    SANet and SAFIN use ``scale=1`` (no 1/√C). The memory-efficient path never holds the full
    (Nq × Nk) map: it uses PyTorch's fused ``scaled_dot_product_attention`` (blockwise, online
    softmax) and falls back to processing ``chunk`` queries at a time. ``memory_efficient=False`` is
    the plain reference computation (used as the naive path and to test equality).
    """
    if not memory_efficient:
        return torch.softmax(torch.bmm(q, k.transpose(1, 2)) * scale, dim=-1).bmm(v)
    # the fused kernels need contiguous inputs: with the transposed views the modules produce, PyTorch
    # silently falls back to the math path, which materialises the whole map (measured: 1.2 GiB at 12k)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    try:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    except RuntimeError:  # pragma: no cover - kernel unavailable for this dtype/device
        out = [torch.softmax(torch.bmm(q[:, i:i + chunk], k.transpose(1, 2)) * scale, dim=-1).bmm(v)
               for i in range(0, q.shape[1], chunk)]
        return torch.cat(out, dim=1)


def _eigh(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.linalg.eigh``; on the CPU single-threaded: for the <= 512x512 matrices of WCT one
    thread is faster (measured 0.03 s vs 0.12 s at 512x512 float64 on 2 cores), and a multi-threaded
    LAPACK call degrades badly (seconds) when the cores are busy with other work."""
    if cov.device.type != "cpu" or cov.shape[-1] > 1024:
        return torch.linalg.eigh(cov)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(cov)
    finally:
        torch.set_num_threads(threads)


def _matrix_sqrt_and_inv_sqrt(cov: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(cov^½, cov^-½) of a symmetric PSD matrix; eigenvalues <= eps are cut (pseudo-inverse).
    Falls back to float64 when float32 ``eigh`` does not converge (many repeated eigenvalues)."""
    try:
        evals, evecs = _eigh(cov)
        if not (torch.isfinite(evals).all() and torch.isfinite(evecs).all()):
            raise torch.linalg.LinAlgError("non-finite eigendecomposition")
    except torch.linalg.LinAlgError:
        if cov.dtype == torch.float64:
            raise
        sqrt, inv_sqrt = _matrix_sqrt_and_inv_sqrt(cov.double(), eps)
        return sqrt.to(cov.dtype), inv_sqrt.to(cov.dtype)
    keep = evals > eps
    evals = torch.where(keep, evals, torch.ones_like(evals))
    sqrt_d = torch.where(keep, evals.sqrt(), torch.zeros_like(evals))
    inv_sqrt_d = torch.where(keep, evals.rsqrt(), torch.zeros_like(evals))
    return (evecs * sqrt_d) @ evecs.T, (evecs * inv_sqrt_d) @ evecs.T


@full_precision
def coral(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Colour transfer by CORAL: give ``source`` (3, H, W) the RGB mean and covariance of ``target``.

    Used for colour preservation: the *style* image takes the *content's* colours before
    stylization (as pytorch-AdaIN and SAFIN's ``--preserve_color`` do).
    """
    def stats(img: torch.Tensor):
        flat = img.reshape(3, -1).double()
        mean = flat.mean(dim=1, keepdim=True)
        centred = flat - mean
        return flat, mean, centred @ centred.T / max(flat.shape[1] - 1, 1) + eps * torch.eye(3, dtype=flat.dtype)

    _, s_mean, s_cov = stats(source)
    _, t_mean, t_cov = stats(target)
    _, s_inv_sqrt = _matrix_sqrt_and_inv_sqrt(s_cov, 0.0)
    t_sqrt, _ = _matrix_sqrt_and_inv_sqrt(t_cov, 0.0)
    flat = source.reshape(3, -1).double()
    out = t_sqrt @ (s_inv_sqrt @ (flat - s_mean)) + t_mean
    return out.reshape(source.shape).to(source.dtype).clamp(0, 1)


@full_precision
def whiten_colour(content: torch.Tensor, style: torch.Tensor, *, eps: float = 1e-5,
                  content_identity: bool = False, naive: bool = False) -> torch.Tensor:
    """The whitening–colouring transform (Li et al. 2017) of one (C, H, W) content map by a style map.

    Fast path: covariances in float32 (float64 only when the channel count is large relative to the
    number of positions), a symmetric eigensolver (``eigh``) on the tensor's device, eigenvalues
    below ``eps`` cut. ``naive=True`` is what PytorchWCT does: float64 ``torch.svd`` on the CPU.
    ``content_identity`` adds I to the content covariance (PytorchWCT's deviation from the official
    Torch code, which has no +I).
    """
    c, h, w = content.shape
    cf = content.reshape(c, -1)
    sf = style.reshape(style.shape[0], -1)
    if naive:
        return _whiten_colour_naive(cf, sf, eps, content_identity).reshape(c, h, w).to(content.device, content.dtype)
    # float32 is accurate enough when there are many more positions than channels; a rank-deficient
    # covariance (few positions, e.g. relu5_1 of a small image) is better conditioned in float64
    few_positions = min(cf.shape[1], sf.shape[1]) < 2 * c
    dtype = torch.float64 if few_positions else torch.float32
    cf, sf = cf.to(dtype), sf.to(dtype)
    c_mean, c_cov = _mean_cov(cf)
    s_mean, s_cov = _mean_cov(sf)
    if content_identity:
        c_cov = c_cov + torch.eye(c, dtype=dtype, device=cf.device)
    _, whiten = _matrix_sqrt_and_inv_sqrt(c_cov, eps)
    colour, _ = _matrix_sqrt_and_inv_sqrt(s_cov, eps)
    # colour @ whiten @ (cf - c_mean) + s_mean as ONE pass over the positions: T cf + (s_mean - T c_mean)
    t = colour @ whiten
    out = torch.addmm(s_mean - t @ c_mean, t, cf)
    return out.reshape(c, h, w).to(content.device, content.dtype)


def _mean_cov(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (C, 1) and unbiased covariance (C, C) of (C, N) samples. Computed as (X Xᵀ - N μμᵀ)/(N-1),
    one matrix product and no centred copy of X, when that is accurate (the channels' mean² is not
    much larger than their variance: true of ReLU features); otherwise from the centred copy."""
    n = x.shape[1]
    mean = x.mean(1, keepdim=True)
    denom = max(n - 1, 1)
    cov = torch.addmm(mean @ mean.T, x, x.T, beta=-n / denom, alpha=1.0 / denom)
    var = cov.diagonal()  # cancellation loses ~ mean²/var digits: fall back to the centred copy
    if n > 1 and float((mean.squeeze(1).square() / var.clamp_min(torch.finfo(x.dtype).tiny)).max()) < 1e2:
        return mean, cov
    centred = x - mean
    return mean, centred @ centred.T / denom


def _whiten_colour_naive(cf: torch.Tensor, sf: torch.Tensor, eps: float, content_identity: bool) -> torch.Tensor:
    """PytorchWCT's computation: float64 on the CPU, full ``torch.svd``, whiten then colour."""
    cf, sf = cf.to("cpu", torch.float64), sf.to("cpu", torch.float64)
    c = cf.shape[0]
    c_mean, s_mean = cf.mean(1, keepdim=True), sf.mean(1, keepdim=True)
    cf_c, sf_c = cf - c_mean, sf - s_mean
    c_cov = cf_c @ cf_c.T / max(cf.shape[1] - 1, 1)
    s_cov = sf_c @ sf_c.T / max(sf.shape[1] - 1, 1)
    if content_identity:
        c_cov = c_cov + torch.eye(c, dtype=torch.float64)
    _, c_e, c_v = torch.svd(c_cov, some=False)
    _, s_e, s_v = torch.svd(s_cov, some=False)
    k_c = int((c_e > eps).sum())
    k_s = int((s_e > eps).sum())
    whiten = c_v[:, :k_c] @ torch.diag(c_e[:k_c].pow(-0.5)) @ c_v[:, :k_c].T
    colour = s_v[:, :k_s] @ torch.diag(s_e[:k_s].sqrt()) @ s_v[:, :k_s].T
    return colour @ (whiten @ cf_c) + s_mean
