"""Data sets: the embedded sample set, its evaluation pairs, and paper-scale fetchers (COCO, WikiArt).

:func:`prepare_images` turns any source — an archive URL, a local archive, or a folder — into a folder
of training-ready images at the training resolution:

1. a URL is downloaded with resume (HTTP ``Range``) and verified (size / sha256 when known);
2. an archive is extracted atomically (to a temporary folder renamed when complete; paths that would
   escape the folder are refused);
3. a deterministic subset is drawn (``n_images`` with ``seed``; the same arguments give the same files
   on every machine);
4. each image is decoded, converted to RGB and resized (the reference recipe: a square ``size`` x
   ``size``, aspect not kept; or shorter side = ``size`` with ``keep_aspect``), and cached as JPEG;
   already-prepared images are skipped, so an interrupted run resumes;
5. unreadable files are counted, listed with the reason in ``unreadable.csv`` and skipped — never a
   crash, never silent.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import random
import shutil
import tarfile
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from safin.io.download import download
from safin.io.files import atomic_path, sha256_file
from safin.io.images import ImageReadError, is_image_name, open_rgb, shown

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


# --------------------------------------------------------------------------------------------------
# The embedded sample set


def read_manifest(sample_dir: Path) -> list[dict[str, str]]:
    with open(sample_dir / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def read_pairs(path: Path, root: Path | None = None) -> list[tuple[str, str]]:
    """``pairs.csv`` -> [(content file, style file)], paths relative to ``root``, the sample folder
    (default: the folder holding ``pairs.csv``); a row naming a missing file is an error with its line."""
    root = Path(root) if root is not None else path.parent
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no pairs (expected a header 'content,style' and one row per pair)")
    missing = {"content", "style"} - set(rows[0])
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    for line, r in enumerate(rows, start=2):
        for role in ("content", "style"):
            if not r[role] or not (root / r[role]).is_file():
                raise ValueError(f"{path}:{line}: {role} {r[role]!r} does not exist under {root}")
    return [(r["content"], r["style"]) for r in rows]


def folder_pairs(content_dir: Path, style_dir: Path) -> list[tuple[str, str]]:
    """Every content image × every style image of two folders (StyleID's benchmark: 20 × 40 = 800 pairs), in
    name order, as absolute paths; a missing or empty folder is an error naming it."""
    found = []
    for role, folder in (("content", Path(content_dir)), ("style", Path(style_dir))):
        if not folder.is_dir():
            raise ValueError(f"{folder}: no such folder (data.evaluation.{role})")
        files = sorted(p.resolve() for p in folder.iterdir() if p.is_file() and is_image_name(p))
        if not files:
            raise ValueError(f"{folder}: no images (data.evaluation.{role})")
        found.append(files)
    return [(str(c), str(st)) for c in found[0] for st in found[1]]


def evaluation_files(sample_dir: Path, pairs_csv: Path) -> set[str]:
    """Relative paths (``content/x.jpg``, ``style/y.jpg``) of every image used by an evaluation pair."""
    return {p for pair in read_pairs(pairs_csv, sample_dir) for p in pair}


def training_files(sample_dir: Path, role: str, pairs_csv: Path) -> list[Path]:
    """Sample images of ``role`` ('content' or 'style') not used by any evaluation pair, sorted."""
    held_out = evaluation_files(sample_dir, pairs_csv)
    files = sorted((sample_dir / role).glob("*"))
    return [p for p in files if is_image_name(p) and f"{role}/{p.name}" not in held_out]


def verify_checksums(folder: Path, sums_file: str = "SHA256SUMS") -> list[str]:
    """Check every line of ``folder/SHA256SUMS`` (``sha256  relative/path``); return the problems."""
    problems = []
    for line in (folder / sums_file).read_text().splitlines():
        if not line.strip():
            continue
        digest, rel = line.split(maxsplit=1)
        path = folder / rel.strip()
        if not path.exists():
            problems.append(f"{path}: missing")
        elif sha256_file(path) != digest:
            problems.append(f"{path}: sha256 differs from {sums_file}")
    return problems


def write_checksums(folder: Path, sums_file: str = "SHA256SUMS") -> Path:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != sums_file)
    lines = [f"{sha256_file(p)}  {p.relative_to(folder).as_posix()}" for p in files]
    out = folder / sums_file
    out.write_text("\n".join(lines) + "\n")
    return out


# --------------------------------------------------------------------------------------------------
# Archives


def is_archive(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def extract_archive(archive: Path, dest: Path) -> Path:
    """Extract ``archive`` into ``dest`` atomically: ``dest`` exists only once extraction finished.

    Members whose path would leave ``dest`` (absolute, ``..``, links) are refused.
    """
    if dest.exists():
        return dest
    tmp = dest.with_name(f".{dest.name}.extracting-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        if str(archive).lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    target = (tmp / info.filename).resolve()
                    if not target.is_relative_to(tmp.resolve()):
                        raise ValueError(f"{archive}: member {info.filename!r} would escape the folder")
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")  # refuses absolute paths, '..', device files, bad links
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def resolve_source(source: str, cache: Path, *, sha256: str | None = None, size: int | None = None) -> Path:
    """A URL, an archive or a folder -> a local folder of images (downloading/extracting as needed)."""
    if source.startswith(("http://", "https://")):
        name = source.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "download"
        archive = download(source, cache / "downloads" / name, sha256=sha256, size=size)
    else:
        archive = Path(source).expanduser()
        if not archive.exists():
            raise FileNotFoundError(f"{archive}: no such file or folder (data source)")
        if archive.is_dir():
            return archive
        if sha256 or size:
            from safin.io.download import verify_file
            verify_file(archive, sha256, size)
    if not is_archive(archive):
        raise ValueError(f"{archive}: not a folder or a known archive type {ARCHIVE_SUFFIXES}")
    stem = archive.name
    for suf in ARCHIVE_SUFFIXES:
        if stem.lower().endswith(suf):
            stem = stem[: -len(suf)]
            break
    return extract_archive(archive, cache / "extracted" / stem)


def list_images(folder: Path) -> list[Path]:
    """Every entry with an image suffix under ``folder``, sorted by relative path (hidden ones skipped).
    Entries that are not readable files (a directory named ``x.jpg``, a broken or looping link) are
    listed too, so that preparing them reports them instead of dropping them silently."""
    return sorted(p for p in folder.rglob("*") if (is_image_name(p) or p.suffix.lower() == ".svg")
                  and (p.is_file() or p.is_dir() or p.is_symlink())
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def other_files(folder: Path, taken: list[Path]) -> list[Path]:
    """Files under ``folder`` other than ``taken`` (what :func:`list_images` found), hidden ones aside."""
    taken = set(taken)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p not in taken and not p.is_dir()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def deterministic_subset(files: list[Path], n_images: int | None, seed: int) -> list[Path]:
    """``n_images`` files drawn with ``seed`` from the sorted list (all when ``n_images`` is falsy)."""
    files = sorted(files)
    if not n_images or n_images >= len(files):
        return files
    return sorted(random.Random(seed).sample(files, n_images))


# --------------------------------------------------------------------------------------------------
# Preparing (resizing / caching) images


@dataclass
class PrepareReport:
    source: str
    found: int = 0
    selected: int = 0
    prepared: int = 0
    reused: int = 0
    unreadable: list[dict[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)   # files of the folder that are not image names

    def summary(self) -> str:
        s = (f"{self.source}: {self.found} images found, {self.selected} selected, {self.prepared} prepared, "
             f"{self.reused} already prepared, {len(self.unreadable)} unreadable")
        for row in self.unreadable[:10]:
            s += f"\n  unreadable: {shown(row['file'])}: {row['reason']}"
        if len(self.unreadable) > 10:
            s += f"\n  ... and {len(self.unreadable) - 10} more (see unreadable.csv)"
        if self.ignored:
            s += (f"\n  {len(self.ignored)} other file(s) ignored, not image file names: "
                  + ", ".join(shown(Path(f).name) for f in self.ignored[:5]) + (" ..." if len(self.ignored) > 5 else ""))
        return s


def resize_for_training(im: Image.Image, size: int, keep_aspect: bool) -> Image.Image:
    """The reference recipe resizes to a ``size`` x ``size`` square (aspect not kept);
    ``keep_aspect`` makes the shorter side ``size`` instead."""
    if keep_aspect:
        scale = size / min(im.size)
        return im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                         Image.Resampling.BICUBIC)
    return im.resize((size, size), Image.Resampling.BICUBIC)


def _output_name(rel: Path) -> str:
    return "__".join(rel.with_suffix("").parts) + ".jpg"


def _prepare_one(args: tuple[str, str, int, bool, int]) -> tuple[str, str | None]:
    src, dst, size, keep_aspect, quality = args
    try:
        im = open_rgb(src)
        im = resize_for_training(im, size, keep_aspect) if size else im
        with atomic_path(dst) as tmp:
            im.save(tmp, format="JPEG", quality=quality)
        return src, None
    except ImageReadError as e:
        return src, str(e).split(": ", 1)[-1]
    except Exception as e:  # anything else a broken file triggers: report, never crash the run
        return src, f"{type(e).__name__}: {e}"


def prepare_images(
    source: str,
    out_dir: str | os.PathLike,
    *,
    cache: str | os.PathLike,
    n_images: int | None = None,
    seed: int = 0,
    size: int | None = 512,
    keep_aspect: bool = False,
    quality: int = 95,
    workers: int = 0,
    files: list[Path] | None = None,
    sha256: str | None = None,
    archive_size: int | None = None,
    progress: bool = True,
) -> PrepareReport:
    """Make ``out_dir`` hold the selected images of ``source``, decoded and resized (see module doc).

    ``files`` bypasses discovery (used for the sample set's training split). Writes
    ``out_dir/manifest.csv`` (source file -> prepared file), ``out_dir/unreadable.csv`` and
    ``out_dir/report.json``; returns the report.
    """
    out_dir = Path(out_dir)
    cache = Path(cache)
    if files is None:
        folder = resolve_source(source, cache, sha256=sha256, size=archive_size)
        candidates = list_images(folder)
        ignored = [str(p) for p in other_files(folder, candidates)]
    else:
        ignored = []
        folder = Path(source)
        candidates = sorted(files)
    report = PrepareReport(source=source, found=len(candidates), ignored=ignored)
    chosen = deterministic_subset(candidates, n_images, seed)
    report.selected = len(chosen)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs, rows = [], []
    for src in chosen:
        rel = src.relative_to(folder) if src.is_relative_to(folder) else Path(src.name)
        dst = out_dir / _output_name(rel)
        rows.append((rel.as_posix(), dst.name))
        if dst.exists() and dst.stat().st_size > 0:
            report.reused += 1
        else:
            jobs.append((str(src), str(dst), size or 0, keep_aspect, quality))
    failed: dict[str, str] = {}
    bar = tqdm(total=len(jobs), desc=f"prepare {out_dir.name}", unit="img", disable=not progress)
    if workers and workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as pool:
            for src, err in pool.map(_prepare_one, jobs, chunksize=16):
                if err:
                    failed[src] = err
                bar.update()
    else:
        for job in jobs:
            src, err = _prepare_one(job)
            if err:
                failed[src] = err
            bar.update()
    bar.close()
    report.prepared = len(jobs) - len(failed)
    report.unreadable = [{"file": s, "reason": r} for s, r in sorted(failed.items())]
    failed_rel = {Path(s).relative_to(folder).as_posix() if Path(s).is_relative_to(folder) else Path(s).name
                  for s in failed}
    # file names that are not UTF-8 are written back byte for byte (surrogateescape)
    with open(out_dir / "manifest.csv", "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
        w = csv.writer(f)
        w.writerow(["source", "file"])
        w.writerows(r for r in rows if r[0] not in failed_rel)
    with open(out_dir / "unreadable.csv", "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
        w = csv.DictWriter(f, fieldnames=["file", "reason"])
        w.writeheader()
        w.writerows(report.unreadable)
    (out_dir / "report.json").write_text(json.dumps(asdict(report), indent=2))
    if report.unreadable:
        log.warning("%d unreadable file(s) skipped; listed in %s", len(report.unreadable),
                    out_dir / "unreadable.csv")
    return report
