"""The authors' released weights (the ``pretrained`` profile): where each method's files are, and getting
them checked.

A method's files are looked for, in order, in the user's folder for it (files downloaded by hand: Google
Drive and Dropbox put confirm pages in front of large files), in the cache (``$SAFIN_CACHE/releases/
METHOD/``) and at the canonical URL (resumable, :func:`safin.io.download.download`; ``SAFIN_URL_MIRROR``
redirects). None of the checksums is known here (our machines cannot reach these hosts), so each file's
sha256 is recorded on first use (``$SAFIN_CACHE/recorded_sha256.json``, the table the weight registry
keeps) and checked from then on; a pinned one in :data:`RELEASES` wins. An HTML page saved under a
weight file's name, an empty file or a checksum that moved is refused with one line naming the file.

Turning the files into a model is the method's ``load_reference`` (``pipeline/pretrained.py``); this
module only delivers bytes.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from safin.io.download import DownloadError, download
from safin.io.files import atomic_path

log = logging.getLogger(__name__)



class ReleaseError(ValueError):
    """A released file that cannot be had or is not what it should be, with the file and the reason."""


@dataclass(frozen=True)
class ReleaseFile:
    name: str                     # the file name the method's loader expects
    url: str | None = None        # the canonical direct download (None: inside the release's archive)
    sha256: str | None = None     # pinned where known; otherwise recorded on first use


@dataclass(frozen=True)
class Release:
    method: str
    what: str                     # whose release, for the report
    page: str                     # where a person downloads the files by hand
    files: tuple[ReleaseFile, ...]
    archive_url: str | None = None   # one archive holding every file (found by base name, any folder)
    archive_name: str = "release.zip"
    notes: tuple[str, ...] = field(default_factory=tuple)

    def load_order(self) -> list[str]:
        """The files in the order the method's ``load_reference`` takes them (the encoder last)."""
        return [f.name for f in self.files]


_ADAIN = "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/"
_SANET = "https://github.com/GlebSBrykin/SANET/releases/latest/download/"

RELEASES: dict[str, Release] = {r.method: r for r in (
    Release("adain", "pytorch-AdaIN (naoto0804), release v0.0.0",
            "https://github.com/naoto0804/pytorch-AdaIN/releases/tag/v0.0.0",
            (ReleaseFile("decoder.pth", _ADAIN + "decoder.pth"),
             ReleaseFile("vgg_normalised.pth", _ADAIN + "vgg_normalised.pth"))),
    Release("sanet", "SANET (GlebSBrykin), iteration 500000",
            "https://github.com/GlebSBrykin/SANET (README: Yandex.Disk links; the latest GitHub release)",
            (ReleaseFile("decoder_iter_500000.pth", _SANET + "decoder_iter_500000.pth"),
             ReleaseFile("transformer_iter_500000.pth", _SANET + "transformer_iter_500000.pth"),
             ReleaseFile("vgg_normalised.pth", _SANET + "vgg_normalised.pth")),
            notes=("the release's asset names are taken to be the file names; the README's Yandex.Disk share "
                   "pages are not direct downloads: download by hand if the URL fails",)),
    Release("safin", "SAFIN (Aaditya-Singh), the official README's models",
            "https://github.com/Aaditya-Singh/SAFIN (README: Dropbox links)",
            (ReleaseFile("decoder.pth", "https://www.dropbox.com/s/xveyz1yktk8s9l5/decoder.pth.tar?dl=1"),
             ReleaseFile("vgg_normalised.pth", "https://www.dropbox.com/s/2elilhldqtqcumr/vgg_normalised.pth?dl=1")),
            notes=("decoder.pth.tar is saved as decoder.pth (a torch file, not a tar archive)",)),
    Release("wct", "UniversalStyleTransfer (Li et al.) Torch7 models, as PytorchWCT uses them",
            "https://github.com/sunshineatnoon/PytorchWCT (README: Google Drive archive of models/)",
            tuple(ReleaseFile(f"{kind}_conv{k}_1.t7") for kind in ("feature_invertor", "vgg_normalised")
                  for k in range(1, 6)),
            archive_url="https://drive.google.com/uc?export=download&id=1M5KBPfqrIUZqrBZf78CIxLrMUT4lD4t9",
            archive_name="models.zip",
            notes=("Google Drive answers a large file with a confirm page first; it is followed",)),
)}


def release(method: str) -> Release:
    if method not in RELEASES:
        raise ReleaseError(f"{method}: no released weights of the authors are known (releases exist for "
                           f"{', '.join(sorted(RELEASES))}); train it, or leave it out")
    return RELEASES[method]


def cache_folder(method: str, root: Path | None = None) -> Path:
    from safin.io.weights import cache_dir

    return (root or cache_dir()) / "releases" / method


