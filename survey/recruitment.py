"""Participants from a recruitment platform, through one study link.

A participant arrives at ``/join`` with the platform's own parameters:

| platform | participant id | also kept |
|---|---|---|
| Prolific | ``PROLIFIC_PID`` | ``STUDY_ID``, ``SESSION_ID`` |
| MTurk-style | ``workerId`` | ``assignmentId``, ``hitId`` |
| any other | ``pid`` | |

The server (:mod:`survey.server`) gives each new id the next plan of the counterbalanced design that nobody holds
(the same id gets the same plan again, on a reload or another device), a session of its own (a random token: a
participant whose slot was given away cannot write into it), and sends them to the platform's completion URL at the
end with the completion code — another code, or none, for a participant who failed an attention check, as Prolific
allows. What the platform is told is configured in ``survey.recruitment`` (:class:`RecruitmentConfig`).

MTurk shows a HIT's page before it is accepted with ``assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE``: that preview gets
no plan (:attr:`Arrival.preview`).
"""
from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field

#: platform → (its participant-id parameter, the other parameters kept with the answers)
PLATFORMS = {
    "prolific": ("PROLIFIC_PID", ("STUDY_ID", "SESSION_ID")),
    "mturk": ("workerId", ("assignmentId", "hitId")),
    "generic": ("pid", ()),
}
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
#: what a platform id may hold: the platforms' ids are alphanumeric; a few separators for a researcher's own
ID_PATTERN = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")


class ArrivalError(ValueError):
    """A study link without a usable participant id (the page says which parameter is wrong)."""


@dataclass(frozen=True)
class Arrival:
    platform: str
    pid: str
    extras: tuple[tuple[str, str], ...] = ()

    @property
    def preview(self) -> bool:
        return dict(self.extras).get("assignmentId") == MTURK_PREVIEW

    def fields(self) -> dict[str, str]:
        """The values a completion URL template may use: ``{pid}``, ``{platform}`` and each kept parameter."""
        return {"pid": self.pid, "platform": self.platform, **dict(self.extras)}


def arrival_from_query(query: Mapping[str, str]) -> Arrival:
    """The platform and participant id of a ``/join`` request; :class:`ArrivalError` names what is missing or
    malformed."""
    for platform, (id_param, kept) in PLATFORMS.items():
        if id_param in query:
            pid = str(query[id_param]).strip()
            if not ID_PATTERN.fullmatch(pid):
                raise ArrivalError(f"{id_param}: not a participant id (1-128 letters, digits or _.:@-)")
            extras = []
            for k in kept:
                v = str(query.get(k, "")).strip()
                if v and not ID_PATTERN.fullmatch(v):
                    raise ArrivalError(f"{k}: not an identifier (1-128 letters, digits or _.:@-)")
                extras.append((k, v))
            return Arrival(platform, pid, tuple(extras))
    names = ", ".join(p for p, _ in PLATFORMS.values())
    raise ArrivalError(f"this study link carries no participant id (one of {names}); open it from the "
                       "recruitment platform")


@dataclass
class RecruitmentConfig:
    """``survey.recruitment`` in params.yaml.

    ``completion_url``: where a participant goes at the end, a template over ``{code}``, ``{pid}``, ``{platform}``
    and the kept parameters (``{STUDY_ID}``, ``{assignmentId}``, …), e.g. Prolific's
    ``https://app.prolific.com/submissions/complete?cc={code}``. None: a thank-you page, no redirect.
    ``completion_code``: the code of a participant who completed the study; ``excluded_code``: the code of one
    who failed an attention check (None: no code and no redirect; they see a thank-you page).
    ``slot_timeout_minutes``: a plan held by a participant who neither finished nor answered for this long goes
    back to the pool (their answers are kept aside, not counted). ``hash_ids``: the tally reports platform ids as
    salted sha256 (the salt is the plan's private tokens: ids cannot be recovered from the report). ``allowed``: the
    platforms whose study link is accepted — none by default, so nobody can take places with made-up ids unless the
    researcher opens the study to a platform; ``study_id``: the platform's study id, when given, must match."""
    completion_url: str | None = None
    completion_code: str | None = None
    excluded_code: str | None = None
    slot_timeout_minutes: float = 60.0
    hash_ids: bool = True
    allowed: list[str] = field(default_factory=list)   # the platforms whose links are accepted (none: invites only)
    study_id: str | None = None                        # Prolific's STUDY_ID, checked when given

    def __post_init__(self):
        if self.completion_url:
            names = {f for _, f, _, _ in string.Formatter().parse(self.completion_url) if f}
            known = {"code", "pid", "platform"} | {k for _, kept in PLATFORMS.values() for k in kept}
            if names - known:
                raise ValueError(f"survey.recruitment.completion_url: unknown field(s) {sorted(names - known)} "
                                 f"(known: {sorted(known)})")
        if float(self.slot_timeout_minutes) <= 0:
            raise ValueError("survey.recruitment.slot_timeout_minutes: must be positive")
        unknown = set(self.allowed) - set(PLATFORMS)
        if unknown:
            raise ValueError(f"survey.recruitment.allowed: unknown platform(s) {sorted(unknown)} ({sorted(PLATFORMS)})")

    @classmethod
    def from_params(cls, section: Mapping | None) -> RecruitmentConfig:
        section = dict(section or {})
        unknown = set(section) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"survey.recruitment: unknown key(s) {sorted(unknown)} "
                             f"({sorted(cls.__dataclass_fields__)})")
        return cls(**section)

    def completion(self, arrival: Arrival | None, excluded: bool) -> str | None:
        """The URL a participant is sent to at the end (None: stay on the thank-you page)."""
        code = self.excluded_code if excluded else self.completion_code
        if not self.completion_url or arrival is None or (excluded and not self.excluded_code):
            return None
        values = {k: "" for _, kept in PLATFORMS.values() for k in kept} | arrival.fields() | {"code": code or ""}
        return self.completion_url.format(**values)


def hashed_id(platform: str, pid: str, salt: str) -> str:
    """A platform id as it appears in the tally when ``hash_ids``: sha256 of salt, platform and id (16 hex)."""
    return hashlib.sha256(f"{salt}\0{platform}\0{pid}".encode()).hexdigest()[:16]
