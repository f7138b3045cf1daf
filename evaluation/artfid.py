"""ArtFID (Wright & Ommer 2022): ``(1 + content distance) · (1 + FID(stylized set, style set))``.

- FID is computed on the 2048-d pool features of their Inception-v3 fine-tuned on art (``art_inception.pth``),
  which we run as torchvision's ``Inception3`` trunk (the released network is torchvision's with two heads,
  ``fc1``/``fc2`` and ``AuxLogits1``/``AuxLogits2``, that FID does not use). The weights come from a local file the
  user names (``evaluate.artfid.weights``), else the asset cache, else the canonical URL (:data:`CKPT_URL`, asset
  ``art_inception``); their sha256 is pinned by ``evaluate.artfid.sha256`` or recorded on first use. Their loader
  uses ``strict=False`` (a wrong file would silently leave a random network); ours requires every trunk tensor with
  its shape, and refuses the file with one line otherwise.
- Preprocessing: the protocol's (:mod:`evaluation.protocols`): art-fid upstream's ``ToTensor()`` only (RGB in [0, 1],
  no resize, no normalisation), or StyleID's ``Resize(512)`` first; one image at a time (our images differ in size).
- The content distance is the mean LPIPS-alex over (content, stylized) pairs, inputs in [−1, 1]: the ``lpips``
  column of ``per_pair.csv``.
- The plain FID of the N images at hand (FID_N), never the package's default FID∞: its extrapolation over
  ``linspace(5000, N)`` degenerates to the whole set when N < 5000. With N ≪ 2048 the covariances have rank
  < N and FID_N is dominated by its bias (it falls as N grows): compare only numbers of the same N.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from .network_files import layout_mismatch

CKPT_URL = "https://huggingface.co/matthias-wright/art_inception/resolve/main/art_inception.pth"
#: the heads of the released two-head Inception that FID does not use
HEADS = ("fc1.", "fc2.", "fc.", "AuxLogits1.", "AuxLogits2.", "AuxLogits.")
#: the smallest side torchvision's Inception-v3 trunk accepts (its stride-2 stem and pools)
MIN_SIDE = 75


#: said next to every FID-family number (the report, summary.json)
BIAS_NOTE = ("N = {n} images a set: FID_N is dominated by its bias at this N (it falls as N grows; the covariances "
             "of 2048-d features have rank < N), so compare only numbers of the same N and set; published ArtFID uses "
             "50,000 pairs")


class ArtFIDError(ValueError):
    """Weights that are not the art Inception, or images it cannot take: the message names the file."""


def trunk_model() -> torch.nn.Module:
    """torchvision's Inception-v3 without heads: forward returns the 2048-d average-pooled features."""
    from torchvision.models import Inception3

    model = Inception3(num_classes=1000, aux_logits=False, transform_input=False, init_weights=False)
    model.fc = torch.nn.Identity()  # the pool features, as the reference's return_features=True
    return model.eval()


