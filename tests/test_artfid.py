"""ArtFID (evaluation/artfid.py) through its real loading code, with a stand-in for the art Inception: the
architecture of the released two-head network with random weights (we cannot download the real one here).
The download path runs against a server on 127.0.0.1 (SAFIN_URL_MIRROR); offline it is skipped with one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from evaluation import artfid
from tests.test_releases import mirror_name


def reference_fid(x, y, eps=1e-6):
    """The FID as pytorch-fid and art-fid write it (restated: sqrtm of the covariance product)."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + off).dot(s2 + off))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_matches_the_sqrtm_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 12))
    y = rng.normal(loc=0.3, scale=1.5, size=(45, 12)) @ rng.normal(size=(12, 12))
    assert artfid.frechet_distance(x, y) == pytest.approx(reference_fid(x, y), rel=1e-9)
    assert artfid.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    # fewer images than dimensions (rank-deficient covariances, as 40 images of 2048-d features): the trace of
    # the product's square root from its eigenvalues, the definition sqrtm approximates
    a, b = rng.normal(size=(10, 30)), rng.normal(loc=0.1, size=(8, 30))
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    tr = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
    want = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr
    assert artfid.frechet_distance(a, b) == pytest.approx(want, rel=1e-7)
    with pytest.raises(artfid.ArtFIDError, match="at least 2 images"):
        artfid.frechet_distance(a[:1], b)


def write_art_inception_stand_in(path):
    """A checkpoint laid out as the released art_inception.pth (torchvision's Inception3 with two heads:
    fc1/fc2, AuxLogits1/AuxLogits2), random weights; its batch-norm statistics set from one batch of random
    images, so its activations neither vanish nor explode through 94 layers."""
    from torchvision.models import Inception3

    torch.manual_seed(0)
    net = Inception3(num_classes=10, aux_logits=False, init_weights=False)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0  # the running statistics become this batch's
    with torch.no_grad():
        net.train()(torch.rand(4, 3, 96, 96))
    state = {}
    for k, v in net.state_dict().items():
        if k.startswith("fc."):
            state["fc1." + k[3:]], state["fc2." + k[3:]] = v, v.clone()
        else:
            state[k] = v
    aux = Inception3(num_classes=10, aux_logits=True, init_weights=False).AuxLogits.state_dict()
    for k, v in aux.items():
        state["AuxLogits1." + k], state["AuxLogits2." + k] = v, v.clone()
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    return write_art_inception_stand_in(tmp_path_factory.mktemp("art") / "art_inception.pth")


def images(n, size=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, size, size + 8 * (i % 2), generator=g) for i in range(n)]


def test_the_stand_in_loads_through_the_real_code_and_gives_artfid(stand_in, tmp_path, monkeypatch):
    monkeypatch.setenv("SAFIN_CACHE", str(tmp_path / "cache"))
    path, origin = artfid.weights_file({"weights": str(stand_in)})
    assert path == stand_in and origin["checksum"] == "recorded now (first use)"
    table = json.loads((tmp_path / "cache" / "recorded_sha256.json").read_text())
    assert table[artfid.RECORD_KEY]["raw_sha256"] == origin["sha256"]
    assert artfid.weights_file({"weights": str(stand_in)})[1]["checksum"].startswith("matches the one recorded on first use")
    model = artfid.load_model(str(stand_in))
    feats = [artfid.inception_features(model, im) for im in images(6)]
    assert feats[0].shape == (2048,) and feats[0].dtype == np.float64 and np.isfinite(feats).all()
    # the trunk is the checkpoint's: its first convolution holds the file's tensor
    assert torch.equal(model.Conv2d_1a_3x3.conv.weight, torch.load(stand_in)["Conv2d_1a_3x3.conv.weight"])
    styles = [artfid.inception_features(model, im) for im in images(6, seed=1)]
    lp = np.linspace(0.2, 0.5, 6)
    got = artfid.art_fid(lp, np.stack(feats), np.stack(styles), n_resamples=200)
    fid = artfid.frechet_distance(np.stack(feats), np.stack(styles))
    assert got["fid"]["mean"] == pytest.approx(fid, rel=1e-5)
    assert got["artfid"]["mean"] == pytest.approx((1 + lp.mean()) * (1 + fid), rel=1e-5)
    assert got["artfid"]["n"] == 6 and got["content_dist"]["mean"] == pytest.approx(lp.mean())
    for k in ("artfid", "fid", "content_dist"):
        lo, hi = got[k]["ci95"]
        assert lo <= hi and lo < got[k]["mean"] * 1.5


