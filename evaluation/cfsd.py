"""CFSD, the content feature structural distance of StyleID (Chung et al., CVPR 2024), as its evaluation code
computes it (jiwoogit/StyleID at d4ea655, ``evaluation/image_metrics.py``, class ``PatchSimi``, called by
``eval_artfid.py``'s ``compute_patch_simi``); the facts, with their lines, are in ``docs/evaluation.md``:

- the image at its own size (``ToTensor()`` only), RGB in [0, 1], normalised with the ImageNet mean and std;
- torchvision's ImageNet VGG-19 ``features`` up to index 11 (relu3_1): ``vgg19-dcbb9e9d.pth``;
- the (C, H, W) features as HW rows of C values divided by C, the patch self-similarity of each row a softmax over
  positions of those rows' products: logits F·Fᵀ / C²;
- ``F.kl_div(log_softmax(stylized), softmax(content), reduction='batchmean')`` on one image: KL(content ‖
  stylized) of every row, **summed** over the HW rows; CFSD of a method is its mean over the pairs.

Ours differs only where it cannot change the number beyond rounding: the HW × HW maps are built ``block`` rows at
a time (a 512² image has 16,384 positions: 1 GiB a map in float32), the softmax and the KL in float64 (the
reference: float32 on its GPU), and the positions in row-major order (theirs transposes H and W first: the sum
over all rows of a map permuted alike on both sides is the same).

Offline, where torchvision's file cannot be had, CFSD runs on this suite's offline VGG-19 (Oxford's ImageNet
weights via Keras, caffe preprocessing; its features divided by 255 · 0.226, the ratio of the two input scales, so
the softmax is not one-hot): a different network, so the number is **not comparable with published CFSD**;
:func:`load_network` says so in the identity it returns, and the report repeats it wherever the number appears.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

#: torchvision's VGG-19 ImageNet weights (``torchvision.models.VGG19_Weights.IMAGENET1K_V1``); the name carries the
#: first 8 hex digits of the file's sha256 (checked, :mod:`evaluation.network_files`)
VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
#: ``features`` up to and including this index: relu3_1 (StyleID's ``self.layers = {"11": "conv3"}``)
RELU3_1 = 11
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RECORD_KEY = "cfsd/vgg19-dcbb9e9d.pth"
NOT_COMPARABLE = "not comparable with published CFSD"


class CFSDError(ValueError):
    """A file that is not torchvision's VGG-19: the message names the file."""


def cached_path() -> Path:
    from safin.io.weights import cache_dir

    return cache_dir() / "cfsd" / VGG19_URL.rsplit("/", 1)[-1]


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor of torchvision's ``vgg19()`` with its shape (built on the meta device: nothing allocated)."""
    from torchvision.models import vgg19

    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in vgg19().state_dict().items()}


