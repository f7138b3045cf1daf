import torch

from safin.blocks.attention import attention
from safin.blocks.statistics import adain, calc_mean_std
from safin.blocks.wct import coral, whiten_colour
from safin.blocks.wavelet import WavePool, WaveUnpool


def test_haar_filters_are_exact_and_equal_the_reference_formula():
    """The reference (SAFIN utils.get_wav): L = H = 1/√2 · [1, 1] in float64 numpy, H[0] negated,
    LL = Lᵀ·L, LH = Lᵀ·H, HL = Hᵀ·L, HH = Hᵀ·H, cast to float32 for the conv weights."""
    import numpy as np

    from safin.blocks.wavelet import haar_kernels

    low = 1 / np.sqrt(2) * np.ones((1, 2))
    high = low.copy()
    high[0, 0] = -high[0, 0]
    reference = torch.from_numpy(np.stack([low.T * low, low.T * high, high.T * low, high.T * high])).float()
    ours = haar_kernels()[:, 0]
    assert torch.equal(ours, reference) and set(ours.abs().flatten().tolist()) == {0.5}
    # the float32 product of 1/√2 (what we had) is not exact: 0.5 · (1 − 2⁻²⁴)
    f32 = (torch.tensor(1 / np.sqrt(2), dtype=torch.float32) ** 2).item()
    assert f32 != 0.5 and abs(f32 - 0.5) < 1e-7


def test_wavelet_unpool_inverts_pool():
    x = torch.randn(2, 6, 20, 14, dtype=torch.float64)
    bands = WavePool(6)(x)
    assert all(b.shape == (2, 6, 10, 7) for b in bands)
    assert (WaveUnpool(6)(*bands) - x).abs().max() < 1e-15  # exact filters: only the sums round


def test_wavelet_ll_is_twice_the_average_pool_and_bands_see_edges():
    x = torch.randn(1, 3, 8, 8)
    ll, lh, hl, hh = WavePool(3)(x)
    assert torch.allclose(ll, 2 * torch.nn.functional.avg_pool2d(x, 2), atol=1e-6)
    flat = torch.ones(1, 1, 4, 4)
    _, lh0, hl0, hh0 = WavePool(1)(flat)
    assert lh0.abs().max() == 0 and hl0.abs().max() == 0 and hh0.abs().max() == 0


def test_adain_matches_style_moments():
    torch.manual_seed(0)
    c = torch.randn(2, 8, 9, 11) * 3 + 1
    s = torch.randn(2, 8, 7, 5) * 0.5 - 2
    out = adain(c, s)
    (om, os_), (sm, ss) = calc_mean_std(out), calc_mean_std(s)
    assert torch.allclose(om, sm, atol=1e-5)
    assert torch.allclose(os_, ss, atol=1e-3)


def _cov(x):
    f = x.reshape(x.shape[0], -1).double()
    f = f - f.mean(1, keepdim=True)
    return f @ f.T / (f.shape[1] - 1)


def test_wct_output_has_style_covariance_and_mean():
    torch.manual_seed(0)
    mix = torch.randn(16, 16)
    c = (mix @ torch.randn(16, 30 * 30)).reshape(16, 30, 30)
    s = (torch.randn(16, 16) @ torch.randn(16, 25 * 25)).reshape(16, 25, 25) + 3
    out = whiten_colour(c, s, content_identity=False)
    assert torch.allclose(_cov(out), _cov(s), rtol=1e-3, atol=1e-3 * float(_cov(s).abs().max()))
    assert torch.allclose(out.reshape(16, -1).mean(1), s.reshape(16, -1).mean(1), atol=1e-3)


def test_wct_fast_path_equals_float64_svd_path():
    torch.manual_seed(1)
    c = torch.relu(torch.randn(32, 24, 24))
    s = torch.relu(torch.randn(32, 20, 20)) * 2
    fast = whiten_colour(c, s, content_identity=True)
    naive = whiten_colour(c, s, content_identity=True, naive=True)
    assert (fast - naive).abs().max() < 1e-3 * naive.abs().max()


def test_memory_efficient_attention_equals_plain_softmax_attention():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 300, 64), torch.randn(2, 200, 64), torch.randn(2, 200, 32)
    for scale in (1.0, 0.125):
        fast = attention(q, k, v, scale=scale)
        plain = attention(q, k, v, scale=scale, memory_efficient=False)
        assert (fast - plain).abs().max() < 1e-5


