"""Power analysis of a top-1-of-k study, before it is run: how many participants and sets detect a given
difference in preference between two methods.

Studies are simulated from :class:`survey.simulate.SimulationModel`'s choice model (method preference +
participant and set effects + position bias + Gumbel noise; attentive participants, since the careless are
excluded before the tally), here vectorised over participants, sets and simulations. A study *detects* the
difference when the two-way cluster-bootstrap 95% interval of share(A) − share(B) — the interval the tally
reports — lies above 0. Power = the fraction of simulated studies that detect it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .simulate import SimulationModel
from .tally import cluster_bootstrap


@dataclass
class PowerConfig:
    methods: list[str]
    better: str = "safin"               # A: the method given the advantage
    than: str = "sanet"                 # B
    effect: float = 0.3                 # A's preference over B (log-odds; every other method 0)
    participants: list[int] = field(default_factory=lambda: [10, 25, 50, 100])
    sets: list[int] = field(default_factory=lambda: [20, 40, 80])
    simulations: int = 200
    bootstrap: int = 200
    target: float = 0.8
    seed: int = 0


def simulate_votes(model: SimulationModel, methods: list[str], question: str, n_participants: int, n_sets: int,
                   rng: np.random.Generator) -> np.ndarray:
    """One simulated study's votes V[p, s, m] (every method shown on every screen, random order)."""
    k = len(methods)
    beta = np.array([model.beta.get(question, {}).get(m, 0.0) for m in methods])
    u = rng.normal(0, model.participant_sd, (n_participants, 1, k))
    v = rng.normal(0, model.set_sd, (1, n_sets, k))
    pos = np.argsort(rng.random((n_participants, n_sets, k)), axis=-1)  # each method's position on the screen
    bias = np.asarray(model.position_bias)[pos % len(model.position_bias)]
    util = beta + u + v + bias + rng.gumbel(size=(n_participants, n_sets, k))
    votes = np.zeros((n_participants, n_sets, k))
    np.put_along_axis(votes, util.argmax(-1)[..., None], 1.0, axis=-1)
    return votes


def _detects(votes: np.ndarray, a: int, b: int, n_boot: int, rng: np.random.Generator) -> bool:
    shares = cluster_bootstrap(votes, n_boot, int(rng.integers(2 ** 32)))  # the tally's own interval
    return bool(np.percentile(shares[:, a] - shares[:, b], 2.5) > 0)


def power_analysis(cfg: PowerConfig, base: SimulationModel | None = None, question: str = "best_stylization",
                   design: tuple[int, int] | None = None) -> dict:
    """Power on the grid ``participants`` × ``sets`` (and at ``design``, e.g. the paper's 25 × 40), and the
    smallest grid design reaching ``target`` for each number of sets."""
    base = base or SimulationModel()
    model = SimulationModel(beta={question: {cfg.better: cfg.effect / 2, cfg.than: -cfg.effect / 2}},
                            participant_sd=base.participant_sd, set_sd=base.set_sd, position_bias=base.position_bias,
                            careless=0.0, seed=base.seed)
    a, b = cfg.methods.index(cfg.better), cfg.methods.index(cfg.than)
    rng = np.random.default_rng(cfg.seed)
    points = sorted({(p, s) for p in cfg.participants for s in cfg.sets} | ({tuple(design)} if design else set()))
    power = {}
    for p, s in points:
        hits = sum(_detects(simulate_votes(model, cfg.methods, question, p, s, rng), a, b, cfg.bootstrap, rng)
                   for _ in range(cfg.simulations))
        power[(p, s)] = hits / cfg.simulations
    needed = {}
    for s in cfg.sets:
        ok = [p for p in cfg.participants if power[(p, s)] >= cfg.target]
        needed[str(s)] = min(ok) if ok else None
    se = lambda x: float(np.sqrt(x * (1 - x) / cfg.simulations))  # noqa: E731 - Monte Carlo error of a power
    return {"question": question, "better": cfg.better, "than": cfg.than, "effect_log_odds": cfg.effect,
            "model": {"participant_sd": model.participant_sd, "set_sd": model.set_sd,
                      "position_bias": list(model.position_bias), "careless": "excluded before the tally"},
            "simulations": cfg.simulations, "bootstrap": cfg.bootstrap, "target": cfg.target,
            "grid": [{"participants": p, "sets": s, "power": power[(p, s)], "mc_se": se(power[(p, s)])}
                     for p, s in points],
            "design": ({"participants": design[0], "sets": design[1], "power": power[tuple(design)],
                        "mc_se": se(power[tuple(design)])} if design else None),
            "participants_needed_for_target": needed}