def trunk_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The ``features.*`` tensors of a torchvision VGG-19 file, checked strictly: every tensor of ``vgg19()``
    present with its shape (the classifier too, when the file has it: the released file does), nothing else."""
    path = Path(path)
    try:
        try:  # memory-mapped: only the 5 convolutions up to relu3_1 of its 548 MB are read
            raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):  # the legacy (pre-zip) serialisation cannot be mapped: read it whole
                raise
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, truncated download, HTML page
        raise CFSDError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e}); download "
                        f"{VGG19_URL} again") from e
    if not isinstance(raw, dict):
        raise CFSDError(f"{path}: holds a {type(raw).__name__}, not a state dict of torchvision's VGG-19")
    from .network_files import layout_mismatch

    problem = layout_mismatch({k: v.shape for k, v in raw.items() if torch.is_tensor(v)}, _expected_shapes())
    if problem or not all(torch.is_tensor(v) for v in raw.values()):
        raise CFSDError(f"{path}: not torchvision's VGG-19: {problem or 'entries that are not tensors'}")
    return {k: v.float().clone() for k, v in raw.items() if k.startswith("features.")}


def network_file():
    from .network_files import NetworkFile

    return NetworkFile(url=VGG19_URL, section="evaluate.cfsd", record_key=RECORD_KEY, cache_path=cached_path,
                       check=trunk_state_dict, error=CFSDError)


class TorchvisionRelu31(torch.nn.Module):
    """StyleID's feature extractor: ImageNet normalisation, then torchvision's ``vgg19().features[:12]``."""

    def __init__(self, state: dict[str, torch.Tensor]):
        super().__init__()
        from torchvision.models import vgg19

        with torch.device("meta"):
            trunk = vgg19().features[:RELU3_1 + 1]
        trunk = trunk.to_empty(device="cpu")
        trunk.load_state_dict({k.removeprefix("features."): v for k, v in state.items()
                               if int(k.split(".")[1]) <= RELU3_1}, strict=True)
        self.trunk = trunk
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk((x - self.mean) / self.std)


#: the offline network takes caffe's input scale (pixels 0..255 minus the mean), torchvision's (x − mean) / std with
#: std ≈ 0.226: its features are divided by this so that the softmax's temperature is in torchvision's regime (raw,
#: the logits are ~3000x larger and every row one-hot). An approximation that keeps the offline number usable
#: within this suite; it does not make it comparable with published CFSD, and it is never presented as such
CAFFE_TO_TORCHVISION_SCALE = 255 * 0.226


class OfflineRelu31(torch.nn.Module):
    """This suite's offline VGG-19 (asset ``vgg19``: Oxford's weights via Keras, caffe preprocessing in its first
    layer, RGB in [0, 1]) up to relu3_1, its features divided by :data:`CAFFE_TO_TORCHVISION_SCALE`: the fallback,
    **not comparable with published CFSD**."""

    def __init__(self):
        super().__init__()
        from safin.blocks.encoder import VGG19Encoder
        from safin.io.weights import load_encoder_weights

        self.encoder = load_encoder_weights(VGG19Encoder(last="relu3_1"), "plain")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x, ["relu3_1"])["relu3_1"] / CAFFE_TO_TORCHVISION_SCALE


@functools.lru_cache(maxsize=2)
def _network(key: tuple) -> torch.nn.Module:
    kind, path = key[0], key[1]
    model = TorchvisionRelu31(trunk_state_dict(Path(path))) if kind == "torchvision" else OfflineRelu31()
    for p in model.parameters():
        p.requires_grad_(False)
    # on the GPU when there is one: the HW × HW maps of a 512 px image are 7 s a pair on two CPU cores
    # (docs/performance.md); the features and the maps then stay there
    return model.eval().to("cuda" if torch.cuda.is_available() else "cpu")


def load_network(spec: dict | None = None) -> tuple[torch.nn.Module, dict]:
    """(relu3_1 extractor, its identity) for ``evaluate.cfsd`` = ``spec``: torchvision's VGG-19 (a file the user
    names, the cached download, or :data:`VGG19_URL`), else the offline fallback. The identity says which network,
    where its file came from, whether the numbers are ``comparable`` with published CFSD, and why not."""
    spec = dict(spec or {})
    try:
        from .network_files import weights_file

        path, origin = weights_file(spec, network_file())
    except (CFSDError, OSError) as err:
        ident = {"network": "offline VGG-19 (Oxford's ImageNet weights via Keras, caffe preprocessing, features / "
                            "(255 x 0.226); asset vgg19)",
                 "comparable": False,
                 "note": f"{NOT_COMPARABLE}: torchvision's VGG-19 ({VGG19_URL}) could not be used: {err}"}
        return _network(("offline", "")), ident
    st = path.stat()
    ident = {"network": "torchvision VGG-19, ImageNet (vgg19-dcbb9e9d.pth), features[:12] = relu3_1",
             "comparable": True, **origin}
    return _network(("torchvision", str(path), st.st_mtime_ns, st.st_size)), ident


def features(model: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """The relu3_1 features (C, H, W), float32, of one (3, H, W) RGB image in [0, 1] at its own size."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        return model(image[None].float().to(device))[0]


def self_similarity(feats: torch.Tensor, log: bool = False, rows: slice = slice(None)) -> torch.Tensor:
    """(C, H, W) features -> the (HW, HW) patch self-similarity (or the ``rows`` of it): each row a softmax over
    positions of (F/C)·(F/C)ᵀ, F the (HW, C) features (the products in the features' precision, the softmax in
    float64)."""
    c = feats.shape[0]
    f = feats.flatten(1).t() / c  # (positions, C), StyleID's ``reshape(b, h*w, c).div(c)``
    logits = (f[rows] @ f.t()).double()
    return torch.log_softmax(logits, -1) if log else torch.softmax(logits, -1)


def cfsd_from_features(content: torch.Tensor, stylized: torch.Tensor, block: int = 1024) -> float:
    """Σ over the HW rows of KL(p_content,row ‖ q_stylized,row) (``F.kl_div(log q, p, reduction="batchmean")`` on
    one image), ``block`` rows at a time."""
    if content.shape != stylized.shape:
        raise ValueError(f"CFSD: content features {tuple(content.shape)} and stylized {tuple(stylized.shape)} differ "
                         f"(the stylized image must have its content's size)")
    n = content.shape[1] * content.shape[2]
    total = 0.0
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        p = self_similarity(content, rows=rows)
        log_q = self_similarity(stylized, log=True, rows=rows)
        total += float(torch.nn.functional.kl_div(log_q, p, reduction="sum"))
    return total


def cfsd(model: torch.nn.Module, stylized: torch.Tensor, content: torch.Tensor,
         content_features: torch.Tensor | None = None) -> float:
    """CFSD of one (3, H, W) stylized image against its content (``content_features``: :func:`features` of it)."""
    fc = content_features if content_features is not None else features(model, content)
    return cfsd_from_features(fc, features(model, stylized))