def trunk_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The trunk tensors of an ``art_inception.pth`` (a state dict, optionally under ``state_dict``/``model``, keys
    optionally prefixed ``module.``), checked against the architecture: every tensor present with its shape."""
    path = Path(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, truncated download, HTML page
        raise ArtFIDError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e}); "
                          f"download art_inception.pth again from {CKPT_URL}") from e
    for key in ("state_dict", "model"):
        if isinstance(raw, dict) and isinstance(raw.get(key), dict):
            raw = raw[key]
    if not isinstance(raw, dict):
        raise ArtFIDError(f"{path}: holds a {type(raw).__name__}, not a state dict of the art Inception")
    state = {k.removeprefix("module."): v for k, v in raw.items() if torch.is_tensor(v)}
    want = trunk_model().state_dict()
    trunk = {k: v for k, v in state.items() if not k.startswith(HEADS)}
    for k in want:  # a batch-norm counter older torch versions did not save; it does not change eval outputs
        if k.endswith("num_batches_tracked") and k not in trunk:
            trunk[k] = want[k]
    n_counters = sum(k.endswith("num_batches_tracked") for k in want)
    problem = layout_mismatch({k: v.shape for k, v in trunk.items()}, {k: v.shape for k, v in want.items()},
                              "trunk tensors", total=len(want) - n_counters)
    if problem:
        raise ArtFIDError(f"{path}: not an Inception-v3 checkpoint: {problem}")
    return {k: trunk[k] if k.endswith("num_batches_tracked") else trunk[k].float() for k in want}


@functools.lru_cache(maxsize=1)
def _trunk_of(path: str, mtime_ns: int, size: int) -> dict[str, torch.Tensor]:
    return trunk_state_dict(Path(path))


def _trunk(path: Path) -> dict[str, torch.Tensor]:
    """:func:`trunk_state_dict`, read once per file version (checking the weights, then loading them, reads once)."""
    st = Path(path).stat()
    return _trunk_of(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=2)
def load_model(path: str, device: str = "cpu") -> torch.nn.Module:
    model = trunk_model()
    model.load_state_dict(_trunk(Path(path)), strict=True)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device)


def inception_features(model: torch.nn.Module, image: torch.Tensor) -> np.ndarray:
    """The 2048-d pool features (float64) of one (3, H, W) RGB image in [0, 1], at its own size."""
    if min(image.shape[-2:]) < MIN_SIDE:
        raise ArtFIDError(f"image of {tuple(image.shape[-2:])} px: Inception-v3 needs at least {MIN_SIDE} px a side")
    with torch.inference_mode():
        f = model(image[None].float().to(next(model.parameters()).device))
    return f.double().cpu().numpy()[0]


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """FID of two feature sets (rows = images): ‖μx − μy‖² + tr Σx + tr Σy − 2 tr √(Σx Σy).

    Written here rather than taken from pytorch-fid/art-fid (``scipy.linalg.sqrtm`` of a 2048² product: seconds per
    call, and singular for N < 2048, which they patch with ε·I) because the bootstrap calls it thousands of times.
    With centred data Xc, Yc (N × d), Σx Σy = XcᵀXc YcᵀYc / ((n−1)(m−1)) has the non-zero eigenvalues of BBᵀ/((n−1)(m−1)),
    B = Xc Ycᵀ, so tr √(Σx Σy) is the sum of B's singular values over √((n−1)(m−1)): exact, and an n × m SVD.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2 or len(y) < 2:
        raise ArtFIDError(f"FID needs at least 2 images per set (got {len(x)} and {len(y)})")
    xc, yc = x - x.mean(0), y - y.mean(0)
    n, m = len(x) - 1, len(y) - 1
    tr_cross = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / np.sqrt(n * m)
    mean_term = float(np.sum((x.mean(0) - y.mean(0)) ** 2))
    return float(mean_term + (xc ** 2).sum() / n + (yc ** 2).sum() / m - 2 * tr_cross)


def art_fid(lpips_values, stylized: np.ndarray, styles: np.ndarray, *, n_resamples: int = 2000,
            seed: int = 0) -> dict:
    """ArtFID, FID_N and the content distance of one method, each with a percentile bootstrap 95% CI over the
    evaluation pairs (a pair's stylized image, style image and LPIPS resampled together). ``stylized[i]``,
    ``styles[i]``: Inception features of pair i's output and style. A CI of a set statistic this biased at small N
    says how much the pairs drawn move it, not how far it is from the large-N value."""
    from scipy.stats import bootstrap

    lp = np.asarray(lpips_values, dtype=np.float64)
    n = len(lp)
    if not (len(stylized) == len(styles) == n):
        raise ArtFIDError(f"ArtFID: {len(stylized)} stylized, {len(styles)} style features, {n} LPIPS values")

    def stats(idx):
        idx = np.asarray(idx, dtype=int)
        fid = frechet_distance(stylized[idx], styles[idx])
        cd = float(lp[idx].mean())
        return np.array([(1 + cd) * (1 + fid), fid, cd])

    point = stats(np.arange(n))
    res = bootstrap((np.arange(n),), stats, n_resamples=n_resamples, method="percentile", vectorized=False,
                    random_state=np.random.default_rng(seed))
    lo, hi = res.confidence_interval.low, res.confidence_interval.high
    out = {}
    for k, name in enumerate(("artfid", "fid", "content_dist")):
        out[name] = {"mean": round(float(point[k]), 6), "ci95": [round(float(lo[k]), 6), round(float(hi[k]), 6)],
                     "n": n}
    return out


RECORD_KEY = "artfid/art_inception.pth"  # one key for a local copy and the download: the same file


def cached_path() -> Path:
    from safin.io.weights import cache_dir

    return cache_dir() / "artfid" / "art_inception.pth"


def network_file():
    """The art Inception as a :class:`~evaluation.network_files.NetworkFile` (where it comes from, how it is checked)."""
    from .network_files import NetworkFile

    return NetworkFile(url=CKPT_URL, section="evaluate.artfid", record_key=RECORD_KEY, cache_path=cached_path,
                       check=_trunk, error=ArtFIDError)


def weights_file(spec: dict) -> tuple[Path, dict]:
    """The art Inception weights to use, checked, and where they came from: ``spec["weights"]`` (a file the user
    names), else the cached download, else :data:`CKPT_URL` (:func:`evaluation.network_files.weights_file`). Raises
    :class:`ArtFIDError` with one line saying why none is usable."""
    from .network_files import weights_file as resolve

    return resolve(spec, network_file())
