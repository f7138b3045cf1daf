"""A study's preregistration: what will be done, written down before any answer exists, and checked at the tally.

``safin survey preregister`` writes one JSON file (``survey.preregistration``) holding

- the **design** (methods, questions, sets, participants, attention checks, repeats, seed) and, once the study is
  built, a digest of its plan's screens (who sees which sets in which order; not the tokens) and of its images;
- the **power analysis** of that design (its settings and results);
- the **exclusion rules** (:func:`survey.tally.exclusion_rules`);
- the **planned tests** (the tally's analyses, their settings and the decision rule of the study's claims),

and beside it ``FILE.sha256``, the file's sha256, to be deposited where the researcher registers (OSF, AsPredicted):
the digest shows later that the file was not edited. The tally (:func:`check`) recomputes every registered part from
the study it analyses and reports whether it matches, listing each difference, and whether the file still has its
registered sha256.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

#: the parts of a registration the tally compares (the rest — when, the power results — is recorded, not compared)
COMPARED = ("design", "plan_sha256", "images_sha256", "exclusion_rules", "planned_tests", "power_settings")


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def plan_digest(plans) -> str:
    """sha256 of every participant's screens (set, kind, displayed order) — the counterbalancing, without the
    tokens and identifiers that stay private."""
    return digest([[p.participant, [[it.set_id, it.kind, it.order] for it in p.items]] for p in plans])


def write(doc: dict, path: Path) -> str:
    """Write the registration and ``PATH.sha256``; returns the sha256. Refuses to overwrite a registration."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path}: a registration exists (sha256 in {path}.sha256); a registration is never "
                              "rewritten: move it away to register a new study")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps({"registered_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **doc},
                       indent=1, sort_keys=True) + "\n").encode()
    sha = hashlib.sha256(data).hexdigest()
    path.write_bytes(data)
    Path(f"{path}.sha256").write_text(f"{sha}  {path.name}\n")
    return sha


def check(path: Path, current: dict) -> dict:
    """``{"file", "sha256", "unchanged", "matches", "differences"}``: the registration against the ``current`` study
    (the same keys as the registration; see :data:`COMPARED`). ``unchanged``: the file still has the sha256
    written beside it when it was registered."""
    path = Path(path)
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    side = Path(f"{path}.sha256")
    words = side.read_text().split() if side.exists() else []
    recorded = words[0] if words else None
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise ValueError(f"{path}: not a registration ({e})") from None
    differences = []
    for key in COMPARED:
        if key not in doc and key not in current:
            continue
        if json.dumps(doc.get(key), sort_keys=True) != json.dumps(current.get(key), sort_keys=True):
            differences.append(key if not isinstance(doc.get(key), dict) else
                               f"{key}: " + ", ".join(sorted(k for k in set(doc.get(key) or {}) | set(current.get(key) or {})
                                                             if (doc.get(key) or {}).get(k) != (current.get(key) or {}).get(k))))
    return {"file": str(path), "sha256": sha, "registered_sha256": recorded, "unchanged": recorded == sha,
            "registered_at": doc.get("registered_at"), "matches": not differences and recorded == sha,
            "differences": differences}
