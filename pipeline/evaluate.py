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

from evaluation import cfsd as cfsd_metric, degenerate as degenerate_outputs, protocols
from evaluation.metrics import DESCRIPTION, DIRECTION, features, pair_metrics, rgb_uv_histogram
from evaluation.statistics import bootstrap_ci
from safin.io.images import load_image
from safin.io.weights import ENCODER_WEIGHTS, fetch, weights_identity

from .seeds import replicate_seeds, seed_folder


def evaluate(params: dict) -> dict:
    e, s = params["evaluate"], params["stylize"]
    enc = str(e.get("encoder_weights", "normalised"))
    if enc not in ENCODER_WEIGHTS:
        raise ValueError(f"evaluate.encoder_weights: {enc!r} is not one of {sorted(ENCODER_WEIGHTS)}")
    protocol = protocols.get(str(e.get("protocol", "styleid")))
    for asset in (ENCODER_WEIGHTS[enc], "vgg19", "alexnet"):  # the metrics' networks (stage fetch_weights; vgg19:
        fetch(asset)                                         # CFSD's offline fallback)
    cfsd_net, cfsd_identity = cfsd_metric.load_network(e.get("cfsd"))
    if not cfsd_identity["comparable"]:
        print(f"CFSD: {cfsd_identity['note']}")
    stylized = Path(s["out"])
    inputs = stylized / "inputs"
    n_pairs = len(sorted(inputs.glob("*_content.png")))
    if n_pairs == 0:
        raise FileNotFoundError(f"{inputs}: no stylized pairs (run the stylize stage first)")
    skipped: dict[str, str] = {}
    art = ArtFIDInputs(e, skipped, protocol)
    pairs = []  # each pair's inputs and the VGG features the metrics need, computed once for every method:
    styles: dict = {}  # the content's relu4_1 only, each distinct style's taps once (40 pairs use 8 styles; all
    for i in range(n_pairs):  # taps of 80 images at 512 px held 8 GiB)
        content = load_image(inputs / f"{i:02d}_content.png")
        style_png = inputs / f"{i:02d}_style.png"
        key = hashlib.sha256(style_png.read_bytes()).hexdigest()
        if key not in styles:
            style = load_image(style_png)
            styles[key] = (style, {**features(style, enc), "rgb_uv": rgb_uv_histogram(style)}, art.features(style_png))
        style, fs, style_inception = styles[key]
        art.styles.append(style_inception)
        content_png = inputs / f"{i:02d}_content.png"
        lpips_content = {col: protocols.load(content_png, protocol, gray) for col, gray in lpips_columns(protocol)}
        pairs.append((content, style, {"relu4_1": features(content, enc)["relu4_1"],
                                       "cfsd": cfsd_metric.features(cfsd_net, content)}, fs, lpips_content))
    main_seed = (params.get("train") or {}).get("seed", "main")
    replicates = {m: replicate_seeds(params, m) if params.get("train") else [] for m in s["methods"]}
    rows, seeded = [], []  # the train.seed models' rows; every seed's (train.seeds: replicates on the same pairs)
    for method in s["methods"]:
        runs = [(main_seed, stylized / method)] + [(sd, seed_folder(stylized, method, sd)) for sd in replicates[method]]
        for k, (seed, folder) in enumerate(runs):
            for i in tqdm(range(n_pairs), desc=f"evaluate {method}" + (f" seed {seed}" if k else ""), unit="pair"):
                out_png = folder / f"{i:02d}.png"
                out = load_image(out_png)
                content, style, fc, fs, lpips_content = pairs[i]
                lpips_inputs = {col: (protocols.load(out_png, protocol, gray), lpips_content[col])
                                for col, gray in lpips_columns(protocol)}
                row = {"method": method, "pair": i, **pair_metrics(out, content, style, content_features=fc,
                                                                   style_features=fs, encoder_weights=enc,
                                                                   cfsd_network=cfsd_net, lpips_inputs=lpips_inputs)}
                seeded.append({"seed": seed, **row})
                if k == 0:
                    rows.append(row)
                    art.outputs.setdefault(method, []).append(art.features(out_png))
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
        for metric in [m for m in DIRECTION if m in rows[0]]:
            vals = [r[metric] for r in rows if r["method"] == method]
            mean, lo, hi = bootstrap_ci(vals, n_resamples=int(e["bootstrap"]), seed=int(e["seed"]))
            summary[method][metric] = {"mean": round(mean, 6), "ci95": [round(lo, 6), round(hi, 6)]}
    seeds_doc = {}
    for method, extra in replicates.items():  # the seed-level spread: each seed's mean over the pairs
        if not extra:
            continue
        order = [main_seed, *extra]
        per_seed = {metric: [float(np.mean([r[metric] for r in seeded if r["method"] == method and r["seed"] == sd]))
                             for sd in order] for metric in DIRECTION if metric in rows[0]}
        seeds_doc[method] = {"seeds": order,
                             "per_seed_mean": {k: [round(v, 6) for v in vals] for k, vals in per_seed.items()},
                             "sd_over_seeds": {k: round(float(np.std(vals, ddof=1)), 6) for k, vals in per_seed.items()}}
    artfid_doc = art.summarise(rows, summary, n_pairs, int(e["bootstrap"]), int(e["seed"]))
    for name, why in skipped.items():
        print(f"{name}: {why}")
    records = stylize_precision(stylized, s["methods"])
    nonfinite = {m: r.get("nonfinite_pairs") or [] for m, r in records.items()}
    degenerate = judge_every_seed(stylized, s["methods"], seeded, main_seed, replicates, nonfinite)
    for name, why in degenerate.items():
        print(f"{name}: DEGENERATE outputs, never judged: {why}")
    doc = {"profile": params.get("profile"), "n_pairs": n_pairs, "encoder": weights_identity(enc),
           "protocol": {"name": protocol.name, "source": protocol.source, "description": protocol.description},
           "evaluation_set": evaluation_set(params, n_pairs),
           "cfsd_network": cfsd_identity,
           "stylize_precision": records,
           "degenerate": degenerate, "health": degenerate_outputs.health(rows, nonfinite),
           "metrics": summary, "skipped": skipped, "artfid": artfid_doc,
           "seeds": seeds_doc,
           "definitions": {k: v for k, v in DESCRIPTION.items() if k in rows[0]}, "lower_is_better": [m for m, d in DIRECTION.items() if d < 0]}
    (out_dir / "summary.json").write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def judge_every_seed(stylized: Path, methods, seeded: list[dict], main_seed, replicates: dict,
                     main_nonfinite: dict[str, list[int]] | None = None) -> dict[str, str]:
    """``{method: why}`` for a method any of whose seeds' outputs are degenerate (evaluation/degenerate.py): the
    claims bootstrap over every seed, so one collapsed replicate spoils them. ``main_nonfinite``: the main seed's
    non-finite pairs per method, when its ``precision.json`` was read already (else read here)."""
    out = {}
    for m in methods:
        for seed in [main_seed, *replicates.get(m, [])]:
            folder = stylized / m if seed == main_seed else seed_folder(stylized, m, seed)
            record = folder / "precision.json"
            if seed == main_seed and main_nonfinite is not None:
                bad = main_nonfinite.get(m) or []
            else:
                bad = (json.loads(record.read_text()).get("nonfinite_pairs") or []) if record.exists() else []
            why = degenerate_outputs.judge([r for r in seeded if r["method"] == m and r["seed"] == seed], {m: bad}).get(m)
            if why:
                out[m] = why if seed == main_seed else f"seed {seed}: {why}"
                break
    return out


