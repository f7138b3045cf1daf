"""Whitening and colouring (WCT, Li et al. 2017) and CORAL colour transfer: symmetric square roots of
feature covariances."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

from safin.runtime.precision import full_precision


def _eigh(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.linalg.eigh``; on the CPU single-threaded: for the <= 512x512 matrices of WCT one
    thread is faster (docs/performance.md), and a multi-threaded
    LAPACK call degrades badly (seconds) when the cores are busy with other work."""
    if cov.device.type != "cpu" or cov.shape[-1] > 1024:
        return torch.linalg.eigh(cov)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(cov)
    finally:
        torch.set_num_threads(threads)


def _sym_sqrt(cov: torch.Tensor, eps: float, inverse: bool = False, pin_threads: bool = True) -> torch.Tensor:
    """cov^½ (or cov^-½ with ``inverse``) of a symmetric PSD matrix; eigenvalues <= eps are cut
    (pseudo-inverse). Falls back to float64 when float32 ``eigh`` does not converge (many repeated
    eigenvalues)."""
    try:
        evals, evecs = _eigh(cov) if pin_threads else torch.linalg.eigh(cov)
        if not (torch.isfinite(evals).all() and torch.isfinite(evecs).all()):
            raise torch.linalg.LinAlgError("non-finite eigendecomposition")
    except torch.linalg.LinAlgError:
        if cov.dtype == torch.float64:
            raise
        return _sym_sqrt(cov.double(), eps, inverse, pin_threads).to(cov.dtype)
    keep = evals > eps
    evals = torch.where(keep, evals, torch.ones_like(evals))
    d = torch.where(keep, evals.rsqrt() if inverse else evals.sqrt(), torch.zeros_like(evals))
    return (evecs * d) @ evecs.T


@full_precision
def coral(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5, *, impl_params: bool = True) -> torch.Tensor:
    """Colour transfer by CORAL: give ``source`` (3, H, W) the colour statistics of ``target``.

    Used for colour preservation: the *style* image takes the *content's* colours before
    stylization (as pytorch-AdaIN and SAFIN's ``--preserve_color`` do).

    ``impl_params=True`` (default; pytorch-AdaIN's ``coral``, which SAFIN's test.py imports): each
    image is standardised per channel (unbiased std), ``C = X Xᵀ + I`` is formed from the standardised
    pixels *without* dividing by their number, and ``X_s`` is mapped by ``C_t^½ C_s^-½``, then takes the
    target's std and mean. Because the C are sums, the map carries a factor ≈ √(N_target/N_source) when
    the two images differ in size; nothing is clamped.

    ``impl_params=False``: the CORAL of the formula — the source's mean and covariance (divided by
    N − 1, plus ``eps``·I) matched exactly to the target's, the result clamped to [0, 1].
    """
    if impl_params:
        def standardised(img: torch.Tensor):
            flat = img.reshape(3, -1).double()
            mean, std = flat.mean(dim=1, keepdim=True), flat.std(dim=1, keepdim=True)
            x = (flat - mean) / std
            return x, mean, std, x @ x.T + torch.eye(3, dtype=x.dtype)

        xs, _, _, cs = standardised(source)
        _, t_mean, t_std, ct = standardised(target)
        out = (_sym_sqrt(ct, 0.0) @ (_sym_sqrt(cs, 0.0, inverse=True) @ xs)) * t_std + t_mean
        return out.reshape(source.shape).to(source.dtype)

    def stats(img: torch.Tensor):
        flat = img.reshape(3, -1).double()
        mean = flat.mean(dim=1, keepdim=True)
        centred = flat - mean
        return flat, mean, centred @ centred.T / max(flat.shape[1] - 1, 1) + eps * torch.eye(3, dtype=flat.dtype)

    _, s_mean, s_cov = stats(source)
    _, t_mean, t_cov = stats(target)
    s_inv_sqrt = _sym_sqrt(s_cov, 0.0, inverse=True)
    t_sqrt = _sym_sqrt(t_cov, 0.0)
    flat = source.reshape(3, -1).double()
    out = t_sqrt @ (s_inv_sqrt @ (flat - s_mean)) + t_mean
    return out.reshape(source.shape).to(source.dtype).clamp(0, 1)


