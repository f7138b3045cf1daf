"""The user-study plan: who sees which sets, in which order, with which methods where.

The paper's design by default (§4.3): 40 content–style sets, 4 methods (safin, sanet, wct, adain),
2 questions (best stylization; fewest artifacts), 25 participants. Per participant the set order and
the method order inside every set are shuffled with a recorded seed, and the displayed order is stored
with every answer (position bias can be measured). Attention checks (one output replaced by an
obviously broken image, ``BROKEN``) and repeated sets (consistency) are added, both configurable.

The plan is the researcher's private key to the study: besides the orders it holds, per participant,
an opaque identifier for every option on every screen and for every content and style image
(:mod:`survey.blinding`). Participants only ever see those identifiers, never a method name or the
kind of a screen; the plan never ships to them.

This module does not import torch: a study can be planned and tallied on any laptop.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .blinding import new_ids, new_token

BROKEN = "broken"  # the attention-check stand-in method: choosing it fails the check
PRACTICE = -1      # the practice screen's "set" (its images: images/practice/; never counted)

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
    options: list[str] = field(default_factory=list)  # the opaque id of each displayed option, same positions


@dataclass
class ParticipantPlan:
    participant: str     # stable id (p01, p02, ...)
    token: str           # unguessable invite token (secrets.token_urlsafe)
    seed: int
    items: list[Item]
    refs: dict[str, list[str]] = field(default_factory=dict)  # set id -> [content id, style id] (opaque)
    practice: list[str] = field(default_factory=list)  # the practice screen: content, style, then each option

    def image_ids(self) -> dict[str, tuple[int, str]]:
        """Every identifier this participant may request → (set, method or ``content``/``style``); the practice
        screen's images as (:data:`PRACTICE`, ``content``/``style``/``optionN``)."""
        out = {ids[k]: (int(s), role) for s, ids in self.refs.items() for k, role in enumerate(("content", "style"))}
        for item in self.items:
            out.update({i: (item.set_id, m) for i, m in zip(item.options, item.order)})
        out.update({i: (PRACTICE, role) for i, role in zip(self.practice, practice_roles(len(self.practice) - 2))})
        return out


def practice_roles(n_options: int) -> list[str]:
    """The practice screen's images, in the order of :attr:`ParticipantPlan.practice`."""
    return ["content", "style", *(f"option{k}" for k in range(max(0, n_options)))]


def image_file(images: Path, set_id: int, role: str) -> Path:
    """Where a study image lives: ``images/SET/ROLE.png``, the practice screen's in ``images/practice/``."""
    return Path(images) / ("practice" if set_id == PRACTICE else f"{set_id:02d}") / f"{role}.png"


def forbidden_words(cfg: StudyConfig) -> list[str]:
    """What no identifier may contain: the method names and the attention check's name."""
    return [*cfg.methods, BROKEN]


def blind(plan: ParticipantPlan, cfg: StudyConfig, taken: set[str]) -> ParticipantPlan:
    """Give every option of every screen, and every set's content and style, an identifier of its own,
    unique across the whole study (``taken``)."""
    words = forbidden_words(cfg)
    for item in plan.items:
        item.options = new_ids(len(item.order), taken, words)
    plan.refs = {str(s): new_ids(2, taken, words) for s in sorted({it.set_id for it in plan.items})}
    plan.practice = new_ids(2 + len(cfg.methods), taken, words)
    return plan


def plan_participant(cfg: StudyConfig, index: int, token: str | None = None) -> ParticipantPlan:
    seed = cfg.seed * 1_000_003 + index
    rng = random.Random(seed)
    sets = list(range(cfg.n_sets))
    rng.shuffle(sets)
    items = [Item(s, "regular", rng.sample(cfg.methods, len(cfg.methods))) for s in sets]
    # each repeat shows a different set (rng.sample), after its original and in the second half of the screens
    for original in rng.sample(items, min(cfg.n_repeats, cfg.n_sets)):
        pos = rng.randrange(max(len(items) // 2, items.index(original) + 1), len(items) + 1)
        items.insert(pos, Item(original.set_id, "repeat", rng.sample(cfg.methods, len(cfg.methods))))
    for _ in range(cfg.n_attention_checks):
        s = rng.randrange(cfg.n_sets)
        order = rng.sample(cfg.methods, len(cfg.methods))
        order[rng.randrange(len(order))] = BROKEN
        items.insert(rng.randrange(1, len(items) + 1), Item(s, "attention", order))
    return ParticipantPlan(f"p{index + 1:02d}", token or new_token(forbidden_words(cfg)), seed, items)


def make_plan(cfg: StudyConfig) -> list[ParticipantPlan]:
    """Every participant's plan, blinded: the orders are reproducible from ``cfg.seed``; tokens and
    identifiers are random (:mod:`secrets`) and unique across participants."""
    taken: set[str] = set()
    return [blind(plan_participant(cfg, i), cfg, taken) for i in range(cfg.n_participants)]


def save_plan(plans: list[ParticipantPlan], cfg: StudyConfig, path: Path, images: dict[str, str] | None = None) -> Path:
    """Write the plan atomically (it holds the invite tokens: a half-written one would lose the study).
    ``images``: the sha256 of every image of the study (``SET/ROLE.png`` → hex; :func:`survey.study.build_study`);
    None keeps those the file already records. Written here, not with ``safin.io.files``, because ``survey`` does
    not import the torch-side package."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if images is None:
        images = image_hashes(path)
    doc = {"config": asdict(cfg), "participants": [asdict(p) for p in plans]}
    if images:
        doc["images"] = dict(sorted(images.items()))
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(doc, indent=1))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def image_hashes(path: Path) -> dict[str, str]:
    """The sha256 of every study image the plan recorded when it was built (``SET/ROLE.png`` → hex); empty for a
    plan written before images were recorded, or no plan."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    images = doc.get("images") if isinstance(doc, dict) else None
    return dict(images) if isinstance(images, dict) else {}


def load_plan(path: Path) -> tuple[StudyConfig, list[ParticipantPlan]]:
    """The plan; participants written before blinding (no option identifiers) get them now and the plan is
    saved back, with tokens, orders and seeds unchanged, so links already sent out keep working. Participants
    that already have identifiers keep them: their static pages may be out, and their returned files hold them."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        cfg = StudyConfig(**doc["config"])
        plans = [ParticipantPlan(p["participant"], p["token"], p["seed"], [Item(**i) for i in p["items"]],
                                 dict(p.get("refs", {})), list(p.get("practice", []))) for p in doc["participants"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a study plan ({type(e).__name__}: {e})") from None
    unblinded = [p for p in plans if not p.refs or any(len(it.options) != len(it.order) for it in p.items)]
    if unblinded:
        late = {p.participant for p in unblinded}
        taken = {i for p in plans if p.participant not in late for i in p.image_ids()}
        for p in unblinded:
            blind(p, cfg, taken)
        print(f"{path}: {', '.join(p.participant for p in unblinded)} written before blinding; gave their options "
              "opaque identifiers (tokens and orders unchanged; the other participants' identifiers kept)")
    no_practice = [p for p in plans if not p.practice]
    if no_practice:  # a plan from before the practice screen: new identifiers for it, nothing else changed
        taken = {i for p in plans for i in p.image_ids()}
        for p in no_practice:
            p.practice = new_ids(2 + len(cfg.methods), taken, forbidden_words(cfg))
    if unblinded or no_practice:
        save_plan(plans, cfg, path)
    return cfg, plans
