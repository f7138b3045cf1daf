"""The authors' released weights (the ``pretrained`` profile): where each method's files are, and getting
them checked.

A method's files are looked for, in order, in the user's folder for it (files downloaded by hand: Google
Drive and Dropbox put confirm pages in front of large files) under the names users really have (the
release's name or an alias: ``decoder.pth.tar``/``decoder.pth``, ``vgg_normalised.pth``/``vgg_normalized.pth``),
also in its ``models/`` subfolder and inside an archive left there as downloaded; then in the cache
(``$SAFIN_CACHE/releases/METHOD/``); then at the canonical source (resumable,
:func:`safin.io.download.download`; ``SAFIN_URL_MIRROR`` redirects): a direct URL, an archive (Google
Drive's, behind its confirm page), a GitHub release's archive found through GitHub's API, or a Yandex.Disk
share link resolved through Yandex's public API. None of the checksums is known here (our machines cannot
reach these hosts), so each file's sha256 is recorded on first use (``$SAFIN_CACHE/recorded_sha256.json``,
the table the weight registry keeps) — *after* the method has loaded it (:func:`record_loaded`) and, where the
authors committed outputs, ``verify-release`` passed on it (``pipeline.pretrained``), so a wrong file dropped in
by mistake is never recorded as the right one — and checked from then on; a pinned one in
:data:`RELEASES` wins. An HTML page saved under a weight file's name, an empty file or a checksum that moved
is refused with one line naming the file.

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
    name: str                     # the file name the release gives it
    url: str | None = None        # the canonical direct download (None: inside the release's archive)
    sha256: str | None = None     # pinned where known; otherwise recorded on first use
    aliases: tuple[str, ...] = () # other names a hand download really has (a README's spelling, a browser's)
    yandex: str | None = None     # a Yandex.Disk public share page, turned into a download by Yandex's public API

    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class Release:
    method: str
    what: str                     # whose release, for the report
    page: str                     # where a person downloads the files by hand
    files: tuple[ReleaseFile, ...]
    archive_url: str | None = None   # one archive holding every file without a url of its own (found by base name, any folder)
    archive_name: str = "release.zip"
    github_latest: str | None = None  # "owner/repo": the archive attached to its latest GitHub release (tried first)
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: folders of a user's folder the files may be in, besides itself and ``models/`` (the layout the authors'
    #: README leaves after unpacking, e.g. AdaAttN's ``checkpoints/AdaAttN/``)
    subfolders: tuple[str, ...] = ()

    def load_order(self) -> list[str]:
        """The files in the order the method's ``load_reference`` takes them (the encoder last)."""
        return [f.name for f in self.files]


_ADAIN = "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/"
_DRIVE = "https://drive.google.com/uc?export=download&id="
GITHUB_API = "https://api.github.com/repos/{repo}/releases/latest"
YANDEX_API = "https://cloud-api.yandex.net/v1/disk/public/resources/download?public_key={key}"

