"""Models of a study's top-1-of-k choices, beside the vote shares of :mod:`survey.tally`.

- **Luce scale** (:func:`luce_scale`): each screen is a choice of one method among those shown, the Luce
  (top-1 Plackett–Luce) model P(m | shown) = exp θ_m / Σ exp θ_j, fitted with ``choix.ilsr_top1``.
  θ is centred (mean 0); intervals from the same two-way cluster bootstrap as the shares (participants and
  sets resampled independently), since one participant's choices are not independent.
- **Mixed-effects logistic model** (:func:`mixed_model`): one row per option shown, y = chosen;
  fixed effects per method (positions are randomised by the design; the tally reports their bias), random intercepts per participant × method and per
  set × method (crossed: a participant's taste for a method, a set that favours one), fitted by variational
  Bayes (``statsmodels`` ``BinomialBayesMixedGLM``). A method's fixed effect is the log-odds that it is the
  one chosen on a screen, for a typical participant and set. The binary likelihood
  ignores that exactly one option per screen is chosen: the intervals are approximate (documented).

Both use the same screens as the vote shares: the **regular** ones. Attention checks test the participant, not
the methods, and a repeated set's second answer measures consistency (``survey.tally``): counting it would weigh
that set twice for that participant, and the shares do not.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from .design import BROKEN


def _row_key(r: dict):
    return (str(r["participant"]), int(r["set"]), str(r["kind"]), str(r.get("screen", "")), str(r["question"]),
            tuple(r["order"]), str(r["chosen"]))


def _choices(rows: list[dict], methods: list[str], question: str) -> dict[tuple[str, int], list[tuple[int, list[int]]]]:
    """``{(participant, set): [(winner, losers), ...]}`` of the regular screens of ``question``."""
    idx = {m: i for i, m in enumerate(methods)}
    out: dict[tuple[str, int], list] = defaultdict(list)
    for r in sorted(rows, key=_row_key):  # the same answers in any file order give the same numbers
        if r["question"] != question or r["kind"] != "regular" or r["chosen"] not in idx:
            continue
        shown = [idx[m] for m in r["order"] if m != BROKEN and m in idx]
        win = idx[r["chosen"]]
        out[(r["participant"], int(r["set"]))].append((win, [j for j in shown if j != win]))
    return out


def _fit(n: int, data: list) -> np.ndarray:
    import choix

    # a tiny ridge keeps the fit finite when a method is never chosen in a resample
    theta = choix.ilsr_top1(n, data, alpha=1e-4)
    return theta - theta.mean()


def luce_scale(rows: list[dict], methods: list[str], question: str, *, n_bootstrap: int = 500,
               seed: int = 0) -> dict:
    """θ per method with two-way cluster-bootstrap 95% intervals, and the implied choice probabilities
    when every method is shown."""
    groups = _choices(rows, methods, question)
    if not groups:
        return {}
    k = len(methods)
    data = [c for _, g in sorted(groups.items()) for c in g]
    theta = _fit(k, data)
    participants = sorted({p for p, _ in groups})
    sets = sorted({s for _, s in groups})
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_bootstrap):
        cp = dict(zip(*np.unique(rng.choice(len(participants), len(participants)), return_counts=True)))
        cs = dict(zip(*np.unique(rng.choice(len(sets), len(sets)), return_counts=True)))
        pi = {p: cp.get(i, 0) for i, p in enumerate(participants)}
        si = {s: cs.get(i, 0) for i, s in enumerate(sets)}
        sample = [c for (p, s), g in sorted(groups.items()) for _ in range(pi[p] * si[s]) for c in g]
        if sample:
            boot.append(_fit(k, sample))
    b = np.asarray(boot)
    probs = np.exp(theta) / np.exp(theta).sum()
    return {"model": "Luce (top-1 Plackett-Luce), choix.ilsr_top1; theta centred; two-way cluster bootstrap "
                     f"({len(boot)} resamples of participants and sets)",
            "n_choices": len(data),
            "theta": {m: {"value": float(theta[i]), "ci95": [float(np.percentile(b[:, i], 2.5)),
                                                              float(np.percentile(b[:, i], 97.5))]}
                      for i, m in enumerate(methods)},
            "p_chosen_all_shown": {m: float(probs[i]) for i, m in enumerate(methods)}}


def _option_records(rows: list[dict], methods: list[str], question: str) -> list[dict]:
    """One record per option shown on the regular screens of ``question``: chosen or not, with its participant ×
    method and set × method groups."""
    records = []
    for r in sorted(rows, key=_row_key):
        if r["question"] != question or r["kind"] != "regular" or r["chosen"] not in methods:
            continue
        for m in r["order"]:
            if m == BROKEN or m not in methods:
                continue
            records.append({"y": int(m == r["chosen"]), "method": m,
                            "pm": f"{r['participant']}:{m}", "sm": f"{r['set']}:{m}"})
    return records


def mixed_model(rows: list[dict], methods: list[str], question: str) -> dict:
    """Fixed effect (log-odds of being chosen) per method with 95% credible intervals, and the SDs of the participant × method and set × method random intercepts."""
    import pandas as pd
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    records = _option_records(rows, methods, question)
    if not records:
        return {}
    df = pd.DataFrame.from_records(records)
    df["method"] = pd.Categorical(df["method"], categories=methods)
    model = BinomialBayesMixedGLM.from_formula("y ~ 0 + C(method)",
                                               {"participant": "0 + C(pm)", "set": "0 + C(sm)"}, df)
    fit = model.fit_vb()
    names = list(model.exog_names)
    mean, sd = np.asarray(fit.fe_mean), np.asarray(fit.fe_sd)
    fixed = {}
    r4 = lambda x: round(float(x), 4)  # noqa: E731 - the VB optimum moves by ~1e-7 between runs (threaded BLAS)
    for m in methods:
        j = names.index(f"C(method)[{m}]")
        fixed[m] = {"value": r4(mean[j]), "ci95": [r4(mean[j] - 1.96 * sd[j]), r4(mean[j] + 1.96 * sd[j])]}
    vc = {name: r4(np.exp(v)) for name, v in zip(model.vcp_names, np.asarray(fit.vcp_mean))}
    return {"model": "mixed-effects logistic (statsmodels BinomialBayesMixedGLM, variational Bayes): y = chosen, per "
                     "option shown; fixed: method (positions are randomised by the design); random: participant x method, "
                     "set x method. Binary "
                     "likelihood for a one-of-k choice: intervals approximate",
            "n_rows": len(df), "fixed_log_odds": fixed,
            "random_effect_sd": {"participant x method": vc.get("participant"), "set x method": vc.get("set")}}
