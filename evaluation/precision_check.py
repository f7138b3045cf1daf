"""How far the fast path's precision moves trained models' outputs: ``precision="auto"`` (bf16 where the
device and the method allow it, channels_last) vs plain float32 NCHW, on the evaluation pairs.

    python -m evaluation.precision_check outputs/train metrics/bf16_vs_fp32_demo.json [--size 256]

Reports per method the mean and max absolute difference (0..255 scale) and the largest relative L2
difference over the pairs. Needs trained weights (``TRAIN_DIR/METHOD/weights.pt``).
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch

import baselines
from safin.io.images import load_image
from safin.io.weights import ensure_encoder_weights
from safin.methods import load_weights


def check(train_dir: Path, pairs_csv: Path, size: int = 256, methods=None) -> dict:
    rows = list(csv.DictReader(open(pairs_csv)))
    root = pairs_csv.parent
    out = {}
    ensure_encoder_weights("normalised")
    for method in methods or baselines.METHOD_NAMES:
        m = baselines.build(method).eval()
        load_weights(m, train_dir / method / "weights.pt")
        mean_abs, max_abs, rel = [], [], []
        with torch.inference_mode():
            for r in rows:
                c, s = (load_image(root / r[k], long_side=size)[None] for k in ("content", "style"))
                a = m.set_compute("fp32", False)(c, s)
                b = m.set_compute("auto")(c, s)
                d = (a - b).abs()
                mean_abs.append(float(d.mean()))
                max_abs.append(float(d.max()))
                rel.append(float((a - b).norm() / a.norm().clamp_min(1e-12)))
        out[method] = {"auto_dtype": str(m.compute_dtype).removeprefix("torch."),
                       "encoder_float32": m.compute_dtype != torch.float32 and not m.bf16_encoder,
                       "mean_abs_255": 255 * sum(mean_abs) / len(mean_abs), "max_abs_255": 255 * max(max_abs),
                       "max_rel_l2": max(rel)}
        print(method, json.dumps(out[method]), flush=True)
    return {"pairs": len(rows), "size": size, "device": "cpu", "threads": torch.get_num_threads(),
            "what": "trained weights; float32 NCHW vs precision auto NHWC; outputs in [0, 1], *_255 on 0..255",
            "methods": out}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("train_dir", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--pairs", type=Path, default=Path("data/sample/pairs.csv"))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--method", action="append")
    a = p.parse_args(argv)
    doc = check(a.train_dir, a.pairs, a.size, a.method)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
