"""Tallying a user study with statistics that respect its clustering (../shared/design/evaluation.md §2).

Votes are clustered by participant and by set, so iid intervals are too narrow: the main intervals
are a **two-way cluster bootstrap** (participants and sets resampled independently). Also reported:
naive Wilson intervals (reference only), a naive χ² test against chance, Friedman's test on
per-participant counts with Holm-corrected pairwise Wilcoxon signed-rank tests, Fleiss' and
Randolph's kappa, Krippendorff's alpha, position bias, consistency on repeated sets, agreement
between the two questions (Cramér's V) and per-set shares; a Luce preference scale and a mixed-effects
logistic model with participant and set random effects (:mod:`survey.models`). Exclusions (failed attention checks,
too fast a median screen, incomplete participants, invalid or duplicate rows) are counted and listed, never hidden.
"""
from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from .design import BROKEN
from .responses import Responses


@dataclass
class TallyConfig:
    methods: list[str]
    questions: list[str]
    min_regular_fraction: float = 0.9   # a participant answering fewer regular sets is "incomplete"
    min_median_screen_seconds: float | None = 2.0   # a faster median screen is "too fast" (None: rule off)
    n_sets: int | None = None
    n_bootstrap: int = 2000
    seed: int = 0
    models: bool = True                 # also the Luce scale and the mixed model (survey.models)
    model_bootstrap: int = 300          # cluster-bootstrap resamples of the Luce scale


#: the exclusion rules, in the order they are applied (a participant is listed under the first that applies)
RULES = ("failed attention check", "too fast", "incomplete")


def _time(value) -> float | None:
    import datetime as dt

    try:
        t = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).timestamp()


def screen_seconds(rows: list[dict]) -> list[float]:
    """One participant's time on each regular screen: from when it was shown to its last answer (seconds;
    screens without readable timestamps left out)."""
    screens: dict = defaultdict(list)
    for r in rows:
        if r["kind"] == "regular":
            screens[r["screen"] if r.get("screen") is not None else (r["set"], r["kind"])].append(r)
    out = []
    for answers in screens.values():
        shown = [t for t in (_time(r.get("shown_at")) for r in answers) if t is not None]
        answered = [t for t in (_time(r.get("answered_at")) for r in answers) if t is not None]
        if shown and answered:
            out.append(max(answered) - min(shown))
    return out


def intro_seconds(rows: list[dict]) -> dict:
    """Seconds each participant spent on the consent, instructions and practice screens (the server's
    ``intro_times``): ``{screen: {"participants", "median", "quartiles"}}`` over the participants given."""
    per: dict = defaultdict(dict)
    for r in rows:
        for screen, (shown, done) in (r.get("intro_times") or {}).items():
            a, b = _time(shown), _time(done)
            if a is not None and b is not None and b >= a:
                per[screen][r["participant"]] = b - a
    out = {}
    for screen in ("consent", "instructions", "practice"):
        values = list(per.get(screen, {}).values())
        if values:
            q1, med, q3 = (float(x) for x in np.percentile(values, [25, 50, 75]))
            out[screen] = {"participants": len(values), "median": med, "quartiles": [q1, q3]}
    return out


def exclusions(resp: Responses, cfg: TallyConfig) -> tuple[set[str], dict[str, list[str]]]:
    """(excluded participant ids, {rule: [participants]}) by :data:`RULES`: any broken image chosen on an
    attention check; a median time per regular screen under ``min_median_screen_seconds`` (participants without
    timestamps are not judged by it); fewer than ``min_regular_fraction`` of the regular answers."""
    by_p = defaultdict(list)
    for r in resp.rows:
        by_p[r["participant"]].append(r)
    reasons: dict[str, list[str]] = {rule: [] for rule in RULES}
    n_sets = cfg.n_sets or len({r["set"] for r in resp.rows if r["kind"] == "regular"})
    need = int(np.ceil(cfg.min_regular_fraction * n_sets * len(cfg.questions)))
    for p, rows in sorted(by_p.items()):
        times = screen_seconds(rows) if cfg.min_median_screen_seconds is not None else []
        if any(r["kind"] == "attention" and r["chosen"] == BROKEN for r in rows):
            reasons["failed attention check"].append(p)
        elif times and float(np.median(times)) < cfg.min_median_screen_seconds:
            reasons["too fast"].append(p)
        elif sum(r["kind"] == "regular" for r in rows) < need:
            reasons["incomplete"].append(p)
    excluded = {p for ps in reasons.values() for p in ps}
    return excluded, reasons


