"""The paper's checkable claims, held against our measurements.

Each claim names the evidence it needs, computes it from the per-pair metrics, the training logs, or the
user study, and returns a verdict (:data:`VERDICTS` defines the words; the report prints them):

- ``holds in this run (1 seed)`` / ``holds over K seeds``: the CI lies entirely on the claimed side;
- ``does not hold in this run (1 seed)`` / ``does not hold over K seeds``: entirely on the other side;
- ``inconclusive``: the CI straddles zero (or the equivalence margin), or the evidence is missing.

With one training seed per method the CIs resample the evaluation pairs (paired bootstrap): seed-to-seed
variance is not in them, so the strongest verdict is "holds in this run (1 seed)", never "reproduced". With
K ≥ 2 seeds (``train.seed`` and ``train.seeds``) the CI is a hierarchical bootstrap: seeds resampled for each
method, then pairs (shared by both methods), and the per-seed effects are shown beside it. The training-curve
claim (Fig. 5b) takes its CI from the seeds alone (a t interval over the per-seed differences); with one seed
it has none and is inconclusive.

A verdict is about the models of the active profile; at ``ci``/``demo`` scale (a few hundred CPU
iterations against the paper's 160k) it describes barely-trained models and cannot decide what the
paper claims about converged ones — the report says so next to every verdict.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .degenerate import not_evaluated
from .statistics import bootstrap_ci
from .metrics import DIRECTION

HOLDS, DOES_NOT_HOLD, INCONCLUSIVE = "holds in this run (1 seed)", "does not hold in this run (1 seed)", "inconclusive"
REPRODUCED, NOT_REPRODUCED = HOLDS, DOES_NOT_HOLD  # the strongest verdicts one seed allows


def holds(seeds: int) -> str:
    return HOLDS if seeds < 2 else f"holds over {seeds} seeds"


def does_not_hold(seeds: int) -> str:
    return DOES_NOT_HOLD if seeds < 2 else f"does not hold over {seeds} seeds"


#: the verdict words, defined once (the report prints them beside the claims)
VERDICTS = {
    HOLDS: "the 95% CI of the effect (paired bootstrap over the evaluation pairs, or the study's two-way cluster "
           "bootstrap) lies entirely on the side the paper claims, for the models of this run; one training seed, "
           "so seed-to-seed variance is not in the interval and the claim is not 'reproduced'",
    "holds over K seeds": "the 95% CI lies entirely on the claimed side, with K ≥ 2 training seeds per method in it "
                          "(hierarchical bootstrap: seeds, then pairs; Fig. 5b: t interval over the seeds)",
    DOES_NOT_HOLD: "the 95% CI lies entirely on the other side, for this run's models (one seed)",
    "does not hold over K seeds": "the 95% CI lies entirely on the other side, with K ≥ 2 seeds per method in it",
    "not evaluated: degenerate outputs of METHOD": "a model in the claim collapsed (flat, noise or non-finite outputs: "
                                                   "evaluation/degenerate.py); its numbers decide nothing",
    INCONCLUSIVE: "the CI straddles no difference (or the equivalence margin), or the evidence is missing, "
                  "simulated, from fewer than 10 pairs, from identical values or a zero-width interval, or "
                  "(Fig. 5b) from one seed",
}


@dataclass
class Verdict:
    claim: str
    source: str
    evidence: str
    verdict: str
    numbers: dict = field(default_factory=dict)


def read_per_pair(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """``{method: {metric: values}}`` from ``per_pair.csv`` (values ordered by pair), or from ``per_seed_pair.csv``
    (a ``seed`` column: values of shape (seeds, pairs), seeds in the order they first appear)."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    seeded = bool(rows) and "seed" in rows[0]
    order = list(dict.fromkeys(r.get("seed", "") for r in rows))
    out: dict[str, dict[str, dict[str, list]]] = {}  # method -> metric -> seed -> values by pair
    for r in sorted(rows, key=lambda r: (r["method"], order.index(r.get("seed", "")), int(r["pair"]))):
        m = out.setdefault(r["method"], {})
        for k, v in r.items():
            if k not in ("method", "pair", "seed"):
                m.setdefault(k, {}).setdefault(r.get("seed", ""), []).append(float(v))
    return {m: {k: np.asarray(list(by_seed.values())) if seeded else np.asarray(by_seed[""])
                for k, by_seed in d.items()} for m, d in out.items()}


