"""The named protocols' LPIPS and Inception inputs against restatements of their references' code paths: StyleID's
``eval_artfid.py`` (``compute_content_distance`` with and without ``gray``, ``get_activations``) and art-fid
upstream's ``art_fid.py``, on real photos written as PNG files, as those scripts read them."""
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import Compose, Grayscale, Resize, ToTensor

from evaluation import protocols
from evaluation.metrics import lpips
from safin.io.images import load_image

from .conftest import REPO


def png(tmp_path, name: str, photo: str, size: tuple[int, int]):
    img = load_image(next((REPO / "data" / "sample" / "content").glob(f"{photo}*")))
    img = F.interpolate(img[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)
    path = tmp_path / f"{name}.png"
    Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(path)
    return path


@pytest.fixture(scope="module")
def reference_lpips(real_cache):
    """``lpips.LPIPS(net='alex')`` as StyleID's ``image_metrics.LPIPS`` builds it: v0.1 linear heads, torchvision's
    ImageNet AlexNet as the trunk (here from the asset cache, loaded into the trunk's slices by their indices)."""
    import lpips as lpips_lib

    model = lpips_lib.LPIPS(net="alex", pnet_rand=True, verbose=False)
    from safin.io.weights import fetch

    trunk = torch.load(fetch("alexnet").path, weights_only=True)  # fetched (offline source) if the cache lacks it
    for key, value in trunk.items():
        _, idx, kind = key.split(".")
        slice_ = next(s for s in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4,
                                  model.net.slice5) if idx in s._modules)
        getattr(slice_._modules[idx], kind).data.copy_(value)
    return model.eval()


def content_distance_reference(model, stylized_png, content_png, *, resize: bool, gray: bool) -> float:
    """``compute_content_distance`` for one pair, batch 1: PIL RGB, [Resize(512)], [Grayscale()], ToTensor(), then
    ``LPIPS()(x, y)`` = ``lpips.LPIPS(net='alex')(2x − 1, 2y − 1)``."""
    steps = ([Resize(512)] if resize else []) + ([Grayscale()] if gray else []) + [ToTensor()]
    x, y = (Compose(steps)(Image.open(p).convert("RGB"))[None] for p in (stylized_png, content_png))
    with torch.no_grad():
        return float(model(2 * x - 1, 2 * y - 1))


@pytest.mark.parametrize("name,gray", [("styleid", False), ("styleid", True), ("art-fid", False)])
def test_lpips_of_each_protocol_equals_its_reference(tmp_path, reference_lpips, name, gray):
    stylized = png(tmp_path, "stylized", "astronaut", (150, 200))  # shorter side 150: Resize(512) upsamples
    content = png(tmp_path, "content", "ajantaCave", (150, 200))
    protocol = protocols.get(name)
    ours = float(lpips(protocols.load(stylized, protocol, gray), protocols.load(content, protocol, gray))[0])
    want = content_distance_reference(reference_lpips, stylized, content, resize=protocol.resize == 512, gray=gray)
    assert ours == pytest.approx(want, rel=1e-6)
    assert protocols.load(stylized, protocol, gray).shape == ((1 if gray else 3),) + (
        (512, 682) if name == "styleid" else (150, 200))


def test_the_inception_inputs_are_the_references(tmp_path):
    """``get_activations``'s dataset transform: StyleID ``Compose([Resize(512), ToTensor()])``, art-fid ``ToTensor()``;
    bit for bit (the Inception then sees the same tensor)."""
    path = png(tmp_path, "img", "astronaut", (300, 140))
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        assert torch.equal(protocols.load(path, protocols.get("styleid")), Compose([Resize(512), ToTensor()])(rgb))
        assert torch.equal(protocols.load(path, protocols.get("art-fid")), ToTensor()(rgb))
    assert torch.equal(protocols.load(path, protocols.get("suite")), load_image(path))


def test_an_unknown_protocol_is_one_line_naming_the_choices():
    with pytest.raises(ValueError, match="evaluate.protocol: 'stylid' is not one of styleid, art-fid, suite"):
        protocols.get("stylid")


def test_evaluate_feeds_lpips_and_the_inception_as_the_protocol_reads_the_files(tmp_path, monkeypatch,
                                                                                 reference_lpips, real_cache):
    """The stage itself, not only :func:`protocols.load`: its ``lpips`` and ``lpips_gray`` columns are the restated
    references' values on the files it read, and the Inception is given each image at the protocol's size."""
    import csv

    from evaluation import artfid
    from pipeline.evaluate import evaluate
    from safin.io.files import sha256_file

    from .test_artfid import _stylized_folder, write_art_inception_stand_in

    stylized = _stylized_folder(tmp_path, n=2)
    net = write_art_inception_stand_in(tmp_path / "art_inception.pth")
    monkeypatch.setenv("SAFIN_OFFLINE", "1")
    seen = []
    real = artfid.inception_features
    monkeypatch.setattr(artfid, "inception_features", lambda model, image: seen.append(tuple(image.shape)) or real(model, image))
    out = {}
    for name in ("styleid", "art-fid"):
        seen.clear()
        evaluate({"evaluate": {"out": str(tmp_path / name), "bootstrap": 20, "seed": 0, "protocol": name,
                               "artfid": {"weights": str(net), "sha256": sha256_file(net)}},  # pinned: nothing
                                                                                           # recorded in the cache
                  "stylize": {"out": str(stylized), "methods": ["adain"]}})
        with open(tmp_path / name / "per_pair.csv") as f:
            out[name] = list(csv.DictReader(f))
        assert set(seen) == {(3, 512, 512) if name == "styleid" else (3, 80, 80)}
    for i, row in enumerate(out["styleid"]):
        files = stylized / f"adain/{i:02d}.png", stylized / f"inputs/{i:02d}_content.png"
        for column, gray in (("lpips", False), ("lpips_gray", True)):
            want = content_distance_reference(reference_lpips, *files, resize=True, gray=gray)
            assert float(row[column]) == pytest.approx(want, rel=1e-5)  # per_pair.csv keeps 6 digits
        want = content_distance_reference(reference_lpips, *files, resize=False, gray=False)
        assert float(out["art-fid"][i]["lpips"]) == pytest.approx(want, rel=1e-5)
        assert "lpips_gray" not in out["art-fid"][i]