def exclusion_rules(cfg: TallyConfig) -> dict:
    """The rules as applied (what a preregistration records and the report states)."""
    return {"failed attention check": "the broken image chosen on any attention-check screen",
            "too fast": (f"median time per regular screen under {cfg.min_median_screen_seconds} s"
                         if cfg.min_median_screen_seconds is not None else "off"),
            "incomplete": f"fewer than {cfg.min_regular_fraction:.0%} of the regular answers",
            "order": list(RULES)}


def vote_tensor(rows: list[dict], methods: list[str], question: str) -> tuple[np.ndarray, list[str], list[int]]:
    """V[p, s, m] = 1 if participant p chose m for set s (regular screens of ``question``)."""
    rows = [r for r in rows if r["kind"] == "regular" and r["question"] == question and r["chosen"] in methods]
    parts = sorted({r["participant"] for r in rows})
    sets = sorted({r["set"] for r in rows})
    pi, si, mi = {p: i for i, p in enumerate(parts)}, {s: i for i, s in enumerate(sets)}, {m: i for i, m in enumerate(methods)}
    v = np.zeros((len(parts), len(sets), len(methods)))
    for r in rows:
        v[pi[r["participant"]], si[r["set"]], mi[r["chosen"]]] = 1
    return v, parts, sets


