"""safin.io.files: the one atomic write and the one file checksum."""
import hashlib

import pytest

from safin.io.files import atomic_path, atomic_write_text, sha256_file


def test_atomic_path_replaces_the_file_only_when_the_block_succeeds(tmp_path):
    dest = tmp_path / "sub" / "ckpt_000000001.pt"
    atomic_write_text(dest, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_text("half written")
            raise RuntimeError("killed mid-write")
    assert dest.read_text() == "old"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["ckpt_000000001.pt"]  # no temp file left
    with atomic_path(dest) as tmp:
        assert tmp.parent == dest.parent and tmp.name.startswith(".") and tmp.suffix == ".pt"
        assert not list(dest.parent.glob("ckpt_*.pt.*"))  # a glob for checkpoints never sees it
        tmp.write_text("new")
    assert dest.read_text() == "new"


def test_sha256_file_matches_hashlib_across_chunks(tmp_path):
    data = bytes(range(256)) * 5000
    f = tmp_path / "blob"
    f.write_bytes(data)
    assert sha256_file(f, chunk=1000) == hashlib.sha256(data).hexdigest()
