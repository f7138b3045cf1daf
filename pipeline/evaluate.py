"""Stage ``evaluate``: metrics per pair and method, aggregated with bootstrap 95% CIs over pairs
(``metrics/per_pair.csv``, ``summary.json``: the ``train.seed`` models); every seed's rows, the replicates of
``train.seeds`` too, in ``per_seed_pair.csv`` (the claims' seed-aware CIs)."""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np

from tqdm import tqdm

from evaluation.metrics import DESCRIPTION, DIRECTION, cfsd_features, features, pair_metrics, rgb_uv_histogram
from evaluation.statistics import bootstrap_ci
from safin.io.images import load_image
from safin.io.weights import ENCODER_WEIGHTS, fetch, weights_identity

from .seeds import replicate_seeds, seed_folder


def evaluate(params: dict) -> dict:
    e, s = params["evaluate"], params["stylize"]
    enc = str(e.get("encoder_weights", "normalised"))
    if enc not in ENCODER_WEIGHTS:
        raise ValueError(f"evaluate.encoder_weights: {enc!r} is not one of {sorted(ENCODER_WEIGHTS)}")
    for asset in (ENCODER_WEIGHTS[enc], "vgg19", "alexnet"):  # the metrics' networks (stage fetch_weights; vgg19: CFSD)
        fetch(asset)
    stylized = Path(s["out"])
    inputs = stylized / "inputs"
    n_pairs = len(sorted(inputs.glob("*_content.png")))
    if n_pairs == 0:
        raise FileNotFoundError(f"{inputs}: no stylized pairs (run the stylize stage first)")
    rows = []
    pairs = []  # each pair's inputs and the VGG features the metrics need, computed once for every method:
    styles: dict = {}  # the content's relu4_1 only, each distinct style's taps once (40 pairs use 8 styles; all
    for i in range(n_pairs):  # taps of 80 images at 512 px held 8 GiB)
        content = load_image(inputs / f"{i:02d}_content.png")
        style_png = inputs / f"{i:02d}_style.png"
        key = hashlib.sha256(style_png.read_bytes()).hexdigest()
        if key not in styles:
            style = load_image(style_png)
            styles[key] = (style, {**features(style, enc), "rgb_uv": rgb_uv_histogram(style)})
        style, fs = styles[key]
        pairs.append((content, style, {"relu4_1": features(content, enc)["relu4_1"], "cfsd": cfsd_features(content)}, fs))
    for method in s["methods"]:
        for i in tqdm(range(n_pairs), desc=f"evaluate {method}", unit="pair"):
            out = load_image(stylized / method / f"{i:02d}.png")
            content, style, fc, fs = pairs[i]
            rows.append({"method": method, "pair": i,
                         **pair_metrics(out, content, style, content_features=fc, style_features=fs,
                                      encoder_weights=enc)})
    main_seed = (params.get("train") or {}).get("seed", "main")
    seeded = [{"seed": main_seed, **r} for r in rows]
    replicates: dict[str, list] = {}
    for method in s["methods"]:  # train.seeds: each replicate's outputs, measured on the same pairs
        for seed in (replicate_seeds(params, method) if params.get("train") else []):
            folder = seed_folder(stylized, method, seed)
            replicates.setdefault(method, []).append(seed)
            for i in tqdm(range(n_pairs), desc=f"evaluate {method} seed {seed}", unit="pair"):
                content, style, fc, fs = pairs[i]
                seeded.append({"seed": seed, "method": method, "pair": i,
                               **pair_metrics(load_image(folder / f"{i:02d}.png"), content, style, content_features=fc,
                                              style_features=fs, encoder_weights=enc)})
    out_dir = Path(e["out"])
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in (("per_pair.csv", rows), ("per_seed_pair.csv", seeded)):
        with open(out_dir / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(table[0]))
            w.writeheader()
            for r in table:
                w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    summary: dict = {}
    for method in s["methods"]:
        summary[method] = {}
        for metric in DIRECTION:
            vals = [r[metric] for r in rows if r["method"] == method]
            mean, lo, hi = bootstrap_ci(vals, n_resamples=int(e["bootstrap"]), seed=int(e["seed"]))
            summary[method][metric] = {"mean": round(mean, 6), "ci95": [round(lo, 6), round(hi, 6)]}
    seeds_doc = {}
    for method, extra in replicates.items():  # the seed-level spread: each seed's mean over the pairs
        per_seed = {metric: [float(np.mean([r[metric] for r in seeded if r["method"] == method and r["seed"] == sd]))
                             for sd in [main_seed, *extra]] for metric in DIRECTION}
        seeds_doc[method] = {"seeds": [main_seed, *extra],
                             "per_seed_mean": {k: [round(v, 6) for v in vals] for k, vals in per_seed.items()},
                             "sd_over_seeds": {k: round(float(np.std(vals, ddof=1)), 6) for k, vals in per_seed.items()}}
    skipped: dict[str, str] = {}
    artfid_doc = artfid_metrics(e, s["methods"], stylized, n_pairs, rows, summary, skipped)
    for name, why in skipped.items():
        print(f"{name}: {why}")
    doc = {"profile": params.get("profile"), "n_pairs": n_pairs, "encoder": weights_identity(enc),
           "metrics": summary, "skipped": skipped, "artfid": artfid_doc,
           "seeds": seeds_doc,
           "definitions": DESCRIPTION, "lower_is_better": [m for m, d in DIRECTION.items() if d < 0]}
    (out_dir / "summary.json").write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def artfid_metrics(e: dict, methods, stylized: Path, n_pairs: int, rows: list[dict], summary: dict,
                   skipped: dict) -> dict | None:
    """ArtFID and FID_N of every method into ``summary`` (``evaluation/artfid.py``), or the one line why not into
    ``skipped``. The style set is each pair's style image (N = the number of pairs on both sides)."""
    from evaluation import artfid

    spec = dict(e.get("artfid") or {})
    try:
        path, origin = artfid.weights_file(spec)
        model = artfid.load_model(str(path))
    except (artfid.ArtFIDError, OSError) as err:
        skipped["ArtFID"] = f"skipped, no number computed: {err}"
        return None
    inputs = stylized / "inputs"
    by_style: dict[str, np.ndarray] = {}
    styles = []
    try:
        for i in range(n_pairs):
            png = inputs / f"{i:02d}_style.png"
            key = hashlib.sha256(png.read_bytes()).hexdigest()
            if key not in by_style:
                by_style[key] = artfid.inception_features(model, load_image(png))
            styles.append(by_style[key])
        for method in tqdm(methods, desc="ArtFID", unit="method"):
            outs = np.stack([artfid.inception_features(model, load_image(stylized / method / f"{i:02d}.png"))
                             for i in range(n_pairs)])
            lp = [r["lpips"] for r in rows if r["method"] == method]
            got = artfid.art_fid(lp, outs, np.stack(styles), n_resamples=int(e["bootstrap"]), seed=int(e["seed"]))
            summary[method]["artfid"], summary[method]["fid"] = got["artfid"], got["fid"]
    except artfid.ArtFIDError as err:
        skipped["ArtFID"] = f"skipped, no number computed: {err}"
        for method in methods:
            summary[method].pop("artfid", None), summary[method].pop("fid", None)
        return None
    return {"n": n_pairs, "mode": "FID_N: the plain FID of the N images (not FID-infinity)",
            "style_set": "each pair's style image", "preprocessing": "RGB in [0, 1] at the images' own size "
            "(art-fid's ToTensor(); StyleID's fork resizes to 512: not comparable)",
            "content_distance": "mean LPIPS-alex of (content, stylized), the lpips column", "weights": origin,
            "note": artfid.BIAS_NOTE.format(n=n_pairs)}
