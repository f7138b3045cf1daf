"""The one response schema (long format, one row per participant × screen × question) and its validation.

Columns of the CSV, in order:

| column | meaning |
|---|---|
| participant | participant id (p01, ...) |
| set | evaluation set (pair) id, 0-based |
| kind | regular / repeat / attention |
| question | best_stylization / fewest_artifacts |
| chosen | the method the participant picked (or ``broken`` on an attention check) |
| displayed_order | the methods as shown, left to right, joined by ``;`` |
| shown_at, answered_at | ISO-8601 timestamps (UTC) |
| simulated | ``1`` for synthetic responses (``safin survey simulate``), else ``0`` |
| screen | the screen's position in the participant's plan, 0-based (optional: files written before it lack it) |
| platform, platform_id | optional: the recruitment platform and the participant's id there (the server's export) |
| intro_times | optional: JSON ``{screen: [shown_at, done_at]}`` of the consent, instructions and practice screens |

A static participant's file holds opaque identifiers instead (``participant, screen, question,
chosen_option, shown_at, answered_at`` and the page's ``intro_times``; :mod:`survey.blinding`): :func:`read_responses` decodes it into
this schema with the study plan, and reports every row that does not match the participant's plan.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from .blinding import BLIND_COLUMNS, decode_blind

COLUMNS = ["participant", "set", "kind", "question", "chosen", "displayed_order", "shown_at", "answered_at", "simulated",
           "screen"]
KINDS = {"regular", "repeat", "attention"}


class ResponseError(ValueError):
    """A response file that does not follow the schema."""


@dataclass
class Responses:
    rows: list[dict]
    problems: list[str] = field(default_factory=list)   # rows dropped, with the reason

    @property
    def simulated(self) -> bool:
        return any(r["simulated"] for r in self.rows)


def read_responses(paths: list[Path], questions: set[str] | None = None,
                   participants: set[str] | None = None, plans: dict | None = None) -> Responses:
    """Read and validate one or more CSV files (server export and/or static-form files).

    ``plans`` (participant id → :class:`survey.design.ParticipantPlan`) decodes blinded files (a static
    participant's identifiers); without it such a file is skipped and reported, never guessed.

    Nothing is dropped silently and nothing crashes: a file that cannot be read (not UTF-8, not the
    schema's columns) is skipped and reported with its name; a row that breaks the schema is dropped
    and reported with file, line and reason — a truncated row, an unreadable value, an unknown
    participant (when ``participants``, the plan's ids, is given), an unknown question, a chosen method
    that was not displayed. Exact duplicate answers (the same participant, set, kind and question twice)
    keep the first and are reported.
    """
    rows, problems, seen = [], [], set()
    for path in paths:
        try:
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                header = set(reader.fieldnames or [])
                if set(BLIND_COLUMNS[:4]) <= header and "chosen" not in header:  # a static participant's file
                    if plans is None:
                        problems.append(f"{path}: holds a static participant's opaque identifiers; the study's "
                                        "plan.json is needed to decode them and was not found; file skipped")
                        continue
                    blind = []
                    for line, r in enumerate(reader, start=2):
                        if None in r.values() or None in r:
                            problems.append(f"{path}:{line}: truncated or malformed row")
                        else:
                            blind.append((f"{path}:{line}", r))
                    numbered, bad = decode_blind(blind, plans, questions)
                    problems.extend(bad)
                else:
                    missing = set(COLUMNS[:6]) - header
                    if missing:
                        problems.append(f"{path}: missing column(s) {sorted(missing)}; expected {COLUMNS}; "
                                        "file skipped")
                        continue
                    numbered = ((f"{path}:{line}", r) for line, r in enumerate(reader, start=2))
                for where, r in numbered:
                    problem, row = _check_row(r, questions, participants)
                    if problem:
                        problems.append(f"{where}: {problem}")
                        continue
                    # the screen tells two attention checks (or repeats) of one set apart; files without it
                    # fall back to the set and kind
                    key = (row["participant"], row["question"],
                           row["screen"] if row["screen"] is not None else (row["set"], row["kind"]))
                    if key in seen:
                        problems.append(f"{where}: duplicate answer of {row['participant']} to set {row['set']} "
                                        f"({row['kind']}, {row['question']}); the first is kept")
                        continue
                    seen.add(key)
                    rows.append(row)
        except (UnicodeDecodeError, csv.Error, OSError) as e:
            problems.append(f"{path}: unreadable ({type(e).__name__}: {e}); rows after the problem skipped")
    return Responses(rows, problems)


def _intro_times(value) -> dict:
    """The export's ``intro_times`` (JSON ``{screen: [shown_at, done_at]}``); ``{}`` when absent or unreadable (the
    times are a report, never a vote)."""
    import json

    try:
        got = json.loads(value) if str(value or "").strip() else {}
    except ValueError:
        return {}
    if not isinstance(got, dict):
        return {}
    return {str(k): [str(t) for t in v] for k, v in got.items() if isinstance(v, list) and len(v) == 2}


def _check_row(r: dict, questions, participants) -> tuple[str | None, dict | None]:
    """(problem, None) or (None, the parsed row)."""
    if None in r.values() or None in r:
        n = sum(v is not None for k, v in r.items() if k is not None)
        return (f"truncated or malformed row ({n} of {len(r) - (None in r)} fields)" if None in r.values()
                else "more fields than columns"), None
    try:
        order = [m for m in r["displayed_order"].split(";") if m]
        row = {"participant": r["participant"].strip(), "set": int(r["set"]), "kind": r["kind"].strip(),
               "question": r["question"].strip(), "chosen": r["chosen"].strip(), "order": order,
               "shown_at": r.get("shown_at", ""), "answered_at": r.get("answered_at", ""),
               "simulated": str(r.get("simulated", "0")).strip() in ("1", "true", "True"),
               "screen": int(r["screen"]) if str(r.get("screen") or "").strip() else None,
               "platform": str(r.get("platform") or "").strip(), "platform_id": str(r.get("platform_id") or "").strip(),
               "intro_times": _intro_times(r.get("intro_times"))}
    except (ValueError, KeyError, AttributeError) as e:
        return f"unreadable row ({e})", None
    if not row["participant"]:
        return "no participant id", None
    if participants is not None and row["participant"] not in participants:
        return f"unknown participant {row['participant']!r} (not in the study plan)", None
    if row["kind"] not in KINDS:
        return f"kind {row['kind']!r} is not one of {sorted(KINDS)}", None
    if questions and row["question"] not in questions:
        return f"unknown question {row['question']!r}", None
    if row["chosen"] not in row["order"]:
        return f"chosen {row['chosen']!r} was not displayed ({row['order']})", None
    return None, row


def write_responses(rows: list[dict], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            out = {k: r.get(k, "") for k in COLUMNS}
            out["displayed_order"] = ";".join(r["order"]) if "order" in r else r.get("displayed_order", "")
            out["simulated"] = "1" if r.get("simulated") else "0"
            w.writerow(out)
    return path