def paired_ci(diff: np.ndarray, seed: int = 0, n: int = 4000) -> tuple[float, float, float]:
    """Mean paired difference and its percentile bootstrap 95% CI (resampling pairs)."""
    return bootstrap_ci(diff, n_resamples=n, seed=seed)


def hierarchical_ci(a: np.ndarray, b: np.ndarray, seed: int = 0, n: int = 4000) -> tuple[float, float, float]:
    """Mean difference of ``a`` (seeds_a, pairs) and ``b`` (seeds_b, pairs), and its percentile 95% CI from a
    two-level bootstrap: each replicate draws each method's seeds with replacement (separate training runs), then
    the pairs with replacement (the same pairs for both methods: the comparison stays paired)."""
    rng = np.random.default_rng(seed)
    sa = rng.integers(0, a.shape[0], size=(n, a.shape[0]))
    sb = rng.integers(0, b.shape[0], size=(n, b.shape[0]))
    p = rng.integers(0, a.shape[1], size=(n, a.shape[1]))
    ma = a[sa].mean(axis=1)  # (n, pairs): each replicate's mean over its drawn seeds, pair by pair
    mb = b[sb].mean(axis=1)
    d = np.take_along_axis(ma - mb, p, axis=1).mean(axis=1)
    lo, hi = np.percentile(d, [2.5, 97.5])
    return float(a.mean() - b.mean()), float(lo), float(hi)


def _effect(va: np.ndarray, vb: np.ndarray) -> tuple[float, float, float, int, str]:
    """(mean, low, high, seeds, spread text) of the relative difference of ``va`` and ``vb`` (pairs,) or
    (seeds, pairs): the paired bootstrap with one seed each, the hierarchical one with more."""
    a, b = np.atleast_2d(va), np.atleast_2d(vb)
    scale = np.abs(b).mean() or 1.0
    if a.shape[0] == 1 and b.shape[0] == 1:
        mean, lo, hi = paired_ci((a[0] - b[0]) / scale)
        return mean, lo, hi, 1, f"{a.shape[1]} pairs, 1 seed"
    mean, lo, hi = hierarchical_ci(a / scale, b / scale)
    k = min(a.shape[0], b.shape[0])
    per_seed = ", ".join(f"{(a[i].mean() - b[i].mean()) / scale:+.1%}" for i in range(k))
    return mean, lo, hi, k, (f"{a.shape[1]} pairs × {a.shape[0]} and {b.shape[0]} seeds, hierarchical bootstrap; "
                             f"per seed {per_seed}")


#: no verdict from fewer pairs than this: below it the 95% percentile bootstrap interval is too narrow to be a 95%
#: interval. Measured (400 simulated normal samples each, 1000 resamples): it covered the true mean in 74% of
#: samples at 3 pairs, 84% at 5, 86% at 8, 92% at 10, 93% at 20 (tests/test_claims_report.py re-measures 5 and 10)
MIN_PAIRS = 10


def no_evidence(va, vb, metric: str) -> str | None:
    """Why two methods' values of ``metric`` cannot support a verdict (too few pairs, identical values, a
    non-finite value), or None when they can. An interval of width zero is checked after the bootstrap."""
    a, b = np.atleast_2d(np.asarray(va, dtype=float)), np.atleast_2d(np.asarray(vb, dtype=float))
    if a.shape[1] < MIN_PAIRS:
        return (f"{metric}: only {a.shape[1]} pair{'s' if a.shape[1] != 1 else ''}; a verdict needs at least "
                f"{MIN_PAIRS} (with fewer, the 95% bootstrap interval is too narrow to be one)")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return f"{metric}: non-finite values; no verdict from them"
    if np.array_equal(a, b):
        return f"{metric}: identical values (the two methods agree pair for pair); no evidence either way"
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return (f"{metric}: each method's value is the same on every pair ({a.flat[0]:.4g} and {b.flat[0]:.4g}): "
                f"no spread, no interval; no verdict from it")
    return None