RELEASES: dict[str, Release] = {r.method: r for r in (
    Release("adain", "pytorch-AdaIN (naoto0804), release v0.0.0",
            "https://github.com/naoto0804/pytorch-AdaIN/releases/tag/v0.0.0",
            (ReleaseFile("decoder.pth", _ADAIN + "decoder.pth"),
             ReleaseFile("vgg_normalised.pth", _ADAIN + "vgg_normalised.pth", aliases=("vgg_normalized.pth",)))),
    # SANET's README: three Yandex.Disk share pages, "or ... the latest release. It contains all weights, codes
    # and examples" (a bundle attached to the GitHub release, not three named assets): the bundle first
    Release("sanet", "SANET (GlebSBrykin), iteration 500000",
            "https://github.com/GlebSBrykin/SANET (README: Yandex.Disk links, or the latest GitHub release's bundle)",
            (ReleaseFile("decoder_iter_500000.pth", yandex="https://yadi.sk/d/xsZ7j6FhK1dmfQ"),
             ReleaseFile("transformer_iter_500000.pth", yandex="https://yadi.sk/d/GhQe3g_iRzLKMQ"),
             ReleaseFile("vgg_normalised.pth", yandex="https://yadi.sk/d/7IrysY8q8dtneQ",
                         aliases=("vgg_normalized.pth",))),
            github_latest="GlebSBrykin/SANET"),
    # SAFIN's README: Dropbox links that save decoder.pth.tar (a torch file despite the name) and
    # vgg_normalised.pth, shown as "vgg_normalized.pth"; its test.py defaults to models/decoder.pth
    Release("safin", "SAFIN (Aaditya-Singh), the official README's models",
            "https://github.com/Aaditya-Singh/SAFIN (README: Dropbox links)",
            (ReleaseFile("decoder.pth.tar", "https://www.dropbox.com/s/xveyz1yktk8s9l5/decoder.pth.tar?dl=1",
                         aliases=("decoder.pth",)),
             ReleaseFile("vgg_normalised.pth", "https://www.dropbox.com/s/2elilhldqtqcumr/vgg_normalised.pth?dl=1",
                         aliases=("vgg_normalized.pth",)))),
    Release("wct", "UniversalStyleTransfer (Li et al.) Torch7 models, as PytorchWCT uses them",
            "https://github.com/sunshineatnoon/PytorchWCT (README: Google Drive archive of models/)",
            tuple(ReleaseFile(f"{kind}_conv{k}_1.t7") for kind in ("feature_invertor", "vgg_normalised")
                  for k in range(1, 6)),
            archive_url="https://drive.google.com/uc?export=download&id=1M5KBPfqrIUZqrBZf78CIxLrMUT4lD4t9",
            archive_name="models.zip",
            notes=("Google Drive answers a large file with a confirm page first; it is followed",)),
    # AdaAttN's README: AdaAttN_model.zip (unzipped from the repository root: checkpoints/AdaAttN/latest_net_*.pth, as
    # test_adaattn.sh's --name AdaAttN reads them) and vgg_normalised.pth, each a Google Drive link
    Release("adaattn", "AdaAttN (Huage001), the README's AdaAttN_model.zip",
            "https://github.com/Huage001/AdaAttN (README: Google Drive links)",
            (ReleaseFile("latest_net_decoder.pth"), ReleaseFile("latest_net_transformer.pth"),
             ReleaseFile("latest_net_adaattn_3.pth"),
             ReleaseFile("vgg_normalised.pth", _DRIVE + "1BinnwM5AmIcVubr16tPTqxMjUCE8iu5M",
                         aliases=("vgg_normalized.pth",))),
            archive_url=_DRIVE + "1XvpD1eI4JeCBIaW5uwMT6ojF_qlzM_lo", archive_name="AdaAttN_model.zip",
            subfolders=("checkpoints", "AdaAttN", "checkpoints/AdaAttN"),
            notes=("Google Drive answers a large file with a confirm page first; it is followed",)),
    # StyTR-2's README: four Google Drive links (vgg-model, vit_embedding, decoder, Transformer_module), to be put in
    # ./experiments/ under the names its test.py reads; the VGG is the file AdaAttN's README links too
    Release("stytr2", "StyTr² (diyiiyiii/StyTR-2), the README's four files, iteration 160000",
            "https://github.com/diyiiyiii/StyTR-2 (README: Google Drive links)",
            (ReleaseFile("decoder_iter_160000.pth", _DRIVE + "1fIIVMTA_tPuaAAFtqizr6sd1XV7CX6F9"),
             ReleaseFile("transformer_iter_160000.pth", _DRIVE + "1dnobsaLeE889T_LncCkAA2RkqzwsfHYy"),
             ReleaseFile("embedding_iter_160000.pth", _DRIVE + "1C3xzTOWx8dUXXybxZwmjijZN8SrC3e4B"),
             ReleaseFile("vgg_normalised.pth", _DRIVE + "1BinnwM5AmIcVubr16tPTqxMjUCE8iu5M",
                         aliases=("vgg_normalized.pth",))),
            subfolders=("experiments",),
            notes=("Google Drive answers a large file with a confirm page first; it is followed",)),
)}

