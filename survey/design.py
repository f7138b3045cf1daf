"""The user-study plan: who sees which sets, in which order, with which methods where.

The paper's design by default (§4.3): 40 content–style sets, 4 methods (safin, sanet, wct, adain),
2 questions (best stylization; fewest artifacts), 25 participants. Per participant the set order and
the method order inside every set are shuffled with a recorded seed, and the displayed order is stored
with every answer (position bias can be measured). Attention checks (one output replaced by an
obviously broken image, ``BROKEN``) and repeated sets (consistency) are added, both configurable.

This module does not import torch: a study can be planned and tallied on any laptop.
"""
from __future__ import annotations

import json
import random
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

BROKEN = "broken"  # the attention-check stand-in method: choosing it fails the check

QUESTIONS = {
    "best_stylization": "Which image transfers the style best (colours and textures of the painting)?",
    "fewest_artifacts": "Which image has the fewest unwanted artifacts and distortions?",
}


@dataclass
class StudyConfig:
    methods: list[str] = field(default_factory=lambda: ["safin", "sanet", "wct", "adain"])
    questions: dict[str, str] = field(default_factory=lambda: dict(QUESTIONS))
    n_sets: int = 40
    n_participants: int = 25
    n_attention_checks: int = 2
    n_repeats: int = 2
    seed: int = 0


@dataclass
class Item:
    """One screen: a set (content, style, outputs) shown with methods in ``order``."""
    set_id: int
    kind: str            # "regular" | "repeat" | "attention"
    order: list[str]     # methods left to right (may include BROKEN for attention checks)


@dataclass
class ParticipantPlan:
    participant: str     # stable id (p01, p02, ...)
    token: str           # unguessable invite token (secrets.token_urlsafe)
    seed: int
    items: list[Item]


def plan_participant(cfg: StudyConfig, index: int, token: str | None = None) -> ParticipantPlan:
    seed = cfg.seed * 1_000_003 + index
    rng = random.Random(seed)
    sets = list(range(cfg.n_sets))
    rng.shuffle(sets)
    items = [Item(s, "regular", rng.sample(cfg.methods, len(cfg.methods))) for s in sets]
    for _ in range(min(cfg.n_repeats, cfg.n_sets)):
        original = rng.choice([it for it in items if it.kind == "regular"])
        pos = rng.randrange(len(items) // 2, len(items) + 1)  # repeats come in the second half
        items.insert(pos, Item(original.set_id, "repeat", rng.sample(cfg.methods, len(cfg.methods))))
    for _ in range(cfg.n_attention_checks):
        s = rng.randrange(cfg.n_sets)
        order = rng.sample(cfg.methods, len(cfg.methods))
        order[rng.randrange(len(order))] = BROKEN
        items.insert(rng.randrange(1, len(items) + 1), Item(s, "attention", order))
    return ParticipantPlan(f"p{index + 1:02d}", token or secrets.token_urlsafe(16), seed, items)


def make_plan(cfg: StudyConfig) -> list[ParticipantPlan]:
    return [plan_participant(cfg, i) for i in range(cfg.n_participants)]


def save_plan(plans: list[ParticipantPlan], cfg: StudyConfig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": asdict(cfg), "participants": [asdict(p) for p in plans]}, indent=1))
    return path


def load_plan(path: Path) -> tuple[StudyConfig, list[ParticipantPlan]]:
    doc = json.loads(Path(path).read_text())
    cfg = StudyConfig(**doc["config"])
    plans = [ParticipantPlan(p["participant"], p["token"], p["seed"], [Item(**i) for i in p["items"]])
             for p in doc["participants"]]
    return cfg, plans
