import hashlib

import pytest

from safin.io.download import ChecksumError, DownloadError, download, extract_member, verify_file
from safin.io.files import sha256_file

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


def test_download_verifies_and_renames(http_server, tmp_path):
    http_server.files["a.bin"] = PAYLOAD
    out = download(http_server.url("a.bin"), tmp_path / "a.bin", sha256=DIGEST, size=len(PAYLOAD), progress=False)
    assert out.read_bytes() == PAYLOAD
    assert not (tmp_path / "a.bin.part").exists()


def test_dropped_connection_resumes_with_range(http_server, tmp_path):
    http_server.files["a.bin"] = PAYLOAD
    http_server.drop_after["a.bin"] = 300_000
    out = download(http_server.url("a.bin"), tmp_path / "a.bin", sha256=DIGEST, size=len(PAYLOAD), progress=False)
    assert sha256_file(out) == DIGEST
    assert http_server.requests == [("a.bin", None), ("a.bin", "bytes=300000-")]


def test_partial_file_from_earlier_run_is_resumed(http_server, tmp_path):
    http_server.files["a.bin"] = PAYLOAD
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD[:123_456])
    download(http_server.url("a.bin"), tmp_path / "a.bin", sha256=DIGEST, progress=False)
    assert http_server.requests == [("a.bin", "bytes=123456-")]
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_from_zero(http_server, tmp_path):
    http_server.files["a.bin"] = PAYLOAD
    http_server.ignore_range = True
    (tmp_path / "a.bin.part").write_bytes(b"x" * 1000)  # wrong bytes: must not be kept
    download(http_server.url("a.bin"), tmp_path / "a.bin", sha256=DIGEST, progress=False)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_a_complete_part_is_kept_only_when_the_416_gives_its_length(http_server, tmp_path):
    """HTTP 416 (the part reaches past the end) with the server's length equal to the part's: nothing to fetch."""
    http_server.files["a.bin"] = PAYLOAD
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD)
    download(http_server.url("a.bin"), tmp_path / "a.bin", progress=False)
    assert http_server.requests == [("a.bin", f"bytes={len(PAYLOAD)}-")]
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


@pytest.mark.parametrize("bare", [False, True], ids=["length-differs", "no-length-given"])
def test_a_stale_part_answered_416_is_fetched_again_not_accepted(http_server, tmp_path, bare):
    """A part longer than the file (an older or another file, never checked: no release has a pinned checksum)
    was accepted on 416 as "the" file; now it is discarded and the file fetched from byte 0."""
    http_server.files["a.bin"] = PAYLOAD
    http_server.bare_416 = bare
    (tmp_path / "a.bin.part").write_bytes(b"y" * (len(PAYLOAD) + 10))
    download(http_server.url("a.bin"), tmp_path / "a.bin", progress=False)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert http_server.requests == [("a.bin", f"bytes={len(PAYLOAD) + 10}-"), ("a.bin", None)]


def test_checksum_mismatch_raises_and_discards_partial(http_server, tmp_path):
    http_server.files["a.bin"] = PAYLOAD
    with pytest.raises(ChecksumError, match="a.bin"):
        download(http_server.url("a.bin"), tmp_path / "a.bin", sha256="0" * 64, progress=False)
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "a.bin.part").exists()


def test_missing_file_is_a_clear_error(http_server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(http_server.url("nope.bin"), tmp_path / "nope.bin", progress=False)


def test_unknown_host_fails_fast(tmp_path):
    with pytest.raises(DownloadError, match="cannot resolve host"):
        download("http://no-such-host.invalid/x.bin", tmp_path / "x.bin", progress=False)


def test_existing_file_is_verified_not_trusted(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(PAYLOAD[:-1])
    with pytest.raises(ChecksumError, match="size"):
        verify_file(f, DIGEST, len(PAYLOAD))
    with pytest.raises(ChecksumError):
        download("http://127.0.0.1:9/unused", f, sha256=DIGEST, progress=False)


def test_extract_member_is_verified(tmp_path):
    import io
    import tarfile

    archive = tmp_path / "pkg.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("pkg/w.bin")
        info.size = len(PAYLOAD)
        tf.addfile(info, io.BytesIO(PAYLOAD))
    out = extract_member(archive, "pkg/w.bin", tmp_path / "w.bin", sha256=DIGEST)
    assert out.read_bytes() == PAYLOAD
    with pytest.raises(ChecksumError):
        extract_member(archive, "pkg/w.bin", tmp_path / "w2.bin", sha256="1" * 64)
    assert not (tmp_path / "w2.bin").exists()
    with pytest.raises(DownloadError, match="no member"):
        extract_member(archive, "pkg/missing.bin", tmp_path / "w3.bin")