#: what an archive of a release can be (what the standard library unpacks)
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


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


def _download_past_confirm(url: str, dest: Path, rel: Release) -> Path:
    """``url`` downloaded to ``dest``, through Google Drive's confirm page for a file it cannot virus-scan."""
    got = download(url, dest)
    if _html(got):
        link = confirm_link(got, url)
        got.unlink()
        if link is None:
            raise ReleaseError(f"{url}: answered an HTML page with no download link; download {dest.name} "
                               f"by hand from {rel.page}")
        got = download(link, dest)
        if _html(got):
            got.unlink()
            raise ReleaseError(f"{link}: answered an HTML page again; download {dest.name} by hand "
                               f"from {rel.page}")
    return got


def _download_archive(rel: Release, folder: Path) -> Path:
    archive = folder / rel.archive_name
    if archive.exists() and not _html(archive):
        return archive
    archive.unlink(missing_ok=True)
    return _download_past_confirm(str(rel.archive_url), archive, rel)


def _extract(archive: Path, wanted: dict[str, str], dest: Path) -> dict[str, Path]:
    """Extract the members whose base name is a key of ``wanted`` (any folder inside) to ``dest`` under the
    release's name ``wanted[base]``; returns release name -> path."""
    found: dict[str, Path] = {}

    def take(base: str, src) -> None:
        name = wanted[base]
        with atomic_path(dest / name) as tmp, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
        found[name] = dest / name

    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    base = Path(info.filename).name
                    if base in wanted and not info.is_dir() and wanted[base] not in found:
                        with z.open(info) as src:
                            take(base, src)
        else:
            with tarfile.open(archive) as t:
                for info in t.getmembers():
                    base = Path(info.name).name
                    if base in wanted and info.isfile() and wanted[base] not in found:
                        src = t.extractfile(info)
                        assert src is not None
                        take(base, src)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        raise ReleaseError(f"{archive}: not a readable zip or tar archive ({e}); delete it to download again") from e
    return found


def _wanted(files) -> dict[str, str]:
    """Every accepted name of ``files`` -> the release's name."""
    return {n: f.name for f in files for n in f.names()}


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _from_your_folder(rel: Release, folder: Path, cache: Path) -> dict[str, dict]:
    """The files in the user's folder: under any accepted name, in it or its ``models/``, or inside an archive
    left there as downloaded (unpacked into the cache; the folder is never written)."""
    out: dict[str, dict] = {}
    for f in rel.files:
        for sub in (folder, folder / "models", *(folder / d for d in rel.subfolders)):
            hit = next((sub / n for n in f.names() if (sub / n).is_file()), None)
            if hit is not None:
                out[f.name] = {"path": hit, "from": f"your folder {folder}"}
                break
    todo = [f for f in rel.files if f.name not in out]
    if todo and folder.is_dir():
        for archive in sorted(p for p in folder.iterdir() if _is_archive(p)):
            got = _extract(archive, _wanted(todo), cache)
            for name, path in got.items():
                out[name] = {"path": path, "from": f"your archive {archive}"}
            todo = [f for f in todo if f.name not in out]
            if not todo:
                break
    return out