def test_wrong_weights_are_refused_with_one_line(stand_in, tmp_path, monkeypatch):
    monkeypatch.setenv("SAFIN_CACHE", str(tmp_path / "cache"))
    html = tmp_path / "art_inception.pth"
    html.write_text("<!doctype html><html>Sign in to Hugging Face</html>")
    with pytest.raises(artfid.ArtFIDError, match=f"{html}: not a readable torch checkpoint"):
        artfid.weights_file({"weights": str(html), "sha256": None})
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, other)
    with pytest.raises(artfid.ArtFIDError, match=f"{other}: not an Inception-v3 checkpoint: 470 of 470 trunk "
                                             r"tensors missing \(e.g. Conv2d_1a_3x3.conv.weight\), 0 of the wrong shape, 1 unknown"):
        artfid.trunk_state_dict(other)
    with pytest.raises(artfid.ArtFIDError, match=f"{stand_in}: sha256 [0-9a-f]+, expected abc123"):
        artfid.weights_file({"weights": str(stand_in), "sha256": "abc123"})
    with pytest.raises(artfid.ArtFIDError, match="no such file"):
        artfid.weights_file({"weights": str(tmp_path / "nowhere.pth")})
    artfid.weights_file({"weights": str(stand_in)})  # recorded on first use ...
    moved = tmp_path / "moved" / "art_inception.pth"
    moved.parent.mkdir()
    state = torch.load(stand_in)
    state["Conv2d_1a_3x3.bn.bias"] = state["Conv2d_1a_3x3.bn.bias"] + 1
    torch.save(state, moved)
    with pytest.raises(artfid.ArtFIDError, match="was recorded on first use; a different file"):
        artfid.weights_file({"weights": str(moved)})  # ... and another file is refused
    model = artfid.load_model(str(stand_in))
    with pytest.raises(artfid.ArtFIDError, match="needs at least 75 px"):
        artfid.inception_features(model, torch.rand(3, 64, 64))


def test_downloaded_from_the_canonical_url_cached_and_skipped_offline(stand_in, http_server, tmp_path, monkeypatch):
    monkeypatch.setenv("SAFIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SAFIN_OFFLINE", raising=False)
    with pytest.raises(artfid.ArtFIDError, match="evaluate.artfid.download is false"):
        artfid.weights_file({"download": False})
    monkeypatch.setenv("SAFIN_OFFLINE", "1")
    with pytest.raises(artfid.ArtFIDError, match="SAFIN_OFFLINE=1 and no art_inception.pth at hand: download https://"):
        artfid.weights_file({})
    monkeypatch.delenv("SAFIN_OFFLINE")
    monkeypatch.setenv("SAFIN_URL_MIRROR", http_server.url("").rstrip("/"))
    with pytest.raises(artfid.ArtFIDError, match="HTTP 404"):
        artfid.weights_file({})
    data = stand_in.read_bytes()
    http_server.files[mirror_name(artfid.CKPT_URL)] = data
    http_server.drop_after[mirror_name(artfid.CKPT_URL)] = len(data) // 2  # a dropped connection: resumed
    path, origin = artfid.weights_file({})
    assert path == artfid.cached_path() and path.read_bytes() == data and origin["from"] == artfid.CKPT_URL
    assert [r for _, r in http_server.requests][-1] == f"bytes={len(data) // 2}-"
    n = len(http_server.requests)
    assert artfid.weights_file({})[1]["from"].startswith("cache") and len(http_server.requests) == n
    path.write_bytes(b"<html>a login page</html>")  # a damaged cached copy is refused and deleted
    with pytest.raises(artfid.ArtFIDError, match=f"{path}: not a readable torch checkpoint"):
        artfid.weights_file({})
    assert not path.exists()