def cluster_bootstrap(v: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Vote shares of ``n`` two-way cluster-bootstrap resamples: (n, methods)."""
    rng = np.random.default_rng(seed)
    P, S, _ = v.shape
    wp = rng.multinomial(P, np.full(P, 1 / P), size=n).astype(float)   # how often each participant is drawn
    ws = rng.multinomial(S, np.full(S, 1 / S), size=n).astype(float)
    # num[b, m] = Σ_p Σ_s wp[b, p]·ws[b, s]·v[p, s, m], as two products (a plain three-operand einsum loops
    # in C over every (b, p, s, m): 8x slower); every term is an integer, so any order gives the same sums
    M = v.shape[2]
    num = np.matmul(ws[:, None, :], (wp @ v.reshape(P, S * M)).reshape(n, S, M))[:, 0]
    return num / np.clip(num.sum(1, keepdims=True), 1e-12, None)


def wilson(k: int, n: int) -> tuple[float, float]:
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return float(lo), float(hi)


def tally(resp: Responses, cfg: TallyConfig) -> dict:
    """Every number of the study, as a JSON-able dict."""
    from scipy import stats
    from scipy.stats.contingency import association
    from statsmodels.stats.inter_rater import fleiss_kappa
    from statsmodels.stats.multitest import multipletests

    excluded, reasons = exclusions(resp, cfg)
    kept = [r for r in resp.rows if r["participant"] not in excluded]
    doc: dict = {"simulated": resp.simulated, "methods": cfg.methods, "questions": cfg.questions,
                 "participants": {"total": len({r['participant'] for r in resp.rows}),
                                  "kept": len({r['participant'] for r in kept}),
                                  "excluded": {k: v for k, v in reasons.items()},
                                  "intro_seconds": intro_seconds(kept)},
                 "exclusion_rules": exclusion_rules(cfg),
                 "invalid_rows": resp.problems, "shares": {}, "tests": {}, "agreement": {},
                 "position_bias": {}, "per_set": {}, "consistency": {}, "luce_scale": {}, "mixed_model": {}}
    k = len(cfg.methods)
    for q in cfg.questions:
        v, parts, sets = vote_tensor(kept, cfg.methods, q)
        if v.size == 0 or v.sum() == 0:
            continue
        counts = v.sum((0, 1))
        total = counts.sum()
        boot = cluster_bootstrap(v, cfg.n_bootstrap, cfg.seed)
        doc["shares"][q] = {m: {"share": float(counts[i] / total), "votes": int(counts[i]),
                                "ci95": [float(np.percentile(boot[:, i], 2.5)), float(np.percentile(boot[:, i], 97.5))],
                                "wilson95_naive": list(wilson(int(counts[i]), int(total)))}
                            for i, m in enumerate(cfg.methods)}
        doc["shares"][q]["_n"] = {"votes": int(total), "participants": len(parts), "sets": len(sets)}
        per_p = v.sum(1)  # (participants, methods)
        tests: dict = {"chi2_vs_chance_naive": {}}
        chi = stats.chisquare(counts)
        tests["chi2_vs_chance_naive"] = {"statistic": float(chi.statistic), "p": float(chi.pvalue)}
        if len(parts) >= 3:
            fr = stats.friedmanchisquare(*[per_p[:, i] for i in range(k)])
            tests["friedman"] = {"statistic": float(fr.statistic), "p": float(fr.pvalue), "n_participants": len(parts)}
            pairs, pvals = [], []
            for i, j in itertools.combinations(range(k), 2):
                d = per_p[:, i] - per_p[:, j]
                p = 1.0 if np.all(d == 0) else float(stats.wilcoxon(per_p[:, i], per_p[:, j]).pvalue)
                pairs.append(f"{cfg.methods[i]} vs {cfg.methods[j]}")
                pvals.append(p)
            reject, p_holm, _, _ = multipletests(pvals, alpha=0.05, method="holm")
            tests["wilcoxon_holm"] = {name: {"p": p, "p_holm": float(ph), "significant": bool(rj)}
                                      for name, p, ph, rj in zip(pairs, pvals, p_holm, reject)}
        doc["tests"][q] = tests
        if cfg.models:
            from .models import luce_scale, mixed_model

            doc["luce_scale"][q] = luce_scale(kept, cfg.methods, q, n_bootstrap=cfg.model_bootstrap, seed=cfg.seed)
            doc["mixed_model"][q] = mixed_model(kept, cfg.methods, q)
        # agreement: sets x methods counts, raters = participants
        table = v.sum(0)
        full = table[table.sum(1) == table.sum(1).max()]  # Fleiss needs equal raters per set
        agreement = {}
        if len(full) >= 2 and full.sum(1)[0] >= 2:
            agreement["fleiss_kappa"] = float(fleiss_kappa(full, method="fleiss"))
            agreement["randolph_kappa"] = float(fleiss_kappa(full, method="randolph"))
        try:
            import krippendorff

            data = np.full((len(parts), len(sets)), np.nan)
            pi, si = np.nonzero(v.sum(2))
            data[pi, si] = v[pi, si].argmax(1)
            agreement["krippendorff_alpha"] = float(krippendorff.alpha(reliability_data=data,
                                                                       level_of_measurement="nominal"))
        except (ImportError, ValueError) as e:
            agreement["krippendorff_alpha"] = f"not computed: {e}"
        doc["agreement"][q] = agreement
        # position bias: share of choices by screen position
        pos_counts = Counter()
        n_screens = 0
        for r in kept:
            if r["kind"] == "regular" and r["question"] == q:
                pos_counts[r["order"].index(r["chosen"])] += 1
                n_screens += 1
        pos = [pos_counts[i] for i in range(k)]
        chi_pos = stats.chisquare(pos) if n_screens else None
        doc["position_bias"][q] = {"share_by_position": [c / max(n_screens, 1) for c in pos],
                                   "chi2_p_naive": float(chi_pos.pvalue) if chi_pos is not None else None}
        doc["per_set"][q] = {int(s): {m: float(table[j, i] / max(table[j].sum(), 1)) for i, m in enumerate(cfg.methods)}
                             for j, s in enumerate(sets)}
        # consistency on repeats
        first = {(r["participant"], r["set"]): r["chosen"] for r in kept if r["kind"] == "regular" and r["question"] == q}
        rep = [(first.get((r["participant"], r["set"])), r["chosen"]) for r in kept
               if r["kind"] == "repeat" and r["question"] == q]
        rep = [(a, b) for a, b in rep if a is not None]
        doc["consistency"][q] = {"repeats": len(rep), "same_choice": (sum(a == b for a, b in rep) / len(rep)) if rep else None,
                                 "chance": 1 / k}
    # agreement between the two questions
    if len(cfg.questions) == 2:
        q1, q2 = cfg.questions
        a = {(r["participant"], r["set"]): r["chosen"] for r in kept if r["kind"] == "regular" and r["question"] == q1}
        b = {(r["participant"], r["set"]): r["chosen"] for r in kept if r["kind"] == "regular" and r["question"] == q2}
        common = [key for key in a if key in b]
        if common:
            idx = {m: i for i, m in enumerate(cfg.methods)}
            ct = np.zeros((k, k), dtype=int)
            for key in common:
                ct[idx[a[key]], idx[b[key]]] += 1
            nz_r, nz_c = ct.sum(1) > 0, ct.sum(0) > 0
            v_ = float(association(ct[nz_r][:, nz_c], method="cramer")) if nz_r.sum() > 1 and nz_c.sum() > 1 else None
            doc["between_questions"] = {"contingency": ct.tolist(), "rows": q1, "columns": q2, "cramers_v": v_,
                                        "same_choice": float(np.trace(ct) / ct.sum())}
    return doc