def files_in_folder(method: str, folder: str | Path, root: Path | None = None) -> list[Path]:
    """``method``'s release files found in the user's ``folder`` (``safin stylize --reference FOLDER``): under any
    accepted name, in the folder, its ``models/`` or the release's own layout (:attr:`Release.subfolders`), or inside
    an archive left there (unpacked into the cache); in :meth:`Release.load_order`. :class:`ReleaseError` naming
    what is missing and where it goes."""
    rel, folder = release(method), Path(folder)
    if not folder.is_dir():
        raise ReleaseError(f"{folder}: not a folder")
    cache = cache_folder(method, root)
    cache.mkdir(parents=True, exist_ok=True)
    found = _from_your_folder(rel, folder, cache)
    missing = [f.name for f in rel.files if f.name not in found]
    if missing:
        raise ReleaseError(f"{folder}: no {', '.join(missing)} in it; {where_to_put(rel, folder, cache, missing)}")
    for name in rel.load_order():
        check_bytes(found[name]["path"], rel)
    return [found[n]["path"] for n in rel.load_order()]


def where_to_put(rel: Release, folder: Path | None, cache: Path, names: list[str] | None = None) -> str:
    """One phrase: which files (and accepted names) go where, and the archive that may go there instead."""
    files = [f for f in rel.files if names is None or f.name in names]
    listed = ", ".join(f.name + (f" (or {' / '.join(f.aliases)})" if f.aliases else "") for f in files)
    archive = (f", or the archive {rel.archive_name} as downloaded," if rel.archive_url else
               ", or the release's archive as downloaded," if rel.github_latest else "")
    return f"put {listed}{archive} in {folder or cache}/ (from {rel.page})"


def _github_latest_archive(rel: Release, cache: Path, todo) -> dict[str, Path]:
    """The files from the archive attached to ``rel.github_latest``'s latest GitHub release (GitHub's API names
    it), or from assets named as the files; {} with a log line when the release has neither."""
    from safin.io.download import fetch_json

    api = GITHUB_API.format(repo=rel.github_latest)
    info = fetch_json(api)
    assets = [a for a in (info.get("assets") or []) if isinstance(a, dict) and a.get("browser_download_url")]
    wanted = _wanted(todo)
    got: dict[str, Path] = {}
    for a in assets:  # the files themselves, when the release attaches them
        if a.get("name") in wanted and wanted[a["name"]] not in got:
            got[wanted[a["name"]]] = download(a["browser_download_url"], cache / wanted[a["name"]])
    for a in assets:
        if len(got) == len(todo):
            break
        name = str(a.get("name", ""))
        if name.lower().endswith(ARCHIVE_SUFFIXES):
            archive = download(a["browser_download_url"], cache / Path(name).name)
            got.update(_extract(archive, _wanted([f for f in todo if f.name not in got]), cache))
        elif name.lower().endswith((".rar", ".7z")):
            log.warning("%s: the latest release's %s is a %s archive, which this suite does not unpack; unpack it "
                        "by hand into your folder", api, name, name.rsplit(".", 1)[1])
    if len(got) < len(todo):
        log.warning("%s: the latest release (%s) holds %d of the %d files; the rest from their own links", api,
                    info.get("tag_name", "?"), len(got), len(todo))
    return got


def _yandex(f: ReleaseFile, cache: Path) -> Path:
    """A Yandex.Disk share page's file: the public API answers ``{"href": ...}``, a direct (redirected) link."""
    import urllib.parse

    from safin.io.download import fetch_json

    api = YANDEX_API.format(key=urllib.parse.quote(str(f.yandex), safe=""))
    href = fetch_json(api).get("href")
    if not href:
        raise DownloadError(f"{api}: no download link in Yandex's answer")
    return download(href, cache / f.name)


