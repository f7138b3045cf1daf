"""A study folder: the plan and every image a participant may see, nothing else.

Layout (``build_study``)::

    STUDY/plan.json                      participants, tokens, per-participant orders (survey.design)
    STUDY/images/SET/content.png         content and style of each set
    STUDY/images/SET/style.png
    STUDY/images/SET/METHOD.png          each method's output (copied from the stylize stage)
    STUDY/images/SET/broken.png          the attention-check image: an output visibly destroyed

The server and the static form serve only files under ``STUDY/images``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from .design import BROKEN, StudyConfig, make_plan, save_plan


def broken_image(src: Path, dst: Path, seed: int) -> Path:
    """An obviously broken version of an output: scrambled blocks and heavy noise."""
    with Image.open(src) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float64)
    rng = np.random.default_rng(seed)
    h, w, _ = arr.shape
    b = max(8, min(h, w) // 6)
    out = arr.copy()
    for y in range(0, h - b + 1, b):
        for x in range(0, w - b + 1, b):
            yy, xx = rng.integers(0, h - b + 1), rng.integers(0, w - b + 1)
            out[y:y + b, x:x + b] = arr[yy:yy + b, xx:xx + b]
    out = np.clip(out + rng.normal(0, 60, out.shape), 0, 255).astype(np.uint8)
    Image.fromarray(out).save(dst)
    return dst


def build_study(stylized: Path, out: Path, cfg: StudyConfig) -> Path:
    """Make a study folder from the stylize stage's outputs (``stylized/METHOD/SET.png``,
    ``stylized/inputs/SET_{content,style}.png``)."""
    stylized, out = Path(stylized), Path(out)
    images = out / "images"
    for s in range(cfg.n_sets):
        d = images / f"{s:02d}"
        d.mkdir(parents=True, exist_ok=True)
        for role in ("content", "style"):
            src = stylized / "inputs" / f"{s:02d}_{role}.png"
            if not src.exists():
                raise FileNotFoundError(f"{src}: missing; run the stylize stage (or lower survey.n_sets)")
            shutil.copyfile(src, d / f"{role}.png")
        for m in cfg.methods:
            src = stylized / m / f"{s:02d}.png"
            if not src.exists():
                raise FileNotFoundError(f"{src}: missing output of method {m}")
            shutil.copyfile(src, d / f"{m}.png")
        broken_image(d / f"{cfg.methods[s % len(cfg.methods)]}.png", d / f"{BROKEN}.png", seed=s)
    save_plan(make_plan(cfg), cfg, out / "plan.json")
    return out