def better(per_pair, a: str, b: str, metric: str) -> tuple[str, str, dict]:
    """Is method ``a`` better than ``b`` on ``metric``? Relative paired difference with CI."""
    if a not in per_pair or b not in per_pair:
        return INCONCLUSIVE, f"{a} or {b} was not evaluated", {}
    va, vb = per_pair[a][metric], per_pair[b][metric]
    why = no_evidence(va, vb, metric)
    if why:
        return INCONCLUSIVE, why, {}
    mean, lo, hi, k, how = _effect(va, vb)
    if lo == hi:
        return INCONCLUSIVE, f"{metric}: the 95% CI has width zero ({how}); no evidence either way", {}
    sign = DIRECTION[metric]  # -1: lower is better
    verdict = INCONCLUSIVE
    if (sign < 0 and hi < 0) or (sign > 0 and lo > 0):
        verdict = holds(k)
    elif (sign < 0 and lo > 0) or (sign > 0 and hi < 0):
        verdict = does_not_hold(k)
    text = (f"{metric}: {a} {va.mean():.4g} vs {b} {vb.mean():.4g}; paired difference {mean:+.1%} of {b} "
            f"(95% CI {lo:+.1%} … {hi:+.1%}, {how})")
    return verdict, text, {"mean": mean, "ci95": [lo, hi], "seeds": k}


def similar(per_pair, a: str, b: str, metric: str, margin: float = 0.15) -> tuple[str, str, dict]:
    """Equivalence: is the relative paired difference of ``metric`` within ±margin?"""
    if a not in per_pair or b not in per_pair:
        return INCONCLUSIVE, f"{a} or {b} was not evaluated", {}
    va, vb = per_pair[a][metric], per_pair[b][metric]
    why = no_evidence(va, vb, metric)
    if why:
        return INCONCLUSIVE, why, {}
    mean, lo, hi, k, how = _effect(va, vb)
    if lo == hi:
        return INCONCLUSIVE, f"{metric}: the 95% CI has width zero ({how}); no evidence either way", {}
    if -margin < lo and hi < margin:
        verdict = holds(k)
    elif lo > margin or hi < -margin:
        verdict = does_not_hold(k)
    else:
        verdict = INCONCLUSIVE
    text = (f"{metric}: {a} {va.mean():.4g} vs {b} {vb.mean():.4g}; difference {mean:+.1%} "
            f"(95% CI {lo:+.1%} … {hi:+.1%}, {how}); 'similar' = within ±{margin:.0%}")
    return verdict, text, {"mean": mean, "ci95": [lo, hi], "margin": margin, "seeds": k}


def training_content_loss(run: Path, tail: float = 0.2) -> np.ndarray | None:
    """Content-loss values of the last ``tail`` fraction of one training run (its folder, holding ``live/``;
    None if there is no log)."""
    from .curves import read_loss

    try:
        _, values = read_loss(Path(run) / "live", "content")
    except FileNotFoundError:
        return None
    return values[int(len(values) * (1 - tail)):] if len(values) else None


def seed_runs(train_dir: Path, method: str, replicates: list[int] | None = None) -> list[Path]:
    """The training folders of ``method``'s seeds: ``train.out/METHOD`` (``train.seed``) first, then those of
    its replicate seeds ``replicates`` (``train.out/METHOD/seeds/seed-S``; None: every one there, in seed order)."""
    main = Path(train_dir) / method
    if replicates is None:
        extra = sorted((main / "seeds").glob("seed-*"), key=lambda p: int(p.name.split("-", 1)[1]))
    else:
        extra = [main / "seeds" / f"seed-{s}" for s in replicates]
    return [main] + [p for p in extra if (p / "live").is_dir()]


