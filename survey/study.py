"""A study folder: the plan and every image a participant may see. It is the researcher's, kept private.

Layout (``build_study``)::

    STUDY/plan.json                      participants, tokens, orders, opaque ids (survey.design); PRIVATE
    STUDY/images/SET/content.png         content and style of each set
    STUDY/images/SET/style.png
    STUDY/images/SET/METHOD.png          each method's output (re-encoded from stage stylize@METHOD)
    STUDY/images/SET/broken.png          the attention-check image: an output visibly destroyed
    STUDY/images/practice/*.png          the practice screen: content, style, optionN (edits of the content)

These names are the researcher's: participants never see them. The server serves these files under
per-participant opaque identifiers; the static export copies them under those identifiers.

Every image is re-encoded by one encoder (:func:`write_clean_png`): RGB, no metadata chunk of any kind
(text, EXIF, ICC, time, physical size), stored without compression, and every option of a set at the
same size, so neither the bytes, the file size nor the dimensions tell the methods (or the attention
check) apart.
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from .design import BROKEN, StudyConfig, image_hashes, load_plan, make_plan, save_plan


def clean_png(pixels: np.ndarray) -> bytes:
    """``pixels`` (H×W×3 uint8) as a PNG with only IHDR, IDAT and IEND chunks, uncompressed (zlib level 0),
    so two images of the same size have the same file size whatever they show."""
    img = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), "RGB")  # a fresh image: no info carried over
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=0, optimize=False)
    return buf.getvalue()


def write_clean_png(pixels: np.ndarray, dst: Path) -> Path:
    """:func:`clean_png` written to ``dst`` atomically (a new file replaces the old: a hard link to the old one,
    as in a static export, keeps the old bytes)."""
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.partial")
    tmp.write_bytes(clean_png(pixels))
    os.replace(tmp, dst)
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


class StudyFrozen(ValueError):
    """A study with answers whose images would change: it is kept as it is."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def render_images(stylized: Path, cfg: StudyConfig) -> dict[str, bytes]:
    """Every image of the study as PNG bytes (``SET/ROLE.png`` → bytes), from the stylize stage's outputs; nothing
    is written. Outputs of one set whose sizes differ are resized to the first method's size (and said so), so
    the size cannot identify a method."""
    out: dict[str, bytes] = {}
    for s in range(cfg.n_sets):
        for role in ("content", "style"):
            src = stylized / "inputs" / f"{s:02d}_{role}.png"
            if not src.exists():
                raise FileNotFoundError(f"{src}: missing; run the pairs stage (or lower survey.n_sets)")
            out[f"{s:02d}/{role}.png"] = clean_png(read_rgb(src))
        size, first = None, None
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
            pixels = read_rgb(src, size)
            if m == cfg.methods[s % len(cfg.methods)]:
                first = pixels
            out[f"{s:02d}/{m}.png"] = clean_png(pixels)
        out[f"{s:02d}/{BROKEN}.png"] = clean_png(broken_image(first, seed=s))
    out.update(practice_images(stylized, cfg))
    return out


