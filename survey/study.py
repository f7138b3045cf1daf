"""A study folder: the plan and every image a participant may see. It is the researcher's, kept private.

Layout (``build_study``)::

    STUDY/plan.json                      participants, tokens, orders, opaque ids (survey.design); PRIVATE
    STUDY/images/SET/content.png         content and style of each set
    STUDY/images/SET/style.png
    STUDY/images/SET/METHOD.png          each method's output (re-encoded from stage stylize@METHOD)
    STUDY/images/SET/broken.png          the attention-check image: an output visibly destroyed

These names are the researcher's: participants never see them. The server serves these files under
per-participant opaque identifiers; the static export copies them under those identifiers.

Every image is re-encoded by one encoder (:func:`write_clean_png`): RGB, no metadata chunk of any kind
(text, EXIF, ICC, time, physical size), stored without compression, and every option of a set at the
same size, so neither the bytes, the file size nor the dimensions tell the methods (or the attention
check) apart.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from .design import BROKEN, StudyConfig, load_plan, make_plan, save_plan


def write_clean_png(pixels: np.ndarray, dst: Path) -> Path:
    """``pixels`` (H×W×3 uint8) as a PNG with only IHDR, IDAT and IEND chunks, uncompressed (zlib level 0),
    so two images of the same size have the same file size whatever they show."""
    img = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), "RGB")  # a fresh image: no info carried over
    img.save(dst, format="PNG", compress_level=0, optimize=False)
    return dst


def read_rgb(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """The pixels of ``path`` as RGB, resized (Lanczos) to ``size`` (W, H) when given and different."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != tuple(size):
                im = im.resize(tuple(size), Image.Resampling.LANCZOS)
            return np.asarray(im, dtype=np.uint8).copy()
    except OSError as e:
        raise ValueError(f"{path}: not a readable image ({e})") from None


def broken_image(arr: np.ndarray, seed: int) -> np.ndarray:
    """An obviously broken version of an output: scrambled blocks and heavy noise."""
    arr = arr.astype(np.float64)
    rng = np.random.default_rng(seed)
    h, w, _ = arr.shape
    b = max(8, min(h, w) // 6)
    out = arr.copy()
    for y in range(0, h - b + 1, b):
        for x in range(0, w - b + 1, b):
            yy, xx = rng.integers(0, h - b + 1), rng.integers(0, w - b + 1)
            out[y:y + b, x:x + b] = arr[yy:yy + b, xx:xx + b]
    return np.clip(out + rng.normal(0, 60, out.shape), 0, 255).astype(np.uint8)


def build_study(stylized: Path, out: Path, cfg: StudyConfig, *, replace_unanswered: bool = False,
                responses: Path | None = None) -> Path:
    """Make a study folder from the stylize stage's outputs (``stylized/METHOD/SET.png``,
    ``stylized/inputs/SET_{content,style}.png``). Outputs of one set whose sizes differ are resized to the
    first method's size (and said so), so the size cannot identify a method. An existing plan is kept; one of
    another design is refused, or, with ``replace_unanswered`` and no answer recorded (in the study's database
    or as a file in ``responses``), set aside (:func:`set_aside`) and replaced."""
    stylized, out = Path(stylized), Path(out)
    images = out / "images"
    for s in range(cfg.n_sets):
        d = images / f"{s:02d}"
        d.mkdir(parents=True, exist_ok=True)
        for role in ("content", "style"):
            src = stylized / "inputs" / f"{s:02d}_{role}.png"
            if not src.exists():
                raise FileNotFoundError(f"{src}: missing; run the pairs stage (or lower survey.n_sets)")
            write_clean_png(read_rgb(src), d / f"{role}.png")
        size = None
        for m in cfg.methods:
            src = stylized / m / f"{s:02d}.png"
            if not src.exists():
                raise FileNotFoundError(f"{src}: missing output of method {m}")
            with Image.open(src) as im:
                own = im.size
            size = size or own
            if own != size:
                print(f"{src}: {own[0]}x{own[1]}, resized to {size[0]}x{size[1]} like the set's other outputs, "
                      "so its size does not identify the method")
            write_clean_png(read_rgb(src, size), d / f"{m}.png")
        source = read_rgb(d / f"{cfg.methods[s % len(cfg.methods)]}.png")
        write_clean_png(broken_image(source, seed=s), d / f"{BROKEN}.png")
    plan_path = out / "plan.json"
    if plan_path.exists():  # invitations may be out: keep their tokens and identifiers, never overwrite them
        old_cfg, plans = load_plan(plan_path)
        if asdict(old_cfg) != asdict(cfg):
            answered = recorded_answers(out) + len(list(Path(responses).glob("*.csv")) if responses else [])
            diff = ", ".join(k for k in asdict(cfg) if asdict(cfg)[k] != asdict(old_cfg)[k])
            if answered or not replace_unanswered:
                raise ValueError(f"{plan_path}: a plan for a different design exists (differs in {diff}; "
                                 + (f"{answered} answers or response files recorded" if answered else
                                    "its invite links may be out")
                                 + "); move it away to plan a new study, or restore the survey parameters it was made with")
            aside = set_aside(out)
            print(f"{plan_path}: the design changed ({diff}) and no answer was recorded: the old plan and its "
                  f"database moved to {aside}/ (invite links made from it no longer work); a new plan is made")
            save_plan(make_plan(cfg), cfg, plan_path)
        else:
            print(f"{plan_path}: kept (images rebuilt; tokens and identifiers unchanged)")
    else:
        save_plan(make_plan(cfg), cfg, plan_path)
    return out


def recorded_answers(study: Path) -> int:
    """How many answers the served study's database holds (0 without one)."""
    import sqlite3

    db = Path(study) / "responses.sqlite"
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def set_aside(study: Path) -> Path:
    """Move the study's plan and database to ``superseded/UTC-TIME/`` (nothing is deleted); returns it."""
    import time

    dest = Path(study) / "superseded" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("plan.json", "responses.sqlite", "responses.sqlite-wal", "responses.sqlite-shm"):
        if (Path(study) / name).exists():
            (Path(study) / name).replace(dest / name)
    return dest