def curves_claim(train_dir: Path, a: str = "sanet_safin", b: str = "sanet",
                 replicates: dict[str, list[int]] | None = None) -> tuple[str, str, dict]:
    """Fig. 5b: ``a``'s training content loss (mean of the last 20% of iterations) below ``b``'s, by seed: the
    relative difference of seed i of ``a`` and seed i of ``b``, its mean and a t interval over the seeds."""
    from scipy import stats

    runs = [seed_runs(train_dir, m, None if replicates is None else replicates.get(m, [])) for m in (a, b)]
    rel = []
    for ra, rb in zip(*runs):
        la, lb = training_content_loss(ra), training_content_loss(rb)
        if la is None or lb is None or not len(la) or not len(lb):
            break
        rel.append((la.mean() - lb.mean()) / lb.mean())
    if not rel:
        return INCONCLUSIVE, f"no training logs of {a} and {b}", {}
    r = np.asarray(rel)
    per_seed = ", ".join(f"{v:+.1%}" for v in r)
    if len(r) < 2:
        return INCONCLUSIVE, (f"training content loss over the last 20% of iterations: {a} vs {b} {r[0]:+.1%} "
                              f"(1 seed: no CI, the seed-to-seed spread is unknown; train.seeds adds seeds)"), \
            {"relative_per_seed": r.tolist()}
    half = float(stats.t.ppf(0.975, len(r) - 1) * r.std(ddof=1) / np.sqrt(len(r)))
    lo, hi = float(r.mean() - half), float(r.mean() + half)
    verdict = holds(len(r)) if hi < 0 else does_not_hold(len(r)) if lo > 0 else INCONCLUSIVE
    return verdict, (f"training content loss over the last 20% of iterations: {a} vs {b} {r.mean():+.1%} (95% CI "
                     f"{lo:+.1%} … {hi:+.1%}, t interval over {len(r)} seeds; per seed {per_seed})"), \
        {"mean": float(r.mean()), "ci95": [lo, hi], "relative_per_seed": r.tolist(), "seeds": len(r)}


def _claim_list(per_pair_csv: Path, degenerate: dict[str, str] | None):
    """(per-pair values, the verdicts so far, ``add``): ``add(claim, source, methods, fn)`` appends ``fn()``'s verdict,
    or "not evaluated" when one of ``methods`` (a tuple, or a callable giving them) is degenerate."""
    seeded = Path(per_pair_csv).with_name("per_seed_pair.csv")
    pp = read_per_pair(seeded if seeded.exists() else per_pair_csv)
    if degenerate is None:
        summary = Path(per_pair_csv).with_name("summary.json")
        degenerate = (json.loads(summary.read_text()).get("degenerate") or {}) if summary.exists() else {}
    out: list[Verdict] = []

    def add(claim: str, source: str, methods, fn: Callable[[], tuple[str, str, dict]]):
        collapsed = [m for m in methods() if m in degenerate] if callable(methods) else [m for m in methods if m in degenerate]
        if collapsed:  # a collapsed model yields no verdict, whatever its numbers say
            out.append(Verdict(claim, source, "; ".join(f"{m}: {degenerate[m]}" for m in collapsed),
                               not_evaluated(collapsed[0]) + "".join(f", {m}" for m in collapsed[1:]), {}))
            return
        verdict, evidence, numbers = fn()
        out.append(Verdict(claim, source, evidence, verdict, numbers))

    return pp, out, add


#: the methods published beside and after SAFIN that its paper never met (issue 33), with how the report names them
RIVALS = {"adaattn": "AdaAttN (Liu et al., ICCV 2021)", "stytr2": "StyTr² (Deng et al., CVPR 2022)"}
#: the source column of a claim that is this suite's question, not the paper's
OURS = "ours, not the paper's"


def beyond_paper_claims(per_pair_csv: Path, degenerate: dict[str, str] | None = None) -> list[Verdict]:
    """SAFIN against each of :data:`RIVALS` the run measured, with the machinery of the paper's claims: the three
    questions the paper asks of its own rivals (content kept: LPIPS to the content; style reached: the style loss)
    and StyleID's content-fidelity measure (CFSD). These are our claims, not the paper's; none when the run lacks
    SAFIN or every rival."""
    pp, out, add = _claim_list(per_pair_csv, degenerate)
    if "safin" not in pp:
        return out
    for rival, label in RIVALS.items():
        if rival not in pp:
            continue
        name = label.split(" (")[0]
        add(f"SAFIN preserves content better than {name} (LPIPS to content)", OURS, ("safin", rival),
            lambda r=rival: better(pp, "safin", r, "lpips"))
        add(f"SAFIN keeps the content's self-similarity better than {name} (CFSD)", OURS, ("safin", rival),
            lambda r=rival: better(pp, "safin", r, "cfsd"))
        add(f"SAFIN transfers style better than {name} (style loss)", OURS, ("safin", rival),
            lambda r=rival: better(pp, "safin", r, "style_loss"))
    return out


