"""Synthetic responses from a documented model, so the tally runs end to end before a real study.

Model (multinomial logit), for participant p, set s, question q and the methods m shown:

    utility(p, s, q, m) = beta[q][m] + u[p, m] + v[s, m] + position_bias[position of m] + Gumbel noise

with u ~ N(0, participant_sd²) (taste differences between participants), v ~ N(0, set_sd²) (some
sets favour some methods) and the Gumbel noise making the choice a softmax. A participant is
careless with probability ``careless``: they pick uniformly at random, attention checks included.
The *population* preference, the quantity the tally estimates, is the expected vote share over
participants and sets: :func:`population_shares` computes it by Monte Carlo. Every row is marked
``simulated``.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from .design import BROKEN, ParticipantPlan, StudyConfig


@dataclass
class SimulationModel:
    #: preference per question and method (log-odds). **Empty by default: no method is preferred**, so the
    #: pipeline's SIMULATED Fig. 7 cannot redraw the paper's conclusion; effects are inputs of the tests and
    #: of the power analysis (``survey.power``), never of the default study.
    beta: dict[str, dict[str, float]] = field(default_factory=dict)
    participant_sd: float = 0.5
    set_sd: float = 0.5
    position_bias: tuple[float, ...] = (0.15, 0.0, 0.0, -0.05)
    careless: float = 0.1
    seed: int = 1


def _choose(rng, model: SimulationModel, question: str, order: list[str], u: dict, v: dict) -> str:
    util = []
    for pos, m in enumerate(order):
        if m == BROKEN:
            util.append(-6.0)  # an attentive participant practically never picks the broken image
            continue
        util.append(model.beta.get(question, {}).get(m, 0.0) + u[m] + v[m]
                    + model.position_bias[pos % len(model.position_bias)])
    util = np.asarray(util) + rng.gumbel(size=len(order))
    return order[int(np.argmax(util))]


def simulate(plans: list[ParticipantPlan], cfg: StudyConfig, model: SimulationModel) -> list[dict]:
    rng = np.random.default_rng(model.seed)
    set_effects = {s: {m: rng.normal(0, model.set_sd) for m in cfg.methods} for s in range(cfg.n_sets)}
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    rows = []
    for plan in plans:
        u = {m: rng.normal(0, model.participant_sd) for m in cfg.methods}
        careless = rng.random() < model.careless
        t = start
        for screen, item in enumerate(plan.items):
            for q in cfg.questions:
                shown = t
                t += dt.timedelta(seconds=float(rng.uniform(3, 15)))
                chosen = (item.order[rng.integers(len(item.order))] if careless
                          else _choose(rng, model, q, item.order, u, set_effects[item.set_id]))
                rows.append({"participant": plan.participant, "set": item.set_id, "kind": item.kind, "question": q,
                             "chosen": chosen, "order": list(item.order), "shown_at": shown.isoformat(),
                             "answered_at": t.isoformat(), "simulated": True,
                             "screen": screen})
    return rows


def population_shares(model: SimulationModel, methods: list[str], n_participants: int = 4000,
                      n_sets: int = 400, seed: int = 12345,
                      questions: tuple[str, ...] = ("best_stylization", "fewest_artifacts")) -> dict[str, dict[str, float]]:
    """Expected vote shares of attentive participants over random participants, sets and orders."""
    rng = np.random.default_rng(seed)
    out = {}
    k = len(methods)
    for q in dict.fromkeys([*questions, *model.beta]):
        beta = model.beta.get(q, {})
        b = np.array([beta.get(m, 0.0) for m in methods])  # a method the model does not name: no preference
        u = rng.normal(0, model.participant_sd, (n_participants, 1, k))
        v = rng.normal(0, model.set_sd, (1, n_sets, k))
        # a random display order: each method lands on each position equally often
        pos = np.array([rng.permutation(k) for _ in range(n_sets)])[None]          # (1, S, k)
        bias = np.asarray(model.position_bias)[pos % len(model.position_bias)]
        logits = b + u + v + bias
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        shares = p.mean(axis=(0, 1))
        out[q] = {m: float(s) for m, s in zip(methods, shares)}
    return out