@full_precision
def whiten_colour(content: torch.Tensor, style: torch.Tensor, *, eps: float = 1e-5,
                  content_identity: bool = False, naive: bool = False) -> torch.Tensor:
    """The whitening–colouring transform (Li et al. 2017) of one (C, H, W) content map by a style map.

    Fast path: covariances in float32 (float64 only when the channel count is large relative to the
    number of positions), a symmetric eigensolver (``eigh``) on the tensor's device, eigenvalues
    below ``eps`` cut, whitening and colouring folded into one C×C matrix applied in one pass. On the
    CPU, maps in channels-last layout (what a ``channels_last`` encoder produces) go through oneDNN:
    the Gram matrix as a 1×1 convolution's weight gradient and the C×C matrix as a 1×1 convolution
    (faster than the BLAS matrix product on the CPUs measured, docs/performance.md; same float32
    accuracy); the content and
    style eigendecompositions run concurrently, one core each. The output keeps the content's layout.
    ``naive=True`` is what PytorchWCT does: float64 ``torch.svd`` on the CPU.
    ``content_identity`` adds I to the content covariance (PytorchWCT's deviation from the official
    Torch code, which has no +I).
    """
    c, h, w = content.shape
    if naive:
        cf, sf = content.reshape(c, -1), style.reshape(style.shape[0], -1)
        return _whiten_colour_naive(cf, sf, eps, content_identity).reshape(c, h, w).to(content.device, content.dtype)
    # float32 is accurate enough when there are many more positions than channels; a rank-deficient
    # covariance (few positions, e.g. relu5_1 of a small image) is better conditioned in float64
    few_positions = min(h * w, style.shape[1] * style.shape[2]) < 2 * c
    dtype = torch.float64 if few_positions or content.dtype == torch.float64 else torch.float32
    out_dtype = content.dtype
    content, style = content.to(dtype), style.to(dtype)
    onednn = _onednn_layout(content)
    c_mean, c_cov = _mean_cov_map(content)
    s_mean, s_cov = _mean_cov_map(style)
    if content_identity:
        c_cov = c_cov + torch.eye(c, dtype=dtype, device=content.device)
    whiten, colour = _sym_sqrts([(c_cov, True), (s_cov, False)], eps)
    # colour @ whiten @ (cf - c_mean) + s_mean as ONE pass over the positions: T cf + (s_mean - T c_mean)
    t = colour @ whiten
    bias = s_mean - t @ c_mean
    if onednn:
        out = _conv1x1_in_bands(content, t, bias.reshape(c))
    else:
        out = torch.addmm(bias, t, content.reshape(c, -1)).reshape(c, h, w)
    return out.to(out_dtype)


def _onednn_layout(x: torch.Tensor) -> bool:
    """A (C, H, W) CPU map stored channels-last (channel stride 1), outside autograd: oneDNN's 1x1
    convolution kernels beat the BLAS product for it (converting an NCHW map first costs more)."""
    return (x.device.type == "cpu" and x.dim() == 3 and x.shape[0] > 1 and x.stride(0) == 1
            and x.dtype == torch.float32 and torch.backends.mkldnn.is_available()
            and not (torch.is_grad_enabled() and x.requires_grad))


