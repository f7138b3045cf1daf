import csv
import io
import shutil
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from safin.io.datasets import (deterministic_subset, extract_archive, prepare_images, read_manifest, read_pairs,
                        training_files, verify_checksums)


def test_sample_set_matches_its_checksums(sample_dir):
    assert verify_checksums(sample_dir) == []


def test_tampered_sample_file_is_detected(sample_dir, tmp_path):
    copy = tmp_path / "sample"
    shutil.copytree(sample_dir, copy)
    victim = sorted((copy / "style").glob("*.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[:-10])
    problems = verify_checksums(copy)
    assert len(problems) == 1 and victim.name in problems[0]


def test_manifest_covers_every_image_with_a_licence(sample_dir):
    rows = read_manifest(sample_dir)
    files = {f"{r['role']}/{r['file']}" for r in rows}
    on_disk = {f"{p.parent.name}/{p.name}" for p in sample_dir.glob("*/*.jpg")}
    assert files == on_disk and len(files) == 83
    assert all(r["license"].strip() for r in rows)


def test_pairs_are_40_distinct_and_disjoint_from_training(sample_dir):
    pairs = read_pairs(sample_dir / "pairs.csv")
    assert len(pairs) == 40 and len(set(pairs)) == 40
    for c, s in pairs:
        assert (sample_dir / c).exists() and (sample_dir / s).exists()
    held_out = {p for pair in pairs for p in pair}
    for role in ("content", "style"):
        train = training_files(sample_dir, role, sample_dir / "pairs.csv")
        assert train and not {f"{role}/{p.name}" for p in train} & held_out
    assert len(training_files(sample_dir, "content", sample_dir / "pairs.csv")) == 34
    assert len(training_files(sample_dir, "style", sample_dir / "pairs.csv")) == 21


def test_subset_is_deterministic_and_seed_dependent(tmp_path):
    files = [tmp_path / f"{i:03d}.jpg" for i in range(100)]
    a = deterministic_subset(files, 10, seed=1)
    assert a == deterministic_subset(list(reversed(files)), 10, seed=1)
    assert a != deterministic_subset(files, 10, seed=2)
    assert len(a) == 10 and deterministic_subset(files, 0, seed=1) == files


def test_zip_with_path_traversal_is_refused(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../../evil.txt", "x")
    # zipfile itself sanitises '..' on extraction; either way nothing may land outside dest
    try:
        extract_archive(bad, tmp_path / "out")
    except ValueError:
        pass
    assert not (tmp_path.parent / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_tar_with_absolute_or_parent_paths_is_refused(tmp_path):
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tf:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(tarfile.TarError):
        extract_archive(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()
    assert not list(tmp_path.glob(".out.extracting-*"))  # no half-extracted leftovers


def _jpeg(seed: int, size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _make_dataset_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(12):
            zf.writestr(f"train2014/img_{i:02d}.jpg", _jpeg(i))
        zf.writestr("train2014/sub/deep.png", _png_gray())
        zf.writestr("train2014/broken.jpg", _jpeg(99)[:200])      # truncated
        zf.writestr("train2014/notes.jpg", b"not an image at all")  # wrong content
        zf.writestr("train2014/README.txt", b"ignored: not an image name")
    return buf.getvalue()


def _png_gray() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (20, 50), 7).save(buf, "PNG")
    return buf.getvalue()


def test_prepare_images_end_to_end_over_http_with_a_dropped_connection(http_server, tmp_path):
    import hashlib

    data = _make_dataset_zip()
    http_server.files["train2014.zip"] = data
    http_server.drop_after["train2014.zip"] = len(data) // 3
    out = tmp_path / "prepared"
    report = prepare_images(http_server.url("train2014.zip"), out, cache=tmp_path / "cache", size=16,
                            sha256=hashlib.sha256(data).hexdigest(), progress=False)
    # the download was cut and resumed from where it stopped
    assert http_server.requests == [("train2014.zip", None), ("train2014.zip", f"bytes={len(data) // 3}-")]
    assert (report.found, report.selected, report.prepared) == (15, 15, 13)
    bad = {r["file"].rsplit("/", 1)[-1] for r in report.unreadable}
    assert bad == {"broken.jpg", "notes.jpg"}
    with open(out / "unreadable.csv") as f:
        assert len(list(csv.DictReader(f))) == 2
    outputs = sorted(out.glob("*.jpg"))
    assert len(outputs) == 13 and all(Image.open(p).size == (16, 16) for p in outputs)
    assert (out / "train2014__sub__deep.jpg").exists()
    with open(out / "manifest.csv") as f:
        assert len(list(csv.DictReader(f))) == 13

    # a second run reuses everything, downloads nothing again
    again = prepare_images(http_server.url("train2014.zip"), out, cache=tmp_path / "cache", size=16, progress=False)
    assert again.reused == 13 and again.prepared == 0 and len(http_server.requests) == 2


def test_prepare_subset_from_a_folder_keep_aspect(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(10):
        (src / f"{i}.jpg").write_bytes(_jpeg(i, size=(40, 20)))
    a = prepare_images(str(src), tmp_path / "a", cache=tmp_path / "c", n_images=4, seed=3, size=10,
                       keep_aspect=True, progress=False, workers=2)
    b = prepare_images(str(src), tmp_path / "b", cache=tmp_path / "c", n_images=4, seed=3, size=10,
                       keep_aspect=True, progress=False)
    names_a = sorted(p.name for p in (tmp_path / "a").glob("*.jpg"))
    assert a.selected == 4 and names_a == sorted(p.name for p in (tmp_path / "b").glob("*.jpg"))
    assert all(Image.open(p).size == (20, 10) for p in (tmp_path / "a").glob("*.jpg"))


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        prepare_images(str(tmp_path / "nowhere"), tmp_path / "o", cache=tmp_path / "c", progress=False)