def test_coral_matches_pytorch_adains_formula_by_default():
    """Restated from pytorch-AdaIN's function.py: standardise (unbiased std), C = X Xᵀ + I without
    dividing by N, map by sqrt(C_t) · inverse(sqrt(C_s)) with SVD square roots, then the target's std and
    mean; no clamp."""
    torch.manual_seed(0)
    src = torch.rand(3, 40, 40, dtype=torch.float64) * 0.5
    tgt = torch.rand(3, 30, 20, dtype=torch.float64) * 0.3 + torch.tensor([0.5, 0.2, 0.1]).view(3, 1, 1)

    def stats(x):
        f = x.reshape(3, -1)
        return f, f.mean(-1, keepdim=True), f.std(-1, keepdim=True)

    def mat_sqrt(m):
        u, d, v = torch.svd(m)
        return u @ d.pow(0.5).diag() @ v.t()

    sf, sm, ss = stats(src)
    tf, tm, ts = stats(tgt)
    sn, tn = (sf - sm) / ss, (tf - tm) / ts
    cs, ct = sn @ sn.t() + torch.eye(3, dtype=src.dtype), tn @ tn.t() + torch.eye(3, dtype=src.dtype)
    reference = ((mat_sqrt(ct) @ torch.inverse(mat_sqrt(cs)) @ sn) * ts + tm).view(src.shape)
    ours = coral(src, tgt)
    assert (ours - reference).abs().max() < 1e-12
    bright = coral(src, tgt * 3)  # nothing is clamped: a bright, contrasty target maps beyond 1
    assert bright.max() > 1
    # the √(N_t/N_s) factor: the same target at another size changes the result
    assert not torch.allclose(coral(src, tgt), coral(src, tgt.repeat(1, 2, 2)), atol=1e-3)


def test_coral_formula_gives_the_target_colour_statistics():
    torch.manual_seed(0)
    src = torch.rand(3, 40, 40) * 0.5
    tgt = torch.rand(3, 30, 30) * 0.3 + torch.tensor([0.5, 0.2, 0.1]).view(3, 1, 1)
    out = coral(src, tgt, impl_params=False)
    assert torch.allclose(out.reshape(3, -1).mean(1), tgt.reshape(3, -1).mean(1), atol=1e-3)
    assert torch.allclose(_cov(out), _cov(tgt), atol=1e-3)


def _extra_mib(code: str) -> float:
    """Peak-RSS growth (MiB) of ``code`` run in a fresh interpreter (it prints the number itself)."""
    import subprocess
    import sys

    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip())


def test_attention_does_not_materialise_the_full_map():
    """12k x 12k positions: the full float32 map would be 576 MB; the fused kernel must stay far below."""
    code = (
        "import resource, torch\n"
        "from safin.blocks.attention import attention\n"
        "torch.manual_seed(0)\n"
        "q, k, v = (torch.randn(1, 64, 12000).transpose(1, 2) for _ in range(3))  # views, as the modules make\n"
        "r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "attention(q, k, v)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - r0) / 1024)\n"
    )
    extra_mib = _extra_mib(code)
    assert extra_mib < 150, f"attention used {extra_mib:.0f} MiB extra; the full map is 549 MiB"


def test_attention_with_keys_and_values_of_two_widths_stays_fused_and_exact(monkeypatch):
    """AdaAttN's calls: keys wider than the values ([v, v²]) and values wider than the keys. PyTorch's CPU flash
    kernel takes one width only (otherwise its math path forms the whole map): 12k x 12k positions stay far below
    the 549 MiB map, and the float32 result equals the plain product (padded here at any size)."""
    from safin.blocks import attention as module
    from safin.blocks.attention import attention

    monkeypatch.setattr(module, "PAD_ABOVE", 0)

    gen = torch.Generator().manual_seed(0)
    for ck, cv in ((96, 64), (48, 80)):
        q, k = (torch.randn(2, 300, ck, generator=gen) / ck ** 0.5 for _ in range(2))
        v = torch.randn(2, 300, cv, generator=gen)
        got = attention(q, k, v)
        assert got.shape == (2, 300, cv)
        assert torch.allclose(got, attention(q, k, v, memory_efficient=False), rtol=1e-5, atol=1e-5)
    code = (
        "import resource, torch\n"
        "from safin.blocks.attention import attention\n"
        "torch.manual_seed(0)\n"
        "q, k = (torch.randn(1, 12000, 96) for _ in range(2))\n"
        "v = torch.randn(1, 12000, 64)\n"
        "r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "attention(q, k, v)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - r0) / 1024)\n"
    )
    extra_mib = _extra_mib(code)
    assert extra_mib < 150, f"attention used {extra_mib:.0f} MiB extra; the full map is 549 MiB"


