"""``safin survey export-static``: a blind study that works from any static host or straight from file://.

One HTML page per participant (``p01.html`` ...) with that participant's screens embedded as opaque
identifiers only, and a folder of that participant's images named by those identifiers (``p01/ID.png``).
No file name, path or page names a method or marks an attention check, and no identifier is shared
between two participants, so participants cannot pool what they see. The plan is not exported.
Answers are kept in the browser (localStorage: closing and reopening resumes); at the end the
participant downloads ``responses_pXX.csv`` (or, with a collection URL, the page posts each answer as it is
given), which holds only identifiers
(:data:`survey.blinding.BLIND_COLUMNS`), and sends it back; put the files in ``survey.responses`` and
run the tally, which decodes them with the plan.

Images are hard-linked from the study folder where the file system allows (else copied): one
participant's folder is a few MB, and uploading it to a host copies the bytes anyway.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .blinding import screens
from .design import image_file, load_plan
from .form import intro, intro_texts, render_page


def _place(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def export_static(study_dir: Path, out: Path, texts: dict[str, list[str]] | None = None,
                  collect: str | None = None) -> list[Path]:
    """One page per participant. ``collect``: the base URL of a server taking the served pages' JSON
    (``COLLECT/api/TOKEN/consent|answer|finish``; ``safin survey serve`` is one): each answer is posted as it is
    given, and the download is offered only for what could not be sent."""
    study_dir, out = Path(study_dir), Path(out)
    cfg, plans = load_plan(study_dir / "plan.json")
    texts = texts or intro_texts()
    images = study_dir / "images"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    pages = []
    for p in plans:
        folder = out / p.participant
        folder.mkdir()
        for image_id, (set_id, role) in p.image_ids().items():
            src = image_file(images, set_id, role)
            if not src.is_file():
                raise FileNotFoundError(f"{src}: missing from the study folder; run `safin survey build-study`")
            _place(src, folder / f"{image_id}.png")
        page = render_page({"mode": "static", "token": p.token, "participant": p.participant,
                            "images": p.participant, "questions": cfg.questions, "items": screens(p),
                            "intro": intro(p, texts), "collect": collect.rstrip("/") if collect else None})
        path = out / f"{p.participant}.html"
        path.write_text(page, encoding="utf-8")
        pages.append(path)
    (out / "README.txt").write_text(
        "Open your page (pXX.html) in a browser and answer every screen. Your answers are kept in this browser"
        + (" and sent as you give them.\n" if collect else
           "; at the end press 'Download my responses'\nand send the downloaded CSV file back.\n"))
    return pages