def _conv1x1_in_bands(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                      band_bytes: int = 2 << 20) -> torch.Tensor:
    """weight @ x + bias at every position of a channels-last (C, H, W) map, as oneDNN 1x1
    convolutions over bands of rows of about ``band_bytes``: one convolution over a large map was
    slower on the CPUs measured (docs/performance.md)."""
    c, h, w = x.shape
    x4 = _batch_of_one(x)
    kernel = weight.reshape(weight.shape[0], c, 1, 1)
    rows = max(1, band_bytes // (w * c * x.element_size()))
    if rows >= h:
        return F.conv2d(x4, kernel, bias)[0]
    out = torch.empty((1, weight.shape[0], h, w), dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last)
    for top in range(0, h, rows):
        out[:, :, top:top + rows] = F.conv2d(x4[:, :, top:top + rows], kernel, bias)
    return out[0]


def _batch_of_one(x: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) view of a channels-last (C, H, W) map with the canonical batch stride: with the
    stride ``x[None]`` gives that size-1 dimension, oneDNN takes a slow generic kernel (docs/performance.md)."""
    c, h, w = x.shape
    return x.as_strided((1, c, h, w), (c * h * w, *x.stride()))


def _mean_cov_map(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (C, 1) and unbiased covariance (C, C) of a (C, H, W) map's positions."""
    c = x.shape[0]
    if not _onednn_layout(x):
        return _mean_cov(x.reshape(c, -1))
    # Σ_p x_p x_pᵀ is the weight gradient of a 1x1 convolution whose input and output gradient are
    # both x: oneDNN's kernel for it (its bias gradient, Σ_p x_p, is slower than a sum)
    x4 = _batch_of_one(x)
    gram = torch.ops.aten.convolution_backward(
        x4, x4, x4.new_empty(c, c, 1, 1), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [False, True, False])[1]
    total = x4.sum((0, 2, 3)).reshape(c, 1)
    return _cov_from_moments(gram.reshape(c, c), total, x.shape[1] * x.shape[2], lambda: x.reshape(c, -1))


def _mean_cov(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (C, 1) and unbiased covariance (C, C) of (C, N) samples."""
    return _cov_from_moments(x @ x.T, x.sum(1, keepdim=True), x.shape[1], lambda: x)


def _cov_from_moments(gram: torch.Tensor, total: torch.Tensor, n: int, samples) -> tuple[torch.Tensor, torch.Tensor]:
    """Covariance as (Σ x xᵀ - N μμᵀ)/(N-1), no centred copy of X, when that is accurate (the
    channels' mean² is not much larger than their variance: true of ReLU features); otherwise from
    the centred copy of ``samples()`` (C, N)."""
    mean = total / n
    denom = max(n - 1, 1)
    cov = (gram - n * (mean @ mean.T)) / denom
    cov = (cov + cov.T) / 2
    var = cov.diagonal()  # cancellation loses ~ mean²/var digits: fall back to the centred copy
    if n > 1 and float((mean.squeeze(1).square() / var.clamp_min(torch.finfo(gram.dtype).tiny)).max()) < 1e2:
        return mean, cov
    centred = samples() - mean
    return mean, centred @ centred.T / denom


_EIGH_POOL: ThreadPoolExecutor | None = None


def _sym_sqrts(jobs: list[tuple[torch.Tensor, bool]], eps: float) -> list[torch.Tensor]:
    """:func:`_sym_sqrt` of each (matrix, inverse). On the CPU the decompositions run concurrently,
    one thread each (a single LAPACK call on these <= 512x512 matrices does not use 2 cores well:
    docs/performance.md)."""
    global _EIGH_POOL
    cov0 = jobs[0][0]
    if len(jobs) < 2 or cov0.device.type != "cpu" or torch.get_num_threads() < 2 or cov0.shape[-1] < 128:
        return [_sym_sqrt(m, eps, inv) for m, inv in jobs]
    if _EIGH_POOL is None:
        _EIGH_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="safin-eigh")
    # pinned once here, from this thread; the worker calls eigh unpinned: torch's thread count is
    # per-thread under OpenMP (likely why): pinning from the worker too was slower per WCT
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rest = [_EIGH_POOL.submit(_sym_sqrt, m, eps, inv, False) for m, inv in jobs[1:]]
        first = _sym_sqrt(cov0, eps, jobs[0][1], False)
        return [first] + [f.result() for f in rest]
    finally:
        torch.set_num_threads(threads)


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