def test_safin_attention_module_stays_memory_bounded_at_large_sizes():
    """SA on a 110x110 map (12,100 positions, the full map would be 559 MiB) through the module itself."""
    code = (
        "import resource, torch\n"
        "from safin.models.modules import SelfAttention\n"
        "torch.manual_seed(0)\n"
        "sa = SelfAttention(64).eval()\n"
        "c, s = torch.randn(1, 64, 110, 110), torch.randn(1, 64, 110, 110)\n"
        "r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "with torch.inference_mode():\n"
        "    sa(c, s)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - r0) / 1024)\n"
    )
    extra_mib = _extra_mib(code)
    assert extra_mib < 200, f"SelfAttention used {extra_mib:.0f} MiB extra; the full map is 559 MiB"


def test_whiten_colour_fast_path_handles_large_means_like_the_float64_path():
    # mean² >> variance: the one-pass covariance would cancel badly; the fast path must notice
    torch.manual_seed(0)
    c = torch.randn(8, 30, 30) + 1000.0
    s = torch.randn(8, 30, 30) * 3 + 500.0
    fast = whiten_colour(c, s)
    ref = whiten_colour(c.double(), s.double(), naive=True)
    assert torch.allclose(fast.double(), ref, rtol=0, atol=1e-3 * float(ref.abs().max()))


def _channels_last_map(x: torch.Tensor) -> torch.Tensor:
    return x[None].contiguous(memory_format=torch.channels_last)[0]


def test_wct_channels_last_map_takes_the_onednn_path_and_equals_the_float64_path():
    from safin.blocks import wct as ops

    torch.manual_seed(3)
    c = torch.relu(torch.randn(1, 160, 40, 36)) + 0.1
    s = torch.relu(torch.randn(1, 160, 30, 30)) * 2
    c_nhwc, s_nhwc = _channels_last_map(c[0]), _channels_last_map(s[0])
    assert ops._onednn_layout(c_nhwc) and not ops._onednn_layout(c[0].contiguous())
    fast = whiten_colour(c_nhwc, s_nhwc, content_identity=True)
    naive = whiten_colour(c[0], s[0], content_identity=True, naive=True)
    assert fast.dtype == torch.float32 and fast.shape == c[0].shape
    assert fast.stride(0) == 1, "the output keeps the content's channels-last layout"
    assert (fast.double() - naive).abs().max() < 1e-4 * naive.abs().max()
    mean, cov = ops._mean_cov_map(c_nhwc)
    ref = c[0].reshape(160, -1).double()
    assert torch.allclose(mean.squeeze(1).double(), ref.mean(1), atol=1e-5)
    assert torch.allclose(cov.double(), torch.cov(ref), atol=1e-4 * float(torch.cov(ref).abs().max()))


def test_wct_few_positions_runs_in_float64_and_returns_the_input_dtype():
    torch.manual_seed(4)
    c = _channels_last_map(torch.relu(torch.randn(64, 6, 6)))  # 36 positions < 2 x 64 channels
    s = _channels_last_map(torch.relu(torch.randn(64, 5, 7)))
    out = whiten_colour(c, s, content_identity=True)
    naive = whiten_colour(c, s, content_identity=True, naive=True)
    assert out.dtype == torch.float32
    assert (out.double() - naive.double()).abs().max() < 1e-3 * naive.abs().max()


def test_conv1x1_in_bands_equals_one_matrix_product():
    from safin.blocks import wct as ops

    torch.manual_seed(5)
    x = _channels_last_map(torch.randn(8, 37, 11))
    w, b = torch.randn(8, 8), torch.randn(8)
    ref = (w.double() @ x.reshape(8, -1).double() + b.double()[:, None]).reshape(8, 37, 11)
    for band_bytes in (1, 8 * 11 * 4 * 5, 1 << 30):  # one row per band, 5 rows (last band short), all at once
        out = ops._conv1x1_in_bands(x, w, b, band_bytes=band_bytes)
        assert out.stride(0) == 1
        assert torch.allclose(out.double(), ref, atol=1e-5)


def test_concurrent_matrix_square_roots_equal_sequential_ones():
    from safin.blocks import wct as ops

    torch.manual_seed(6)
    a, b = torch.randn(200, 900), torch.randn(200, 700)
    ca, cb = torch.cov(a), torch.cov(b)
    both = ops._sym_sqrts([(ca, True), (cb, False)], 1e-5)
    assert torch.get_num_threads() >= 1
    assert torch.allclose(both[0], ops._sym_sqrt(ca, 1e-5, inverse=True), atol=1e-5)
    assert torch.allclose(both[1], ops._sym_sqrt(cb, 1e-5), atol=1e-5)
    assert torch.allclose(both[1] @ both[1], cb, atol=1e-3 * float(cb.abs().max()))
    assert torch.allclose(both[0] @ ca @ both[0], torch.eye(200), atol=1e-3)
