"""``safin survey export-static``: a study that works from any static host or straight from file://.

One HTML page per participant (``p01.html`` ...) with that participant's plan embedded, plus the
images. Answers are kept in the browser (localStorage: closing and reopening resumes); at the end the
participant downloads ``responses_pXX.csv`` (the response schema) and sends it back; put the files in
``survey.responses`` and run the tally.
"""
from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

from .design import load_plan
from .form import render_page


def export_static(study_dir: Path, out: Path) -> list[Path]:
    study_dir, out = Path(study_dir), Path(out)
    cfg, plans = load_plan(study_dir / "plan.json")
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(study_dir / "images", out / "images")
    pages = []
    for p in plans:
        page = render_page({"mode": "static", "token": p.token, "participant": p.participant, "images": "images",
                            "questions": cfg.questions, "items": [asdict(i) for i in p.items]})
        path = out / f"{p.participant}.html"
        path.write_text(page)
        pages.append(path)
    (out / "README.txt").write_text(
        "Open your page (pXX.html) in a browser, answer every screen, then press 'Download my responses'\n"
        "and send the downloaded CSV file back. Your answers are kept in this browser until then.\n")
    return pages