def fetch_release(method: str, folder: str | Path | None = None, root: Path | None = None) -> dict[str, dict]:
    """Every file of ``method``'s release, checked: ``{name: {"path", "from", "sha256", "checksum"}}`` in
    :meth:`Release.load_order`. ``folder``: the user's own downloads (used first, file by file). A checksum
    not yet recorded is *not* recorded here: call :func:`record_loaded` once the method has loaded the files."""
    from safin.io.weights import check_recorded  # here: training imports this module, not the weight registry

    rel = release(method)
    cache = cache_folder(method, root)
    cache.mkdir(parents=True, exist_ok=True)
    folder = Path(folder) if folder else None
    out: dict[str, dict] = _from_your_folder(rel, folder, cache) if folder else {}
    todo = []
    for f in rel.files:
        if f.name in out:
            continue
        old = next((cache / n for n in f.aliases if (cache / n).exists()), None)
        if old is not None and not (cache / f.name).exists():  # cached under a name of an earlier version
            os.replace(old, cache / f.name)
        if (cache / f.name).exists():
            out[f.name] = {"path": cache / f.name, "from": f"cache ({f.url or f.yandex or rel.archive_url or rel.page})"}
        else:
            todo.append(f)
    if todo and os.environ.get("SAFIN_OFFLINE") == "1":
        raise ReleaseError(f"{method}: {', '.join(f.name for f in todo)} not at hand and SAFIN_OFFLINE=1: "
                           f"{where_to_put(rel, folder, cache, [f.name for f in todo])}; or go online")
    if todo and rel.archive_url and any(f.url is None for f in todo):
        # the archive holds every file without a link of its own (and may hold the others: then they come from it)
        archive = _download_archive(rel, cache)
        got = _extract(archive, _wanted(todo), cache)
        missing = [f.name for f in todo if f.name not in got and f.url is None]
        if missing:
            raise ReleaseError(f"{archive}: lacks {', '.join(missing)}; not {rel.what}'s archive")
        for f in todo:
            if f.name in got:
                out[f.name] = {"path": got[f.name], "from": f"{rel.archive_url} ({rel.archive_name})"}
        todo = [f for f in todo if f.name not in out]
    if todo and rel.github_latest:  # the bundle first; what it lacks from each file's own link
        try:
            for name, path in _github_latest_archive(rel, cache, todo).items():
                out[name] = {"path": path, "from": f"the latest GitHub release of {rel.github_latest}"}
        except (DownloadError, ReleaseError) as e:
            log.warning("%s: the latest release's archive failed (%s); trying each file's own link", method, e)
        todo = [f for f in todo if f.name not in out]
    for f in todo:
        if not (f.url or f.yandex):
            raise ReleaseError(f"{method}: {f.name} has no download URL; {where_to_put(rel, folder, cache, [f.name])}")
        try:
            if f.yandex:
                path = _yandex(f, cache)
            elif "drive.google.com" in str(f.url):  # a large file: Drive's confirm page first
                path = _download_past_confirm(str(f.url), cache / f.name, rel)
            else:
                path = download(str(f.url), cache / f.name)
        except DownloadError as e:
            raise ReleaseError(f"{method}: {f.name}: {e}. Download it by hand: "
                               f"{where_to_put(rel, folder, cache, [f.name])}") from e
        out[f.name] = {"path": path, "from": f.yandex and f"{f.yandex} (Yandex.Disk)" or f.url}
    for f in rel.files:
        entry = out[f.name]
        try:
            check_bytes(entry["path"], rel)
        except ReleaseError:
            if entry["path"].parent == cache:
                entry["path"].unlink(missing_ok=True)  # never reused: the next run downloads it again
            raise
        entry.update(check_recorded(entry["path"], _key(method, f.name), f.sha256, root, error=ReleaseError,
                                    record_new=False))
    return {n: out[n] for n in rel.load_order()}


def _key(method: str, name: str) -> str:
    return f"release/{method}/{name}"


def record_loaded(method: str, files: dict[str, dict], root: Path | None = None) -> dict[str, dict]:
    """Record the checksums :func:`fetch_release` left unrecorded, now that the method has loaded the files
    (call it only after a successful load); updates and returns ``files``."""
    from safin.io.weights import check_recorded

    for name, entry in files.items():
        if entry.pop("pending", False):
            entry.update(check_recorded(Path(entry["path"]), _key(method, name), None, root, error=ReleaseError,
                                        digest=entry["sha256"]))
            entry["checksum"] += ", after the method loaded it"
    return files