def practice_images(stylized: Path, cfg: StudyConfig) -> dict[str, bytes]:
    """The practice screen (not counted): the pair after the study's last set when the stylize stage made one, else
    the first set's, and as options plain edits of its content — the content in the style's mean colours, grey,
    blurred, posterized (repeated, each edit stronger, for more methods) — no method's output, so practising
    teaches the interface and nothing about the methods."""
    from PIL import ImageFilter, ImageOps

    s = cfg.n_sets if (stylized / "inputs" / f"{cfg.n_sets:02d}_content.png").exists() else 0
    content = read_rgb(stylized / "inputs" / f"{s:02d}_content.png")
    style = read_rgb(stylized / "inputs" / f"{s:02d}_style.png")
    c = content.astype(np.float64)
    st = style.reshape(-1, 3).astype(np.float64)
    recoloured = (c - c.mean((0, 1))) / (c.std((0, 1)) + 1e-6) * st.std(0) + st.mean(0)
    image = Image.fromarray(content)
    edits = [lambda k: np.clip(recoloured, 0, 255),
             lambda k: np.asarray(ImageOps.grayscale(image).convert("RGB")),
             lambda k: np.asarray(image.filter(ImageFilter.GaussianBlur(2 + 2 * k))),
             lambda k: np.asarray(ImageOps.posterize(image, max(1, 3 - k)))]
    out = {"practice/content.png": clean_png(content), "practice/style.png": clean_png(style)}
    for j in range(len(cfg.methods)):
        out[f"practice/option{j}.png"] = clean_png(np.asarray(edits[j % len(edits)](j // len(edits)), dtype=np.uint8))
    return out


def file_hashes(images: Path) -> dict[str, str]:
    """``SET/ROLE.png`` → sha256 of the files a study folder holds now (``practice/ROLE.png`` too)."""
    return {f"{p.parent.name}/{p.name}": sha256(p.read_bytes()) for p in sorted(Path(images).glob("*/*.png"))}


def answers_recorded(study: Path, responses: Path | None) -> tuple[int, str]:
    """How many answers a study has (its database's rows and the rows of the response files in ``responses``),
    and where they are, in words."""
    served = recorded_answers(study)
    files = sorted(Path(responses).glob("*.csv")) if responses and Path(responses).is_dir() else []
    returned = 0
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            returned += max(0, sum(1 for line in fh if line.strip()) - 1)
    where = [f"{served} in {Path(study) / 'responses.sqlite'}"] if served else []
    where += [f"{returned} in {len(files)} response file(s) in {responses}"] if files else []
    return served + returned, " and ".join(where)


def build_study(stylized: Path, out: Path, cfg: StudyConfig, *, replace_unanswered: bool = False,
                responses: Path | None = None) -> Path:
    """Make a study folder from the stylize stage's outputs (``stylized/METHOD/SET.png``,
    ``stylized/inputs/SET_{content,style}.png``), recording every image's sha256 in the plan.

    An existing plan is kept. **A study with answers is frozen**: when any of its images would change (the
    outputs were retrained or replaced), nothing is written and :class:`StudyFrozen` names the study, its
    answers and the choices. Without answers, changed images are replaced and their hashes updated. A plan of
    another design is refused, or, with ``replace_unanswered`` and no answer recorded (in the study's database
    or as a file in ``responses``), set aside (:func:`set_aside`) and replaced."""
    stylized, out = Path(stylized), Path(out)
    rendered = render_images(stylized, cfg)  # every input read before anything is written
    hashes = {name: sha256(data) for name, data in rendered.items()}
    plan_path = out / "plan.json"
    plans = None
    if plan_path.exists():  # invitations may be out: keep their tokens and identifiers, never overwrite them
        old_cfg, plans = load_plan(plan_path)
        answered, where = answers_recorded(out, responses)
        if asdict(old_cfg) != asdict(cfg):
            diff = ", ".join(k for k in asdict(cfg) if asdict(cfg)[k] != asdict(old_cfg)[k])
            if answered or not replace_unanswered:
                raise ValueError(f"{plan_path}: a plan for a different design exists (differs in {diff}; "
                                 + (f"{answered} answers recorded: {where}" if answered else
                                    "its invite links may be out")
                                 + "); move it away to plan a new study, or restore the survey parameters it was made with")
            aside = set_aside(out)
            print(f"{plan_path}: the design changed ({diff}) and no answer was recorded: the old plan and its "
                  f"database moved to {aside}/ (invite links made from it no longer work); a new plan is made")
            plans = None
        else:
            before = image_hashes(plan_path) or file_hashes(out / "images")  # a plan that predates the hashes
            changed = sorted(n for n in before if hashes.get(n) != before[n])
            if changed and answered:
                raise StudyFrozen(
                    f"{out}: the study has {answered} answers ({where}) and {len(changed)} of its images would change "
                    f"({', '.join(changed[:3])}{' …' if len(changed) > 3 else ''}): a study is frozen once anyone has "
                    f"answered, so nothing was written. Either keep the old study: restore the stylized outputs it was "
                    f"built from ({stylized}); or start a new one: set survey.study and survey.responses in params.yaml "
                    f"to new folders (e.g. {out}-2) and run again; the old study stays as it is")
            if changed:
                print(f"{out}: {len(changed)} image(s) changed and no answer was recorded: replaced, their hashes "
                      "updated (tokens and identifiers unchanged)")
            else:
                print(f"{plan_path}: kept (images unchanged; tokens and identifiers unchanged)")
    for name, data in rendered.items():
        dst = out / "images" / name
        if not dst.exists() or sha256(dst.read_bytes()) != hashes[name]:
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.partial")
            tmp.write_bytes(data)
            os.replace(tmp, dst)
    save_plan(plans if plans is not None else make_plan(cfg), cfg, plan_path, images=hashes)
    return out


def check_images(study: Path, rows: list[dict], recorded: dict[str, str]) -> dict:
    """That every image the counted answers were given on (each row's set: content, style and every option
    displayed) still has the sha256 the plan recorded when the study was built. Raises :class:`StudyFrozen`
    naming the first image that changed or is missing; returns what was checked."""
    needed: dict[str, int] = {}
    for r in rows:
        s = int(r["set"])
        for role in ("content", "style", *r["order"]):  # (the practice screen is never an answer)
            needed[f"{s:02d}/{role}.png"] = needed.get(f"{s:02d}/{role}.png", 0) + 1
    if not recorded:
        return {"checked": False, "why": "the plan predates recorded image hashes (built before they existed)"}
    for name in sorted(needed):
        path = Path(study) / "images" / name
        now = sha256(path.read_bytes()) if path.is_file() else None
        if now != recorded.get(name):
            state = "is missing" if now is None else (f"changed since the study was built (sha256 {now[:12]}…, "
                                                      f"recorded {str(recorded.get(name))[:12]}…)")
            raise StudyFrozen(f"{path}: {state}; {needed[name]} counted answers were given on it: the tally refuses "
                              "to count answers against images participants did not see. Restore the study's images "
                              "(they are the outputs the study was built from)")
    return {"checked": True, "images": len(needed)}


def recorded_answers(study: Path) -> int:
    """How many answers the served study's database holds, counted or set aside (a timed-out or withdrawn
    participant's); 0 without a database. A database that cannot be read is an error, never "no answers"."""
    import sqlite3

    db = Path(study) / "responses.sqlite"
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(db, timeout=30)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            return sum(int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                       for t in ("answers", "released_answers") if t in tables)
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise ValueError(f"{db}: cannot be read ({e}), so whether the study has answers is unknown; nothing was "
                         "changed") from None


def set_aside(study: Path) -> Path:
    """Move the study's plan and database to ``superseded/UTC-TIME/`` (nothing is deleted); returns it."""
    import time

    dest = Path(study) / "superseded" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("plan.json", "responses.sqlite", "responses.sqlite-wal", "responses.sqlite-shm"):
        if (Path(study) / name).exists():
            (Path(study) / name).replace(dest / name)
    return dest
