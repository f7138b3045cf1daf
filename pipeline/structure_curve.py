"""Structure against training time: how much of its content a method keeps as it trains (issue 30's curve).

For a training run's checkpoints (``RUN/checkpoints/ckpt_N.pt``, oldest first; keep them with
``safin train --set keep_checkpoints=…``), each model stylizes the evaluation pairs (as the stylize stage: the
pairs of ``params.yaml`` at ``stylize.size``, float32) and every output is measured against its content with the
degenerate-output measures of :mod:`evaluation.degenerate` (mean Sobel edge correlation; how many outputs are flat).
Training minutes are the images seen so far at the run's measured rate (``RUN/summary.json`` ``images_per_s``, or
``--rate``): the time on the machine that trained it, which the JSON names.

    python -m pipeline.structure_curve outputs/train/sanet outputs/train/adain --out metrics/structure_curve.json

Extending a run to see where it goes (resumed bit-identically; the extension's checkpoints kept)::

    safin train --method sanet --set max_iter=1200 keep_checkpoints=50 out_dir=COPY_OF_THE_RUN
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import torch

import baselines  # noqa: F401  (registers the methods)
from evaluation.degenerate import EDGE_MIN, FLAT_STD, output_measures
from safin.runtime.cpu_isa import describe

from .params import load_params
from .stylize import build_model, load_pairs

#: the demo recipe's target (issue 30): every method's mean edge correlation on the 40 pairs
TARGET = 0.3


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    """``(iteration, path)`` of the run's checkpoints, oldest first."""
    found = []
    for path in sorted(Path(run, "checkpoints").glob("ckpt_*.pt")):
        m = re.fullmatch(r"ckpt_(\d+)\.pt", path.name)
        if m:
            found.append((int(m.group(1)), path))
    return found


def measure(method: str, checkpoint: Path, pairs: list, encoder_weights: str = "normalised") -> dict:
    """Mean edge correlation and flat-output count of ``checkpoint``'s model on ``pairs`` (float32), with the
    encoder the run trained with."""
    model = build_model(method, checkpoint=str(checkpoint), device="cpu", precision="fp32",
                        encoder_weights=encoder_weights)
    edges, flat, cache = [], 0, {}
    for content, style in pairs:
        with torch.inference_mode():
            out = model(content, style, style_cache=cache)[0].clamp(0, 1)
        m = output_measures(out, content[0])
        edges.append(m["edge_corr"])
        flat += m["output_std"] < FLAT_STD
    return {"edge_corr": float(np.mean(edges)), "flat_outputs": int(flat), "pairs": len(pairs)}


def run_curve(run: Path, pairs: list, rate: float | None = None) -> dict:
    """Every checkpoint of ``run`` measured; minutes from the run's own measured training rate."""
    run = Path(run)
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    method = summary.get("method") or run.name
    rate = rate or summary.get("images_per_s")
    found = checkpoints(run)
    if not found:
        raise FileNotFoundError(f"{run}/checkpoints: no ckpt_*.pt to measure")
    first = torch.load(found[0][1], map_location="cpu", weights_only=False)
    config = first.get("config", {})
    batch = int(config.get("batch_size") or 0) or None
    points = []
    for it, path in found:
        point = {"iteration": it, **measure(method, path, pairs, config.get("encoder_weights", "normalised"))}
        if batch and rate:
            point["images"] = it * batch
            point["minutes"] = round(it * batch / rate / 60, 2)
        points.append(point)
        print(f"{method} step {it}: edge correlation {point['edge_corr']:.3f}, {point['flat_outputs']} flat"
              + (f" ({point['minutes']} min)" if "minutes" in point else ""), flush=True)
    best = max(p["edge_corr"] for p in points)
    return {"method": method, "run": str(run), "images_per_s": rate, "batch_size": batch, "points": points,
            "target": TARGET, "reaches_target": best >= TARGET, "short_by": round(max(0.0, TARGET - best), 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.structure_curve", description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="training run folders (outputs/train/METHOD)")
    ap.add_argument("--out", type=Path, required=True, help="the JSON to write (one entry per run)")
    ap.add_argument("--rate", type=float, help="images per second instead of each run's summary.json")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = ap.parse_args(argv)
    params = load_params(args.params)
    pairs = load_pairs(params)
    doc = {"cpu": describe(), "stylize_size": int(params["stylize"]["size"]), "edge_min": EDGE_MIN,
           "curves": [run_curve(r, pairs, args.rate) for r in args.runs]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