def stylize_precision(stylized: Path, methods) -> dict:
    """Each evaluated method's ``precision.json`` (written by pipeline.stylize beside its images): the precision its
    outputs were computed in and, for bf16, their measured deviation from float32."""
    return {m: json.loads((stylized / m / "precision.json").read_text()) for m in methods
            if (stylized / m / "precision.json").exists()}


def evaluation_set(params: dict, n_pairs: int) -> dict:
    """Which pairs were measured (``data.evaluation``): a named set, two folders, or the suite's own pairs."""
    ev = (params.get("data") or {}).get("evaluation") or {}
    if ev.get("set"):
        return {"name": str(ev["set"]), "description": f"the named set {ev['set']!r} ({n_pairs} pairs)"}
    if ev.get("content") or ev.get("style"):
        return {"name": "folders", "description": f"every content x every style of {ev.get('content')} and "
                                                  f"{ev.get('style')} ({n_pairs} pairs)"}
    return {"name": "suite", "description": f"this suite's evaluation pairs ({n_pairs} pairs, data.pairs)"}


def lpips_columns(protocol: protocols.Protocol) -> list[tuple[str, bool]]:
    """The LPIPS columns of a protocol and whether each is on greyscale copies."""
    return [("lpips", False)] + ([("lpips_gray", True)] if protocol.lpips_gray else [])


