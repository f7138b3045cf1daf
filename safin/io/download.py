"""Getting bytes from elsewhere, safely: resumable HTTP downloads, PyPI source archives, checksums.

Everything here verifies what it fetched before handing it on, and never leaves a half-written file
under its final name: data are written to ``NAME.part`` and renamed once complete and verified.
A ``.part`` left by an interrupted run is resumed with an HTTP ``Range`` request.
"""
from __future__ import annotations

import http.client
import logging
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from safin.io.files import atomic_path, sha256_file

log = logging.getLogger(__name__)

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A source could not deliver the expected bytes."""


class ChecksumError(DownloadError):
    """The bytes arrived but are not the expected ones."""


def verify_file(path: Path, sha256: str | None = None, size: int | None = None) -> None:
    """Raise :class:`ChecksumError` naming ``path`` if its size or sha256 (or sha256 prefix) is wrong."""
    if size is not None and path.stat().st_size != size:
        raise ChecksumError(f"{path}: size {path.stat().st_size} B, expected {size} B")
    if sha256:
        got = sha256_file(path)
        if not got.startswith(sha256.lower()):
            raise ChecksumError(f"{path}: sha256 {got}, expected {sha256}")


def mirrored(url: str) -> str:
    """``url`` through ``$SAFIN_URL_MIRROR`` when it is set: ``https://HOST/PATH?Q`` becomes
    ``MIRROR/HOST/PATH?Q`` (an institute's mirror of the canonical downloads, or a test server on
    127.0.0.1). The canonical URL stays what is recorded and printed."""
    mirror = os.environ.get("SAFIN_URL_MIRROR", "").rstrip("/")
    if not mirror:
        return url
    rest = url.split("://", 1)[-1]
    return f"{mirror}/{rest}"


def _open(url: str, start: int, timeout: float):
    req = urllib.request.Request(mirrored(url), headers={"User-Agent": "safin-repro/0.1"})
    if start:
        req.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(req, timeout=timeout)


def _range_total(content_range: str | None) -> int | None:
    """The full length a ``Content-Range: bytes */LENGTH`` (or ``bytes A-B/LENGTH``) header gives, else None."""
    if not content_range or "/" not in content_range:
        return None
    tail = content_range.rsplit("/", 1)[1].strip()
    return int(tail) if tail.isdigit() else None


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    size: int | None = None,
    retries: int = 5,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest``, resuming a previous partial download, then verify it.

    The partial file is ``dest + '.part'``. A dropped connection is retried (``retries`` times, with
    back-off) from the byte where it stopped, using ``Range``. A server that ignores ``Range`` (answers
    200 instead of 206) makes the download restart from zero, which is still correct. On a checksum
    mismatch the partial file is deleted, so the next attempt starts clean.
    """
    dest = Path(dest)
    if dest.exists():
        verify_file(dest, sha256, size)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        start = part.stat().st_size if part.exists() else 0
        if size is not None and start > size:  # garbage from another file: start over
            part.unlink()
            start = 0
        try:
            if size is not None and start == size:
                break
            with _open(url, start, timeout) as resp:
                status = getattr(resp, "status", 200)
                if start and status != 206:
                    log.info("%s ignored the Range request; restarting from byte 0", url)
                    start = 0
                length = resp.headers.get("Content-Length")
                total = (int(length) + start) if length is not None else size
                mode = "ab" if start else "wb"
                with open(part, mode) as f, tqdm(
                    total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=dest.name, disable=not progress, leave=False,
                ) as bar:
                    while True:
                        block = resp.read(CHUNK)
                        if not block:
                            break
                        f.write(block)
                        bar.update(len(block))
                if total is not None and part.stat().st_size < total:
                    raise ConnectionError(
                        f"connection closed at byte {part.stat().st_size} of {total}")
            break
        except urllib.error.HTTPError as e:
            if e.code == 416 and part.exists():  # range beyond the end: complete, or a stale part of another file
                total = _range_total(e.headers.get("Content-Range"))
                have = part.stat().st_size
                if have == (size if size is not None else total):
                    break  # complete: the server's length (RFC 9110 §15.5.17: "bytes */LENGTH") is what we hold
                log.warning("%s: the partial file %s holds %d bytes but the file has %s; starting again from byte 0",
                            url, part, have, total if total is not None else "an unknown length")
                part.unlink()
                attempt += 1
                if attempt > retries:
                    raise DownloadError(f"{url}: HTTP 416 on every try; cannot resume") from e
                continue
            if 400 <= e.code < 500:
                raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
            err: Exception = e
        except urllib.error.URLError as e:
            if isinstance(e.reason, socket.gaierror):  # unknown host: retrying will not help
                raise DownloadError(f"{url}: cannot resolve host ({e.reason})") from e
            err = e
        except (http.client.HTTPException, ConnectionError, TimeoutError,
                OSError) as e:
            err = e
        attempt += 1
        if attempt > retries:
            kept = (f"; the partial file {part} is kept and the next run resumes it"
                    if part.exists() and part.stat().st_size else "")
            raise DownloadError(f"{url}: gave up after {retries} retries ({err}){kept}") from err
        wait = min(2.0 ** (attempt - 1) * 0.5, 30.0)
        log.warning("%s: %s; resuming from byte %d in %.1f s (retry %d/%d)", url, err,
                    part.stat().st_size if part.exists() else 0, wait, attempt, retries)
        time.sleep(wait)
    try:
        verify_file(part, sha256, size)
    except ChecksumError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def fetch_json(url: str, *, timeout: float = 60.0):
    """The JSON document at ``url`` (through ``$SAFIN_URL_MIRROR``): the small API answers that name where a
    file really is (GitHub's latest release, Yandex.Disk's public download link). One clear error otherwise."""
    import json

    try:
        with _open(url, 0, timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        raise DownloadError(f"{url}: {e}") from e
    try:
        return json.loads(body)
    except ValueError as e:
        raise DownloadError(f"{url}: not a JSON answer ({body[:60]!r}...)") from e


def pip_download_sdist(requirement: str, dest_dir: str | os.PathLike, *, sha256: str | None = None,
                       size: int | None = None) -> Path:
    """Fetch a PyPI *source archive* with pip (``pip download --no-deps --no-binary :all:``).

    This is the offline-capable path: it only needs the package registry, which pip reaches through
    whatever index and proxy configuration the machine has. Returns the archive's path, verified.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = requirement.split("==")[0].replace("-", "_").lower()
    existing = [p for p in dest_dir.glob("*.tar.gz") if p.name.lower().startswith(name + "-")]
    for p in existing:
        try:
            verify_file(p, sha256, size)
            return p
        except ChecksumError as e:
            log.warning("discarding cached archive: %s", e)
            p.unlink()
    with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "--quiet", "-d", tmp, requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise DownloadError(f"pip download {requirement} failed: {proc.stderr.strip()[-2000:]}")
        archives = list(Path(tmp).glob("*.tar.gz")) + list(Path(tmp).glob("*.zip"))
        if len(archives) != 1:
            raise DownloadError(f"pip download {requirement}: expected one archive, got {archives}")
        verify_file(archives[0], sha256, size)
        final = dest_dir / archives[0].name
        os.replace(archives[0], final)
    return final


def extract_member(archive: str | os.PathLike, member: str, dest: str | os.PathLike, *,
                   sha256: str | None = None, size: int | None = None) -> Path:
    """Extract one regular file from a tar archive to ``dest`` atomically, then verify it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        try:
            info = tar.getmember(member)
        except KeyError as e:
            raise DownloadError(f"{archive}: has no member {member!r}") from e
        if not info.isfile():
            raise DownloadError(f"{archive}: member {member!r} is not a regular file")
        src = tar.extractfile(info)
        assert src is not None
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
            verify_file(tmp, sha256, size)
    return dest
