"""CFSD and the HistoGAN colour distance: each against a restatement of its reference's code path (StyleID's
``evaluation/image_metrics.py`` ``PatchSimi`` and ``eval_histogan.py`` ``RGBuvHistBlock`` at d4ea655, written out
here step by step as they compute, not by calling ours) on small real images, and against hand computations."""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evaluation import cfsd as cfsd_metric
from evaluation.cfsd import cfsd_from_features, self_similarity
from evaluation.metrics import hellinger, rgb_uv_histogram
from evaluation.network_files import weights_file
from safin.io.images import load_image

from .conftest import REPO

#: torchvision's vgg19().features indices of its 16 convolutions
CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
CONV_NAMES = [f"conv{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4)) for i in range(1, n + 1)]


def sample(name: str, size: tuple[int, int]) -> torch.Tensor:
    """A real photo of the sample set, (3, H, W) in [0, 1] (bilinear resize)."""
    img = load_image(next((REPO / "data" / "sample" / "content").glob(f"{name}*")))
    return F.interpolate(img[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)


@pytest.fixture(scope="module")
def vgg_stand_in(tmp_path_factory, real_cache):
    """A file in the released ``vgg19-dcbb9e9d.pth`` layout (every ``features.*`` and ``classifier.*`` tensor of
    torchvision's ``vgg19()``): its convolutions are ImageNet-trained (this suite's Oxford VGG-19, so the features
    are realistic, not random), its classifier zeros stored as one broadcast value (a 548 MB file would be 80 MB)."""
    from torchvision.models import vgg19

    from safin.io.weights import fetch

    oxford = torch.load(fetch("vgg19").path, weights_only=True)  # fetched (offline source) if the cache lacks it
    state = {}
    for idx, name in zip(CONV_INDICES, CONV_NAMES):
        state[f"features.{idx}.weight"], state[f"features.{idx}.bias"] = oxford[f"{name}.weight"], oxford[f"{name}.bias"]
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in vgg19().state_dict().items() if k.startswith("classifier.")}
    for k, shape in shapes.items():
        state[k] = torch.zeros(1).expand(shape)
    path = tmp_path_factory.mktemp("vgg") / "vgg19-standin.pth"
    torch.save(state, path)
    return path


def patch_simi_reference(model_features: torch.nn.Sequential, stylized: torch.Tensor, content: torch.Tensor,
                         dtype=torch.float32) -> float:
    """StyleID's ``PatchSimi.forward(stylized, content)`` restated: torchvision's normalize, every module of
    ``vgg19().features`` in turn keeping the output of index 11, then per kept map: transpose(1, 3), reshape to
    (b, h·w, c), divide by c, bmm with its transpose, log_softmax (stylized) and softmax (content) over the last
    axis, reshape to (b, -1), ``F.kl_div(..., reduction='batchmean')``. ``dtype``: theirs is float32; float64 shows
    the formula without rounding."""
    from torchvision.transforms import functional as TF

    def feats(img):
        x = TF.normalize(img, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        kept = []
        for name, layer in model_features._modules.items():
            x = layer(x)
            if name == "11":
                kept.append(x)
        return kept

    def simi(f, log):
        b, c, h, w = f.size()
        f = torch.transpose(f.to(dtype), 1, 3).reshape(b, h * w, c).div(c)
        s = torch.bmm(f, torch.transpose(f, 1, 2))
        return (F.log_softmax(s, dim=-1) if log else F.softmax(s, dim=-1)).reshape(b, -1)

    with torch.no_grad():
        total = 0.0
        for fs, fc in zip(feats(stylized[None]), feats(content[None])):
            total += F.kl_div(simi(fs, True), simi(fc, False), reduction="batchmean")
    return float(total)


def test_cfsd_equals_styleids_patch_simi_on_real_photos(vgg_stand_in, tmp_path, monkeypatch):
    from torchvision.models import vgg19

    monkeypatch.setenv("SAFIN_CACHE", str(tmp_path / "cache"))
    model, ident = cfsd_metric.load_network({"weights": str(vgg_stand_in)})
    assert ident["comparable"] and ident["checksum"] == "recorded now (first use)"
    reference = vgg19().eval()
    reference.load_state_dict(torch.load(vgg_stand_in, weights_only=True), strict=True)
    content = sample("astronaut", (60, 76))  # 15 × 19 relu3_1 positions: H ≠ W, so the transpose matters
    stylized = (0.6 * content + 0.4 * sample("ajantaCave", (60, 76))).clamp(0, 1)
    ours = cfsd_metric.cfsd(model, stylized, content)
    exact = patch_simi_reference(reference.features, stylized, content, torch.float64)
    assert ours == pytest.approx(exact, rel=1e-6)
    assert ours == pytest.approx(patch_simi_reference(reference.features, stylized, content), rel=1e-4)  # their float32
    # StyleID's scale: near-uniform rows (the logits are F·Fᵀ / C²), not the one-hot rows of the raw product
    fc = cfsd_metric.features(model, content)
    assert float(self_similarity(fc).max(-1).values.mean()) < 0.1
    assert 0 < ours < 5 and cfsd_metric.cfsd(model, content, content) == pytest.approx(0, abs=1e-12)
    # blocks of rows change nothing
    fs = cfsd_metric.features(model, stylized)
    assert cfsd_from_features(fc, fs, block=7) == pytest.approx(cfsd_from_features(fc, fs), rel=1e-7)  # float32 products


def test_cfsd_matches_a_hand_computation():
    """C = 2 channels, 2 positions: content features (2, 0) and (0, 2) -> rows (1, 0), (0, 1) after dividing by C,
    logits [[1, 0], [0, 1]]; stylized (2, 2) at both -> logits all 2, uniform rows. CFSD = the KL of each row,
    summed over the 2 rows (a mean over rows, or the raw product as logits, gives another number)."""
    fc = torch.tensor([[[2.0, 0.0]], [[0.0, 2.0]]])
    fo = torch.full((2, 1, 2), 2.0)
    a, b = math.e / (math.e + 1), 1 / (math.e + 1)
    row = a * math.log(a / 0.5) + b * math.log(b / 0.5)
    assert cfsd_from_features(fc, fo) == pytest.approx(2 * row, rel=1e-12)
    assert torch.allclose(self_similarity(fc).sum(-1), torch.ones(2, dtype=torch.float64))
    assert cfsd_from_features(fc, fc) == pytest.approx(0, abs=1e-15)


def test_torchvisions_vgg_file_is_checked_and_offline_cfsd_says_it_is_not_comparable(vgg_stand_in, tmp_path,
                                                                                    monkeypatch, http_server, real_cache):
    from safin.io.download import mirrored

    monkeypatch.setenv("SAFIN_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "weights").mkdir(parents=True)
    from safin.io.weights import fetch

    fetch("vgg19", root=real_cache)
    for name in ("vgg19.pth", "vgg19.json"):  # the offline fallback's network, from the real cache
        (tmp_path / "cache" / "weights" / name).symlink_to(real_cache / "weights" / name)
    monkeypatch.delenv("SAFIN_OFFLINE", raising=False)
    other = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, other)
    with pytest.raises(cfsd_metric.CFSDError, match=f"{other}: not torchvision's VGG-19: 37 of 38 tensors missing"):
        cfsd_metric.trunk_state_dict(other)
    with pytest.raises(cfsd_metric.CFSDError, match="sha256 [0-9a-f]+, expected abc123"):
        weights_file({"weights": str(vgg_stand_in), "sha256": "abc123"}, cfsd_metric.network_file())
    # a file named torchvision's way must carry its sha256's first digits
    misnamed = tmp_path / "vgg19-dcbb9e9d.pth"
    misnamed.write_bytes(vgg_stand_in.read_bytes())
    with pytest.raises(cfsd_metric.CFSDError, match="does not start with dcbb9e9d, as its file name says"):
        weights_file({"weights": str(misnamed)}, cfsd_metric.network_file())
    dated = tmp_path / "ckpt-20240101.pth"  # another name with digits after a dash: not held to them
    dated.write_bytes(vgg_stand_in.read_bytes())
    assert weights_file({"weights": str(dated)}, cfsd_metric.network_file())[0] == dated
    # the canonical URL through the stand-in server: the stand-in is not torchvision's file -> refused, deleted,
    # and CFSD falls back to the offline VGG-19, saying the number is not comparable
    monkeypatch.setenv("SAFIN_URL_MIRROR", http_server.url("").rstrip("/"))
    name = mirrored(cfsd_metric.VGG19_URL).split(http_server.url(""), 1)[1]
    http_server.files[name] = vgg_stand_in.read_bytes()
    model, ident = cfsd_metric.load_network({})
    assert not ident["comparable"] and ident["note"].startswith("not comparable with published CFSD")
    assert "does not start with dcbb9e9d" in ident["note"] and not cfsd_metric.cached_path().exists()
    assert isinstance(model, cfsd_metric.OfflineRelu31)
    model, ident = cfsd_metric.load_network({"download": False})
    assert not ident["comparable"] and "evaluate.cfsd.download is false" in ident["note"]
    # served under a name that carries its own prefix (as the real file does), it is downloaded, recorded and used
    from safin.io.files import sha256_file

    url = f"https://download.pytorch.org/models/vgg19-{sha256_file(vgg_stand_in)[:8]}.pth"
    monkeypatch.setattr(cfsd_metric, "VGG19_URL", url)
    monkeypatch.setattr(cfsd_metric, "cached_path", lambda: tmp_path / "cache" / "cfsd" / url.rsplit("/", 1)[1])
    http_server.files[mirrored(url).split(http_server.url(""), 1)[1]] = vgg_stand_in.read_bytes()
    model, ident = cfsd_metric.load_network({})
    assert ident["comparable"] and ident["from"] == url and isinstance(model, cfsd_metric.TorchvisionRelu31)
    table = json.loads((tmp_path / "cache" / "recorded_sha256.json").read_text())
    assert table[cfsd_metric.RECORD_KEY]["raw_sha256"] == sha256_file(vgg_stand_in)


def rgb_uv_block_reference(img: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """HistoGAN's ``RGBuvHistBlock(h=64, insz=256, method='inverse-quadratic', sigma=0.02, intensity_scale=True,
    resizing='interpolation')`` as StyleID's ``eval_histogan.py`` runs it, restated: clamp, bilinear
    resize to 256 × 256 only when a side exceeds 256, per channel c the log differences to the other two with
    ε = 1e-6 inside the logs, |d − linspace(−3, 3, 64)|² / σ², 1 / (1 + ·), cast to float32, intensity-weighted
    product, and the whole (3, 64, 64) divided by its sum + ε. ``dtype``: theirs is float32 (float64 shows the
    formula without rounding)."""
    eps, h, sigma = 1e-6, 64, 0.02
    x = torch.clamp(img[None].to(dtype), 0, 1)
    if x.shape[2] > 256 or x.shape[3] > 256:
        x = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
    i = torch.t(torch.reshape(x[0], (3, -1)))
    iy = torch.sqrt(i[:, 0] ** 2 + i[:, 1] ** 2 + i[:, 2] ** 2 + eps)[:, None]
    centres = torch.tensor(np.linspace(-3, 3, num=h))[None]
    hists = torch.zeros((3, h, h), dtype=dtype)
    for c, (a, b) in enumerate(((1, 2), (0, 2), (0, 1))):
        u = (torch.log(i[:, c] + eps) - torch.log(i[:, a] + eps))[:, None]
        v = (torch.log(i[:, c] + eps) - torch.log(i[:, b] + eps))[:, None]
        ku = (1 / (1 + torch.abs(u - centres) ** 2 / sigma ** 2)).to(dtype)
        kv = (1 / (1 + torch.abs(v - centres) ** 2 / sigma ** 2)).to(dtype)
        hists[c] = torch.mm(torch.t(iy * ku), kv)
    return hists / (hists.sum() + eps)


def histogan_loss_reference(stylized: torch.Tensor, style: torch.Tensor, dtype=torch.float32) -> float:
    """``eval_histogan.py``'s loss of one pair: 1/√2 · √Σ(√H_style − √H_stylized)², over a batch of 1."""
    hs, ho = rgb_uv_block_reference(style, dtype), rgb_uv_block_reference(stylized, dtype)
    return float(1 / np.sqrt(2.0) * torch.sqrt(torch.sum((torch.sqrt(hs) - torch.sqrt(ho)) ** 2)))


@pytest.mark.parametrize("size", [(120, 90), (300, 280), (300, 200)],
                         ids=["smaller-than-256-kept", "larger-resized", "one-side-larger-resized"])
def test_histogan_distance_equals_styleids_eval_histogan_on_real_photos(size):
    stylized, style = sample("astronaut", size), sample("arlesAmphitheater", size)
    ours = hellinger(rgb_uv_histogram(stylized), rgb_uv_histogram(style))
    assert ours == pytest.approx(histogan_loss_reference(stylized, style, torch.float64), rel=1e-6)
    assert ours == pytest.approx(histogan_loss_reference(stylized, style), rel=1e-4)  # their float32
    assert np.allclose(rgb_uv_histogram(style).numpy(), rgb_uv_block_reference(style, torch.float64).numpy(),
                       rtol=1e-6, atol=1e-12)


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
    assert np.allclose(h, hand / (hand.sum() + 1e-6), rtol=1e-12, atol=1e-18)
