"""What keeps the study blind: opaque per-participant identifiers, and the response file that carries only them.

A participant never sees a method name, the kind of a screen (regular, repeat, attention check) or an
identifier another participant also sees. Every option on every screen, and every content and style
image, is named by a random identifier of its own (:func:`new_ids`), recorded in the researcher's plan
(``plan.json``, which never ships to participants). The server maps the identifiers back to methods
(served mode); a static participant's file holds only identifiers (:data:`BLIND_COLUMNS`) and the tally
decodes it with the plan (:func:`decode_blind`), reporting every identifier that does not belong to
that participant's screen instead of guessing.

Identifiers are hexadecimal from :mod:`secrets`, so they cannot be guessed or derived from the plan's
seed, and any that would contain a method's name (or ``broken``) as a substring is drawn again, so a
crawler looking for names finds none by accident.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterable

#: the columns of the file a static participant downloads: nothing but opaque identifiers (and, optional, the
#: page's ``intro_times``: when the consent, instructions and practice screens went up and were left)
BLIND_COLUMNS = ["participant", "screen", "question", "chosen_option", "shown_at", "answered_at"]


def new_ids(n: int, taken: set[str], forbidden: Iterable[str], nbytes: int = 8) -> list[str]:
    """``n`` fresh identifiers, none in ``taken`` (updated) and none containing a ``forbidden`` word."""
    words = [w.lower() for w in forbidden if w]
    out = []
    while len(out) < n:
        candidate = secrets.token_hex(nbytes)
        if candidate in taken or any(w in candidate for w in words):
            continue
        taken.add(candidate)
        out.append(candidate)
    return out


def new_token(forbidden: Iterable[str]) -> str:
    """An invite token (URL-safe, 128 bits) that contains no forbidden word in any letter case."""
    words = [w.lower() for w in forbidden if w]
    while True:
        token = secrets.token_urlsafe(16)
        if not any(w in token.lower() for w in words):
            return token


def screens(plan) -> list[dict]:
    """What a participant's page gets for each screen: their own identifiers and nothing else (no set,
    no kind, no method). ``plan`` is a :class:`survey.design.ParticipantPlan`."""
    return [{"content": plan.refs[str(it.set_id)][0], "style": plan.refs[str(it.set_id)][1], "options": it.options}
            for it in plan.items]


def decode_blind(rows: Iterable[tuple[str, dict]], plans: dict, questions: set[str] | None = None
                 ) -> tuple[list[tuple[str, dict]], list[str]]:
    """Rows of a static participant's file (``(where, row)``, row keyed by :data:`BLIND_COLUMNS`) → ``(where,
    row)`` in the response schema (method chosen, displayed order, set, kind), plus one problem line per row that
    does not match its participant's plan (``plans``: participant id → :class:`survey.design.ParticipantPlan`)."""
    out, problems = [], []
    for where, r in rows:
        participant = (r.get("participant") or "").strip()
        plan = plans.get(participant)
        if plan is None:
            problems.append(f"{where}: unknown participant {participant!r} (not in the study plan)")
            continue
        try:
            screen = int(r["screen"])
        except (TypeError, ValueError):
            problems.append(f"{where}: screen {r.get('screen')!r} is not a number")
            continue
        if not 0 <= screen < len(plan.items):
            problems.append(f"{where}: {participant} has no screen {screen} (the plan has {len(plan.items)})")
            continue
        item = plan.items[screen]
        question, chosen = (r.get("question") or "").strip(), (r.get("chosen_option") or "").strip()
        if questions and question not in questions:
            problems.append(f"{where}: unknown question {question!r}")
            continue
        if chosen not in item.options:
            problems.append(f"{where}: option {chosen!r} was not shown to {participant} on screen {screen}; "
                            "the file does not match this participant's plan (not guessed)")
            continue
        out.append((where, {"participant": participant, "set": str(item.set_id), "kind": item.kind, "question": question,
                    "chosen": item.order[item.options.index(chosen)], "displayed_order": ";".join(item.order),
                    "shown_at": r.get("shown_at", ""), "answered_at": r.get("answered_at", ""), "simulated": "0",
                            "screen": str(screen), "intro_times": r.get("intro_times") or ""}))
    return out, problems