def _stylized_folder(tmp_path, n=3):
    stylized = tmp_path / "stylized"
    (stylized / "inputs").mkdir(parents=True)
    (stylized / "adain").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        for kind in ("content", "style"):
            Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(stylized / f"inputs/{i:02d}_{kind}.png")
        Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(stylized / f"adain/{i:02d}.png")
    return stylized


def test_evaluate_computes_artfid_with_weights_and_skips_it_offline(stand_in, tmp_path, monkeypatch, capsys):
    from safin.io.files import sha256_file
    from pipeline.evaluate import evaluate

    stylized = _stylized_folder(tmp_path)
    monkeypatch.setattr(artfid, "cached_path", lambda: tmp_path / "no-cache" / "art_inception.pth")
    monkeypatch.setenv("SAFIN_OFFLINE", "1")
    base = {"out": str(tmp_path / "metrics"), "bootstrap": 50, "seed": 0,
            "protocol": "art-fid"}  # each image at its own size (the protocols' inputs: tests/test_protocols.py)
    doc = evaluate({"evaluate": {**base, "artfid": {"weights": None}},
                    "stylize": {"out": str(stylized), "methods": ["adain"]}})
    assert "artfid" not in doc["metrics"]["adain"] and doc["artfid"] is None
    line = doc["skipped"]["ArtFID"]
    assert line.startswith("skipped, no number computed: SAFIN_OFFLINE=1 and no art_inception.pth at hand")
    assert f"ArtFID: {line}" in capsys.readouterr().out.splitlines()
    # with weights (pinned: nothing is recorded in the real cache for a stand-in)
    spec = {"weights": str(stand_in), "sha256": sha256_file(stand_in)}
    doc = evaluate({"evaluate": {**base, "artfid": spec}, "stylize": {"out": str(stylized), "methods": ["adain"]}})
    m = doc["metrics"]["adain"]
    assert m["artfid"]["n"] == 3 and m["artfid"]["mean"] == pytest.approx(
        (1 + m["fid"]["mean"]) * (1 + m["lpips"]["mean"]), rel=1e-4)
    assert "ArtFID" not in doc["skipped"] and "dominated by its bias" in doc["artfid"]["note"]
    assert doc["artfid"]["weights"]["checksum"].startswith("pinned")
    saved = json.loads((tmp_path / "metrics" / "summary.json").read_text())
    assert saved["metrics"]["adain"]["artfid"] == m["artfid"]


def test_the_gate_judges_artfid_when_its_reference_has_it():
    from evaluation.regression import compare, not_gated

    tol = {"default": {"rel": 2e-3, "abs": 1e-6}}
    ref = {"metrics": {"adain": {"lpips": {"mean": 0.5}, "artfid": {"mean": 30.0, "n": 40}}}}
    worse = {"metrics": {"adain": {"lpips": {"mean": 0.5}, "artfid": {"mean": 31.0, "n": 40}}}}
    assert {r.metric: r.status for r in compare(ref, worse, tol)} == {"lpips": "ok", "artfid": "regressed"}
    skipped = {"metrics": {"adain": {"lpips": {"mean": 0.5}}}}
    assert {r.metric: r.status for r in compare(ref, skipped, tol)}["artfid"] == "missing"
    assert not_gated(skipped, worse) == ["adain.artfid"]


def test_an_unreachable_host_is_one_line_naming_the_url_once(tmp_path, monkeypatch):
    import urllib.error
    import socket

    from safin.io import download as dl

    monkeypatch.setenv("SAFIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SAFIN_OFFLINE", raising=False)
    monkeypatch.delenv("SAFIN_URL_MIRROR", raising=False)

    def no_dns(*a, **k):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(dl, "_open", no_dns)
    with pytest.raises(artfid.ArtFIDError) as e:
        artfid.weights_file({})
    line = str(e.value)
    assert "\n" not in line and line.count(artfid.CKPT_URL) == 1 and "cannot resolve host" in line
    assert line.endswith("download it by hand and set evaluate.artfid.weights")
