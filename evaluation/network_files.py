"""Where a reference metric's network file comes from, checked: the one rule for the art Inception (ArtFID) and
torchvision's VGG-19 (CFSD), so both behave alike.

A file the user names (``evaluate.<metric>.weights``), else the cached download, else the canonical URL (resumable;
``SAFIN_URL_MIRROR`` redirects it, ``SAFIN_OFFLINE=1`` refuses it). Every file is first loaded as the network it
must be (a wrong file is refused with one line naming it), then checked against ``evaluate.<metric>.sha256`` (a
prefix is enough), else against the sha256 recorded on first use. A torchvision-style file name
(``vgg19-dcbb9e9d.pth``) carries the first hex digits of the file's sha256: those are checked too, as
``torch.hub`` does. A bad download is deleted, so the next run fetches it again.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NetworkFile:
    """One network file a metric needs."""
    url: str                               # the canonical download
    section: str                           # its params section, e.g. "evaluate.artfid"
    record_key: str                        # its key in the cache's recorded_sha256.json
    cache_path: Callable[[], Path]         # where the download is kept
    check: Callable[[Path], object]        # loads it as the network; raises ``error`` when it is not
    error: type[Exception]

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


#: torchvision's naming rule: NAME-<first hex digits of the file's sha256>.pth
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.(?:pth|pt)$")


def name_prefix(path: Path | str) -> str | None:
    """The sha256 prefix a torchvision-style file name carries (``vgg19-dcbb9e9d.pth`` -> ``dcbb9e9d``), or None."""
    m = HASH_IN_NAME.search(Path(path).name)
    return m.group(1) if m else None


def layout_mismatch(got: dict, want: dict, noun: str = "tensors", total: int | None = None) -> str | None:
    """How a checkpoint's tensors (name -> shape) differ from the network's (``want``): "N of M tensors missing (e.g.
    …), K of the wrong shape (e.g. …), U unknown (e.g. …)", or None when every tensor is there with its shape and
    nothing else is. ``total``: the M to print (default ``len(want)``)."""
    missing = [k for k in want if k not in got]
    wrong = [k for k in want if k in got and tuple(got[k]) != tuple(want[k])]
    unknown = [k for k in got if k not in want]
    if not (missing or wrong or unknown):
        return None

    def eg(keys):
        return f" (e.g. {keys[0]})" if keys else ""
    return (f"{len(missing)} of {len(want) if total is None else total} {noun} missing{eg(missing)}, "
            f"{len(wrong)} of the wrong shape{eg(wrong)}, {len(unknown)} unknown{eg(unknown)}")


def _stem(name: Path | str) -> str:
    """``vgg19-dcbb9e9d.pth`` -> ``vgg19``: the part before the hash (only a file named as the canonical one, with
    some hash, is held to the hash its name carries; ``ckpt-20240101.pth`` is not)."""
    return HASH_IN_NAME.sub("", Path(name).name)


def weights_file(spec: dict, net: NetworkFile) -> tuple[Path, dict]:
    """The file to use, checked, and where it came from (``{"file", "sha256", "checksum", "from"}``). Raises
    ``net.error`` with one line saying why none is usable."""
    from safin.io.download import DownloadError, download

    pinned = (spec.get("sha256") or "").lower() or None
    local = spec.get("weights")
    if local:
        path = Path(str(local)).expanduser()
        if not path.is_file():
            raise net.error(f"{path}: no such file ({net.section}.weights)")
        net.check(path)  # first: never record the checksum of a file that is not the network
        return path, {"file": str(path), **_checksum(path, pinned, net), "from": f"your file ({net.section}.weights)"}
    path = net.cache_path()
    source = f"cache ({net.url})"
    if not path.exists():
        if not spec.get("download", True):
            raise net.error(f"{path}: not downloaded, and {net.section}.download is false; set {net.section}.weights "
                            f"to a copy of {net.url}")
        if os.environ.get("SAFIN_OFFLINE") == "1":
            raise net.error(f"SAFIN_OFFLINE=1 and no {net.filename} at hand: download {net.url} and set "
                            f"{net.section}.weights to it")
        try:
            download(net.url, path)
        except DownloadError as e:
            raise net.error(f"{e}; download it by hand and set {net.section}.weights") from e  # e names the URL
        source = net.url
    try:
        net.check(path)
        checked = _checksum(path, pinned, net)
    except net.error:
        path.unlink(missing_ok=True)  # never reused: the next run downloads it again
        raise
    return path, {"file": str(path), **checked, "from": source}


def _checksum(path: Path, pinned: str | None, net: NetworkFile) -> dict:
    from safin.io.files import sha256_file
    from safin.io.weights import check_recorded

    prefix = name_prefix(path) if _stem(path) == _stem(net.filename) and name_prefix(net.filename) else None
    got = sha256_file(path)  # once: a 548 MB file takes seconds to hash
    if prefix is not None and not got.startswith(prefix):
        raise net.error(f"{path}: sha256 {got} does not start with {prefix}, as its file name says it must; "
                        f"not the file it should be (download {net.url} again)")
    return check_recorded(path, net.record_key, pinned, error=net.error, digest=got, url=net.url)
