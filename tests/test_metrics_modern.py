"""CFSD and the HistoGAN colour distance against hand computations on small cases."""
import math

import numpy as np
import torch

from evaluation.metrics import cfsd, cfsd_from_features, hellinger, rgb_uv_histogram, self_similarity


def test_cfsd_matches_a_hand_computation():
    # 2 channels, 3 positions (a 1 x 3 feature map)
    fc = torch.tensor([[[1.0, 0.0, 2.0]], [[0.0, 1.0, 1.0]]])
    fo = torch.tensor([[[0.5, 0.5, 1.0]], [[1.0, 0.0, 0.0]]])

    def rows(f):
        pts = [(f[0, 0, i].item(), f[1, 0, i].item()) for i in range(3)]
        out = []
        for a in pts:
            logits = [a[0] * b[0] + a[1] * b[1] for b in pts]
            z = sum(math.exp(x) for x in logits)
            out.append([math.exp(x) / z for x in logits])
        return out

    p, q = rows(fc), rows(fo)
    kl = sum(p[i][j] * (math.log(p[i][j]) - math.log(q[i][j])) for i in range(3) for j in range(3)) / 3
    assert abs(cfsd_from_features(fc, fo) - kl) < 1e-12
    assert torch.allclose(self_similarity(fc).sum(-1), torch.ones(3, dtype=torch.float64))
    assert abs(cfsd_from_features(fc, fc)) < 1e-15


def test_cfsd_of_an_image_is_zero_against_itself_and_grows_with_damage(real_cache):
    gen = torch.Generator().manual_seed(0)
    img = torch.rand(3, 48, 48, generator=gen)
    assert abs(cfsd(img, img)) < 1e-9
    blurred = torch.nn.functional.avg_pool2d(img[None], 5, 1, 2, count_include_pad=False)[0]
    noise = torch.rand(3, 48, 48, generator=gen)
    assert 0 < cfsd(blurred, img) < cfsd(noise, img)


def test_rgb_uv_histogram_matches_a_hand_computation():
    # one pixel (r, g, b), no resizing: H[c][i][j] = I * k(u_c - b_i) * k(v_c - b_j), normalised
    r, g, b = 0.8, 0.4, 0.2
    img = torch.tensor([r, g, b], dtype=torch.float64).view(3, 1, 1)
    h = rgb_uv_histogram(img, bins=8, sigma=0.5, size=0, eps=0.0)
    centres = np.linspace(-3, 3, 8)
    k = lambda d: 1 / (1 + ((d - centres) / 0.5) ** 2)  # noqa: E731
    lr, lg, lb = math.log(r), math.log(g), math.log(b)
    intensity = math.sqrt(r * r + g * g + b * b)
    hand = np.stack([np.outer(intensity * k(lr - lg), k(lr - lb)), np.outer(intensity * k(lg - lr), k(lg - lb)),
                     np.outer(intensity * k(lb - lr), k(lb - lg))])
    hand /= hand.sum()
    assert np.allclose(h.numpy(), hand, atol=1e-15)
    assert h.shape == (3, 8, 8) and abs(float(h.sum()) - 1) < 1e-12


def test_hellinger_distance_of_colour_histograms():
    red = torch.zeros(3, 16, 16)
    red[0] = 1.0
    green = torch.zeros(3, 16, 16)
    green[1] = 1.0
    grey = torch.full((3, 16, 16), 0.5)
    hr, hg, hgrey = (rgb_uv_histogram(x) for x in (red, green, grey))
    assert hellinger(hr, hr) == 0.0
    assert hellinger(hr, hg) > 0.9 and hellinger(hgrey, hr) > hellinger(hgrey, hgrey)
    assert hellinger(hr, hg) <= 1.0 + 1e-12


def test_rgb_uv_histogram_over_several_bands_equals_the_formula_written_out():
    """4 900 pixels: more than one band of the in-place kernel (4 096 rows); HistoGAN's formula in NumPy,
    every pixel at once."""
    rng = np.random.default_rng(3)
    img = torch.from_numpy(rng.uniform(0.05, 1, (3, 70, 70)))
    h = rgb_uv_histogram(img, size=0).numpy()
    x = img.numpy().reshape(3, -1)
    weight, logs, centres = np.sqrt((x ** 2).sum(0) + 1e-6), np.log(x + 1e-6), np.linspace(-3, 3, 64)
    k = lambda d: 1 / (1 + ((d[:, None] - centres[None]) / 0.02) ** 2)  # noqa: E731
    hand = np.stack([(weight[:, None] * k(logs[c] - logs[a])).T @ k(logs[c] - logs[b])
                     for c, (a, b) in enumerate(((1, 2), (0, 2), (0, 1)))])
    assert np.allclose(h, hand / hand.sum(), rtol=1e-12, atol=1e-18)
