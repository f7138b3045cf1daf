"""The paper's checkable claims, held against our measurements.

Each claim names the evidence it needs, computes it from the per-pair metrics (paired bootstrap 95%
CIs over the evaluation pairs), the training logs, or the user study, and returns a verdict:

- ``holds in this run (1 seed)``: the CI lies entirely on the claimed side;
- ``does not hold in this run (1 seed)``: the CI lies entirely on the other side;
- ``inconclusive``: the CI straddles zero (or the equivalence margin), or the evidence is missing.

The CIs resample the evaluation pairs of one training run (one seed): seed-to-seed variance is not in them,
so no verdict says "reproduced" (:data:`VERDICTS` defines the words; the report prints them).

A verdict is about the models of the active profile; at ``ci``/``demo`` scale (a few hundred CPU
iterations against the paper's 160k) it describes barely-trained models and cannot decide what the
paper claims about converged ones — the report says so next to every verdict.
"""
from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .statistics import bootstrap_ci
from .metrics import DIRECTION

HOLDS, DOES_NOT_HOLD, INCONCLUSIVE = "holds in this run (1 seed)", "does not hold in this run (1 seed)", "inconclusive"
REPRODUCED, NOT_REPRODUCED = HOLDS, DOES_NOT_HOLD  # the strongest verdicts one seed allows

#: the verdict words, defined once (the report prints them beside the claims)
VERDICTS = {
    HOLDS: "the 95% CI of the effect (paired bootstrap over the 40 evaluation pairs, or the study's two-way "
           "cluster bootstrap) lies entirely on the side the paper claims, for the models of this run; one "
           "training seed, so seed-to-seed variance is not in the interval and the claim is not 'reproduced'",
    DOES_NOT_HOLD: "the 95% CI lies entirely on the other side, for this run's models (one seed)",
    INCONCLUSIVE: "the CI straddles no difference (or the equivalence margin), or the evidence is missing or "
                  "simulated",
}


@dataclass
class Verdict:
    claim: str
    source: str
    evidence: str
    verdict: str
    numbers: dict = field(default_factory=dict)