def _html(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<!--"))


def check_bytes(path: Path, rel: Release) -> None:
    """Refuse what cannot be a weight file: missing, empty, or an HTML page saved under its name."""
    if not path.is_file():
        raise ReleaseError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ReleaseError(f"{path}: empty file (an interrupted download?); delete it and fetch again")
    if _html(path):
        raise ReleaseError(f"{path}: an HTML page saved under the file's name (a download or confirm page), "
                           f"not the weights; download {path.name} by hand from {rel.page}")


def confirm_link(page: Path, url: str) -> str | None:
    """The download link of a Google Drive 'cannot scan this file for viruses' page: its form's action
    with its hidden inputs as the query; None if the page has no such form."""
    import html
    import urllib.parse

    text = page.read_text(errors="replace")
    form = re.search(r'<form[^>]*id="download-form"[^>]*action="([^"]+)"[^>]*>(.*?)</form>', text, re.S | re.I)
    if not form:
        link = re.search(r'href="(/uc\?export=download[^"]*confirm=[^"]+)"', text)
        return urllib.parse.urljoin(url, html.unescape(link.group(1))) if link else None
    inputs = re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.group(2), re.I)
    action = html.unescape(form.group(1))
    return action + ("&" if "?" in action else "?") + urllib.parse.urlencode(
        [(n, html.unescape(v)) for n, v in inputs])


def _download_archive(rel: Release, folder: Path) -> Path:
    archive = folder / rel.archive_name
    if archive.exists() and not _html(archive):
        return archive
    archive.unlink(missing_ok=True)
    url = str(rel.archive_url)
    got = download(url, archive)
    if _html(got):  # Google Drive's confirm page for a file it cannot virus-scan
        link = confirm_link(got, url)
        got.unlink()
        if link is None:
            raise ReleaseError(f"{url}: answered an HTML page with no download link; download {rel.archive_name} "
                               f"by hand from {rel.page}")
        got = download(link, archive)
        if _html(got):
            got.unlink()
            raise ReleaseError(f"{link}: answered an HTML page again; download {rel.archive_name} by hand "
                               f"from {rel.page}")
    return got


def _extract(archive: Path, names: set[str], dest: Path) -> dict[str, Path]:
    """Extract the members whose base name is in ``names`` (any folder inside) to ``dest``."""
    found: dict[str, Path] = {}
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    base = Path(info.filename).name
                    if base in names and not info.is_dir() and base not in found:
                        with z.open(info) as src, atomic_path(dest / base) as tmp, open(tmp, "wb") as out:
                            shutil.copyfileobj(src, out)
                        found[base] = dest / base
        else:
            with tarfile.open(archive) as t:
                for info in t.getmembers():
                    base = Path(info.name).name
                    if base in names and info.isfile() and base not in found:
                        src = t.extractfile(info)
                        assert src is not None
                        with atomic_path(dest / base) as tmp, open(tmp, "wb") as out:
                            shutil.copyfileobj(src, out)
                        found[base] = dest / base
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        raise ReleaseError(f"{archive}: not a readable zip or tar archive ({e}); delete it to download again") from e
    return found


def fetch_release(method: str, folder: str | Path | None = None, root: Path | None = None) -> dict[str, dict]:
    """Every file of ``method``'s release, checked: ``{name: {"path", "from", "sha256", "checksum"}}`` in
    :meth:`Release.load_order`. ``folder``: the user's own downloads (used first, file by file)."""
    from safin.io.weights import check_recorded  # here: training imports this module, not the weight registry

    rel = release(method)
    cache = cache_folder(method, root)
    cache.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict] = {}
    todo = []
    for f in rel.files:
        mine = Path(folder) / f.name if folder else None
        if mine is not None and mine.exists():
            out[f.name] = {"path": mine, "from": f"your folder {folder}"}
        elif (cache / f.name).exists():
            out[f.name] = {"path": cache / f.name, "from": f"cache ({f.url or rel.archive_url})"}
        else:
            todo.append(f)
    if todo and os.environ.get("SAFIN_OFFLINE") == "1":
        raise ReleaseError(f"{method}: {', '.join(f.name for f in todo)} not at hand and SAFIN_OFFLINE=1: put the "
                           f"files in {folder or cache}/ (from {rel.page}), or go online")
    if todo and rel.archive_url:
        archive = _download_archive(rel, cache)
        got = _extract(archive, {f.name for f in todo}, cache)
        missing = [f.name for f in todo if f.name not in got]
        if missing:
            raise ReleaseError(f"{archive}: lacks {', '.join(missing)}; not {rel.what}'s archive")
        for f in todo:
            out[f.name] = {"path": got[f.name], "from": f"{rel.archive_url} ({rel.archive_name})"}
    else:
        for f in todo:
            if not f.url:
                raise ReleaseError(f"{method}: {f.name} has no download URL; put it in {folder or cache}")
            try:
                path = download(f.url, cache / f.name)
            except DownloadError as e:
                where = f"{folder}/" if folder else f"{cache}/"
                raise ReleaseError(f"{method}: {f.name}: {e}. Download it by hand from {rel.page} into {where}") from e
            out[f.name] = {"path": path, "from": f.url}
    for f in rel.files:
        entry = out[f.name]
        try:
            check_bytes(entry["path"], rel)
        except ReleaseError:
            if str(entry["from"]).startswith("cache") or entry["path"].parent == cache:
                entry["path"].unlink(missing_ok=True)  # never reused: the next run downloads it again
            raise
        entry.update(check_recorded(entry["path"], f"release/{method}/{f.name}", f.sha256, root, error=ReleaseError))
    return {n: out[n] for n in rel.load_order()}