def check_claims(per_pair_csv: Path, train_dir: Path, survey_json: Path | None = None,
                 replicates: dict[str, list[int]] | None = None,
                 degenerate: dict[str, str] | None = None) -> list[Verdict]:
    """``per_pair_csv``: ``per_pair.csv``; ``per_seed_pair.csv`` beside it (every seed's rows) is used when it is
    there. ``replicates``: each method's replicate seeds (``train.seeds`` but ``train.seed``; None: the folders
    found). ``degenerate``: ``{method: why}`` (summary.json's, :mod:`evaluation.degenerate`; None: read from the
    ``summary.json`` beside ``per_pair_csv``): every claim involving such a method is not evaluated."""
    pp, out, add = _claim_list(per_pair_csv, degenerate)
    add("SAFIN in SANet's base network gives lower content loss than SANet's module",
        "§4.1, Fig. 5b", ("sanet_safin", "sanet"), lambda: better(pp, "sanet_safin", "sanet", "content_loss"))
    add("… and the training curves show it (lower content loss during training)", "Fig. 5b", ("sanet_safin", "sanet"),
        lambda: curves_claim(train_dir, replicates=replicates))
    add("Style losses of SAFIN-in-SANet and SANet are similar", "§4.1", ("sanet_safin", "sanet"),
        lambda: similar(pp, "sanet_safin", "sanet", "style_loss"))
    add("The wavelet base network with SAFIN preserves content better than SANet (LPIPS to content)",
        "§1, §3.3, Fig. 3", ("safin", "sanet"), lambda: better(pp, "safin", "sanet", "lpips"))
    add("… and better than AdaIN (LPIPS to content)", "§3.3", ("safin", "adain"),
        lambda: better(pp, "safin", "adain", "lpips"))
    add("… and better than WCT (SSIM to content)", "§3.3", ("safin", "wct"), lambda: better(pp, "safin", "wct", "ssim"))
    add("Self-attention transfers style better than FIN alone (style loss)", "§4.2.1, Fig. 6", ("safin", "safin_fin"),
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
            if "safin" not in shares:
                return INCONCLUSIVE, f"the study does not show SAFIN (its methods: {', '.join(shares)})", shares
            if len(shares) < 2:
                return INCONCLUSIVE, "the study shows SAFIN alone: there is nothing to prefer it to", shares
            best = max(shares, key=lambda m: shares[m]["share"])
            lo = shares.get("safin", {}).get("ci95", [0, 0])[0]
            others_hi = max(v["ci95"][1] for m, v in shares.items() if m != "safin")
            verdict = REPRODUCED if best == "safin" and lo > others_hi else (
                NOT_REPRODUCED if best != "safin" and shares[best]["ci95"][0] > shares["safin"]["ci95"][1] else INCONCLUSIVE)
            text = f"{label}: " + ", ".join(f"{m} {v['share']:.0%}" for m, v in shares.items())
            if doc.get("simulated"):  # synthetic votes are no evidence about the paper
                return INCONCLUSIVE, text + " — SIMULATED responses, not evidence; run the real study", shares
            reg = doc.get("preregistration")
            if reg and not reg.get("matches"):  # analysed otherwise than registered: no confirmatory verdict
                return INCONCLUSIVE, text + (" — the study does not match its preregistration ("
                                             + "; ".join(reg.get("differences") or ["the file was edited"])
                                             + "): exploratory, no verdict"), shares
            return verdict, text, shares
        return fn

    def study_methods():  # the methods the study shows: a collapsed one among them spoils the vote shares
        if survey_json is None or not Path(survey_json).exists():
            return []
        doc = json.loads(Path(survey_json).read_text())
        return sorted({m for q in (doc.get("shares") or {}).values() for m in q if not m.startswith("_")})

    add("Users prefer SAFIN's stylization", "§4.3, Fig. 7", study_methods, study("best_stylization", "vote shares"))
    add("SAFIN has the fewest artifacts in the user study", "§4.3, Fig. 7", study_methods,
        study("fewest_artifacts", "vote shares"))
    return out