def read_per_pair(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """``{method: {metric: values ordered by pair}}`` from ``per_pair.csv``."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    out: dict[str, dict[str, list]] = {}
    for r in sorted(rows, key=lambda r: (r["method"], int(r["pair"]))):
        m = out.setdefault(r["method"], {})
        for k, v in r.items():
            if k not in ("method", "pair"):
                m.setdefault(k, []).append(float(v))
    return {m: {k: np.asarray(v) for k, v in d.items()} for m, d in out.items()}


def paired_ci(diff: np.ndarray, seed: int = 0, n: int = 4000) -> tuple[float, float, float]:
    """Mean paired difference and its percentile bootstrap 95% CI (resampling pairs)."""
    return bootstrap_ci(diff, n_resamples=n, seed=seed)


def better(per_pair, a: str, b: str, metric: str) -> tuple[str, str, dict]:
    """Is method ``a`` better than ``b`` on ``metric``? Relative paired difference with CI."""
    if a not in per_pair or b not in per_pair:
        return INCONCLUSIVE, f"{a} or {b} was not evaluated", {}
    va, vb = per_pair[a][metric], per_pair[b][metric]
    scale = np.abs(vb).mean() or 1.0
    mean, lo, hi = paired_ci((va - vb) / scale)
    sign = DIRECTION[metric]  # -1: lower is better
    verdict = INCONCLUSIVE
    if (sign < 0 and hi < 0) or (sign > 0 and lo > 0):
        verdict = REPRODUCED
    elif (sign < 0 and lo > 0) or (sign > 0 and hi < 0):
        verdict = NOT_REPRODUCED
    text = (f"{metric}: {a} {va.mean():.4g} vs {b} {vb.mean():.4g}; paired difference {mean:+.1%} of {b} "
            f"(95% CI {lo:+.1%} … {hi:+.1%}, {len(va)} pairs)")
    return verdict, text, {"mean": mean, "ci95": [lo, hi]}


def similar(per_pair, a: str, b: str, metric: str, margin: float = 0.15) -> tuple[str, str, dict]:
    """Equivalence: is the relative paired difference of ``metric`` within ±margin?"""
    if a not in per_pair or b not in per_pair:
        return INCONCLUSIVE, f"{a} or {b} was not evaluated", {}
    va, vb = per_pair[a][metric], per_pair[b][metric]
    mean, lo, hi = paired_ci((va - vb) / (np.abs(vb).mean() or 1.0))
    if -margin < lo and hi < margin:
        verdict = REPRODUCED
    elif lo > margin or hi < -margin:
        verdict = NOT_REPRODUCED
    else:
        verdict = INCONCLUSIVE
    text = (f"{metric}: {a} {va.mean():.4g} vs {b} {vb.mean():.4g}; difference {mean:+.1%} "
            f"(95% CI {lo:+.1%} … {hi:+.1%}); 'similar' = within ±{margin:.0%}")
    return verdict, text, {"mean": mean, "ci95": [lo, hi], "margin": margin}


def training_content_loss(train_dir: Path, method: str, tail: float = 0.2) -> np.ndarray | None:
    """Content-loss values of the last ``tail`` fraction of training (None if there is no log)."""
    from .curves import read_loss

    try:
        _, values = read_loss(Path(train_dir) / method / "live", "content")
    except FileNotFoundError:
        return None
    return values[int(len(values) * (1 - tail)):] if len(values) else None


def check_claims(per_pair_csv: Path, train_dir: Path, survey_json: Path | None = None) -> list[Verdict]:
    pp = read_per_pair(per_pair_csv)
    out: list[Verdict] = []

    def add(claim: str, source: str, fn: Callable[[], tuple[str, str, dict]]):
        verdict, evidence, numbers = fn()
        out.append(Verdict(claim, source, evidence, verdict, numbers))

    add("SAFIN in SANet's base network gives lower content loss than SANet's module",
        "§4.1, Fig. 5b", lambda: better(pp, "sanet_safin", "sanet", "content_loss"))

    def training_curves():
        a, b = training_content_loss(train_dir, "sanet_safin"), training_content_loss(train_dir, "sanet")
        if a is None or b is None or not len(a) or not len(b):
            return INCONCLUSIVE, "no training logs of sanet and sanet_safin", {}
        rel = (a.mean() - b.mean()) / b.mean()
        verdict = INCONCLUSIVE if abs(rel) < 0.02 else (REPRODUCED if rel < 0 else NOT_REPRODUCED)
        return verdict, (f"training content loss over the last 20% of iterations: sanet_safin {a.mean():.4g} vs "
                         f"sanet {b.mean():.4g} ({rel:+.1%}; no CI: one run each, |difference| < 2% = inconclusive)"), \
            {"relative": float(rel)}

    add("… and the training curves show it (lower content loss during training)", "Fig. 5b", training_curves)
    add("Style losses of SAFIN-in-SANet and SANet are similar", "§4.1",
        lambda: similar(pp, "sanet_safin", "sanet", "style_loss"))
    add("The wavelet base network with SAFIN preserves content better than SANet (LPIPS to content)",
        "§1, §3.3, Fig. 3", lambda: better(pp, "safin", "sanet", "lpips"))
    add("… and better than AdaIN (LPIPS to content)", "§3.3", lambda: better(pp, "safin", "adain", "lpips"))
    add("… and better than WCT (SSIM to content)", "§3.3", lambda: better(pp, "safin", "wct", "ssim"))
    add("Self-attention transfers style better than FIN alone (style loss)", "§4.2.1, Fig. 6",
        lambda: better(pp, "safin", "safin_fin", "style_loss"))

    def study(question: str, label: str):
        def fn():
            import json

            if survey_json is None or not Path(survey_json).exists():
                return INCONCLUSIVE, "no user-study responses yet (see the survey stage)", {}
            doc = json.loads(Path(survey_json).read_text())
            shares = {m: v for m, v in doc.get("shares", {}).get(question, {}).items() if not m.startswith("_")}
            if not shares:
                return INCONCLUSIVE, f"the study has no answers to {question!r}", {}
            best = max(shares, key=lambda m: shares[m]["share"])
            lo = shares.get("safin", {}).get("ci95", [0, 0])[0]
            others_hi = max(v["ci95"][1] for m, v in shares.items() if m != "safin")
            verdict = REPRODUCED if best == "safin" and lo > others_hi else (
                NOT_REPRODUCED if best != "safin" and shares[best]["ci95"][0] > shares["safin"]["ci95"][1] else INCONCLUSIVE)
            text = f"{label}: " + ", ".join(f"{m} {v['share']:.0%}" for m, v in shares.items())
            if doc.get("simulated"):  # synthetic votes are no evidence about the paper
                return INCONCLUSIVE, text + " — SIMULATED responses, not evidence; run the real study", shares
            return verdict, text, shares
        return fn

    add("Users prefer SAFIN's stylization", "§4.3, Fig. 7", study("best_stylization", "vote shares"))
    add("SAFIN has the fewest artifacts in the user study", "§4.3, Fig. 7", study("fewest_artifacts", "vote shares"))
    return out
