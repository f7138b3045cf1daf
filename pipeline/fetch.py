"""Stages ``fetch_weights`` and ``fetch_data``."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from safin.io import weights as assets
from safin.io.datasets import prepare_images, training_files, verify_checksums

log = logging.getLogger(__name__)


def fetch_weights(names: list[str], manifest: Path | None = None) -> list[assets.Fetched]:
    """Fetch and verify each asset, print where it came from and its checksums, write a manifest."""
    results = []
    for name in names:
        got = assets.fetch(name)
        for err in got.errors:
            print(f"  (source skipped: {err})")
        print(got.summary(), flush=True)
        results.append(got)
    if manifest is not None:
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps(
            {g.name: {"source": g.source, "file_sha256": g.file_sha256, "tensor_sha256": g.tensor_sha256,
                      "raw_sha256": g.raw_sha256} for g in results}, indent=2) + "\n")
    return results


def fetch_data(params: dict[str, Any]) -> dict[str, Any]:
    """Verify the embedded sample set, then prepare the content and style training images."""
    d = params["data"]
    sample_dir, pairs, out = Path(d["sample_dir"]), Path(d["pairs"]), Path(d["out"])
    problems = verify_checksums(sample_dir)
    if problems:
        raise RuntimeError("the embedded sample set does not match its SHA256SUMS:\n  " + "\n  ".join(problems))
    print(f"{sample_dir}: all files match SHA256SUMS")
    cache = assets.cache_dir() / "datasets"
    reports = {}
    for role in ("content", "style"):
        spec = d[role]
        source = str(spec["source"])
        files = None
        if source == "sample":
            files = training_files(sample_dir, role, pairs)
            source = str(sample_dir / role)
        report = prepare_images(
            source, out / role, cache=cache, files=files, n_images=spec.get("n_images") or None,
            seed=int(spec.get("seed", 0)), size=d.get("size"), keep_aspect=bool(d.get("keep_aspect")),
            quality=int(d.get("quality", 95)), workers=int(d.get("workers", 0)), sha256=spec.get("sha256"),
            progress=os.environ.get("CI") != "true")
        print(report.summary(), flush=True)
        if report.prepared + report.reused == 0:
            raise RuntimeError(f"{role}: no usable images from {source}")
        reports[role] = report
    return reports
