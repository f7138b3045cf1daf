"""Writing and checking files: the one atomic-write helper and the one file checksum.

Every file this project writes that a later step reads (weights, checkpoints, images, extracted
archive members, cache entries) goes through :func:`atomic_path`: it is written under a hidden
temporary name in the destination folder, flushed to disk, and renamed over the destination in one
step, so a reader sees either the old file or the complete new one, never half of it — whatever
kills the writer (SIGKILL, a full disk, a power cut). Standard library only: ``survey`` may use it
without torch.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1 << 20


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block ends without an exception, the file
    written there replaces ``path`` atomically (after an ``fsync`` unless ``fsync=False``). On any
    exception the temporary file is removed and ``path`` is left as it was.

    The temporary name is hidden (leading dot) and keeps ``path``'s suffix, so format-by-extension
    writers (PIL) work and globs such as ``ckpt_*.pt`` never see a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def sha256_file(path: str | os.PathLike, chunk: int = CHUNK) -> str:
    """Hex sha256 of a file's bytes, read in ``chunk``-sized blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
