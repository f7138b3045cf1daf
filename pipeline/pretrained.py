"""The authors' released models in the pipeline: stage ``train@METHOD`` of a method in
``pretrained.methods`` imports its release instead of training.

The release's files (:mod:`safin.io.releases`: your folder, the cache, or the canonical URL; checksums
pinned or recorded on first use) are loaded by the method's own ``load_reference``, always with the
authors' encoder, and written as ``train.out/METHOD/weights.pt`` *with that encoder* (their decoders were
trained on it). Every later stage (stylize, evaluate, grids, report, the study) then runs on them as on
trained weights, and ``summary.json`` says where they came from (``"origin": "authors' release"``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safin.io.files import atomic_write_text
from safin.io.releases import fetch_release, record_loaded, release



def folder_for(params: dict[str, Any], method: str) -> Path | None:
    """The user's folder of hand-downloaded files for ``method``: ``pretrained.folders.METHOD``, else
    ``pretrained.folder/METHOD`` (when it exists)."""
    p = params.get("pretrained") or {}
    own = (p.get("folders") or {}).get(method)
    if own:
        return Path(own).expanduser()
    base = p.get("folder")
    return Path(base).expanduser() / method if base else None


def load_release(method: str, folder: Path | None, *, record: bool = True):
    """(model, files): ``method``'s release fetched and checked (:func:`safin.io.releases.fetch_release`) and
    loaded by the method's own ``load_reference``; checksums seen for the first time are recorded only now, after
    the load succeeded (a wrong file dropped into the folder is refused, never recorded as the right one).
    ``record=False``: left to the caller (:func:`import_release` records after ``verify-release`` passed: SANet's
    decoder has AdaIN's keys, so AdaIN's file would load)."""
    import baselines

    files = fetch_release(method, folder)
    model = baselines.build(method, encoder_weights="random")  # the release's encoder replaces it
    model.load_reference(*[str(f["path"]) for f in files.values()])
    if record:
        record_loaded(method, files)
    return model.eval(), files


def import_release(params: dict[str, Any], method: str) -> dict:
    """Fetch and check ``method``'s release, load it into the method, write ``weights.pt`` (with the
    authors' encoder) and ``summary.json`` under ``train.out/METHOD``; returns the summary."""
    from safin.methods import save_weights

    rel = release(method)
    model, files = load_release(method, folder_for(params, method), record=False)
    checked = verify_summary(method, model) if (params.get("pretrained") or {}).get("verify", True) else None
    if checked is not None and checked.get("passed") is False:
        for f in files.values():  # loaded, but not the authors' outputs: never recorded as the release's file
            if f.pop("pending", False):
                f["checksum"] = "not recorded: verify-release failed on it"
    else:
        record_loaded(method, files)
    out = Path(params["train"]["out"]) / method
    for sub in ("checkpoints", "live"):  # the stage's other outputs: nothing trained, nothing to resume
        (out / sub).mkdir(parents=True, exist_ok=True)
    provenance = {n: {"from": str(f["from"]), "path": str(f["path"]), "sha256": f["sha256"], "checksum": f["checksum"]}
                  for n, f in files.items()}
    encoder = {"name": "authors", "source": getattr(model, "reference_encoder", "the authors' encoder"),
               "file": list(files)[-1]}
    save_weights(model, out / "weights.pt", with_encoder=True, origin="authors' release", release=rel.what,
                 files=provenance, encoder=encoder)
    summary = {"method": method, "origin": "authors' release", "release": rel.what, "page": rel.page,
               "iterations": 0, "files": provenance, "encoder": encoder, "weights": str(out / "weights.pt")}
    if checked is not None:
        summary["verify_release"] = checked
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    for name, f in files.items():
        print(f"{method}: {name} from {f['from']}\n  sha256 {f['sha256']} ({f['checksum']})")
    print(f"{method}: the authors' weights ({rel.what}) with {encoder['source']} -> {out / 'weights.pt'}")
    return summary


def verify_summary(method: str, model) -> dict:
    """:func:`pipeline.verify_release.verify` on the imported model, kept short for ``summary.json``; a check that
    cannot run (no committed outputs, offline) is recorded with its one line, not raised: the import stands."""
    from .verify_release import VerifyError, verify

    try:
        doc = verify(method, model=model)
    except VerifyError as e:
        return {"ran": False, "why": str(e)}
    keep = ("output", "psnr_db", "psnr_jpeg_db", "max_abs_255", "judged", "passed")
    return {"ran": True, **{k: doc[k] for k in ("passed", "judged", "worst_psnr_jpeg_db", "threshold_db", "repo",
                                                "commit", "written_by")},
            "images": [{k: r[k] for k in keep} for r in doc["images"]]}