class ArtFIDInputs:
    """ArtFID's inputs, gathered while the metrics loop reads the images (each image is read once): the Inception
    features of each pair's style (:attr:`styles`) and of each method's outputs (:attr:`outputs`). Without usable
    weights, or at an image Inception cannot take, it is off and ``skipped["ArtFID"]`` says why in one line."""

    def __init__(self, e: dict, skipped: dict, protocol: protocols.Protocol):
        from evaluation import artfid

        self.artfid, self.skipped, self.model, self.origin = artfid, skipped, None, None
        self.protocol = protocol
        self.styles: list = []
        self.outputs: dict[str, list] = {}
        if not protocol.artfid:
            return  # not part of this protocol: not computed, and nothing to say it was skipped
        try:
            path, self.origin = artfid.weights_file(dict(e.get("artfid") or {}))
            self.model = artfid.load_model(str(path))
        except (artfid.ArtFIDError, OSError) as err:
            self._skip(err)

    def _skip(self, err: Exception) -> None:
        self.skipped["ArtFID"] = f"skipped, no number computed: {err}"
        self.model = None

    def features(self, path: Path) -> np.ndarray | None:
        """The Inception features of one image file, read as the protocol reads it (None when ArtFID is off)."""
        if self.model is None:
            return None
        try:
            return self.artfid.inception_features(self.model, protocols.load(path, self.protocol))
        except self.artfid.ArtFIDError as err:
            self._skip(err)
            return None

    def summarise(self, rows: list[dict], summary: dict, n_pairs: int, n_resamples: int, seed: int) -> dict | None:
        """ArtFID and FID_N of every method into ``summary``; the block that says how (None when skipped). The style
        set is each pair's style image (N = the number of pairs on both sides)."""
        if self.model is None:
            return None
        styles = np.stack(self.styles)
        for method, outs in tqdm(self.outputs.items(), desc="ArtFID", unit="method"):
            lp = [r["lpips"] for r in rows if r["method"] == method]
            got = self.artfid.art_fid(lp, np.stack(outs), styles, n_resamples=n_resamples, seed=seed)
            summary[method]["artfid"], summary[method]["fid"] = got["artfid"], got["fid"]
        return {"n": n_pairs, "mode": "FID_N: the plain FID of the N images (not FID-infinity)",
                "style_set": "each pair's style image", "protocol": self.protocol.name,
                "preprocessing": ("PIL RGB, shorter side resized to 512 (torchvision Resize(512)), ToTensor(): StyleID's "
                                  "eval_artfid.py" if self.protocol.resize else
                                  "RGB in [0, 1] at the images' own size: art-fid's ToTensor()"),
                "content_distance": "mean LPIPS-alex of (content, stylized), the lpips column", "weights": self.origin,
                "note": self.artfid.BIAS_NOTE.format(n=n_pairs)}
