"""The participant's page: one HTML file with inline CSS and JS, used by the server and the static export.

Per screen: the content and style on top, the outputs large and side by side (2x2 on a phone), both
questions below. Click or press 1–4 to answer the active question; Enter / → for the next screen,
← for the previous one; double-click an output (or press Z) to zoom it to full size. A progress bar
shows how far the participant is. Answers are sent as they are given (served mode) or kept in the
browser's localStorage and downloaded as a CSV at the end (static mode); either way closing the
browser and coming back resumes where the participant stopped.
"""
from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

#: the page templates (package data under ``survey/templates``), HTML-escaped by default
TEMPLATES = Environment(loader=PackageLoader("survey", "templates"), autoescape=select_autoescape(["html"]),
                        keep_trailing_newline=True)


def render_page(config: dict) -> str:
    """The page with ``config`` embedded (mode, token, api, images, questions; items in static mode).
    Jinja2's ``tojson`` escapes ``<``, ``>``, ``&`` and ``'``, so no value can close the script element."""
    return TEMPLATES.get_template("participant.html").render(config=config)


def thank_you() -> str:
    return TEMPLATES.get_template("thank_you.html").render()


def message_page(title: str, text: str) -> str:
    """A page with one message (the study link's errors, a full study, an expired session), escaped."""
    return TEMPLATES.get_template("message.html").render(title=title, text=text)


def paragraphs(text: str) -> list[str]:
    """Plain text → paragraphs (separated by blank lines; lines inside one joined)."""
    return [" ".join(block.split()) for block in text.replace("\r\n", "\n").split("\n\n") if block.strip()]


def intro_texts(consent: str | None = None, instructions: str | None = None) -> dict[str, list[str]]:
    """The consent and instructions screens' paragraphs: from the researcher's plain-text files (``survey.consent``,
    ``survey.instructions``), else the defaults in ``survey/templates``. An unreadable or empty file is an error
    naming it."""
    from importlib.resources import files

    out = {}
    for name, path in (("consent", consent), ("instructions", instructions)):
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise ValueError(f"{path}: the {name} text cannot be read ({type(e).__name__}: {e})") from None
        else:
            text = files("survey").joinpath("templates", f"{name}.txt").read_text(encoding="utf-8")
        out[name] = paragraphs(text)
        if not out[name]:
            raise ValueError(f"{path}: the {name} text is empty")
    return out


def intro(plan, texts: dict[str, list[str]]) -> dict:
    """What the page shows before the study: the consent and instructions paragraphs, and the practice screen as
    the participant's own identifiers (content, style, options; :attr:`survey.design.ParticipantPlan.practice`)."""
    ids = list(plan.practice)
    return {"consent": texts["consent"], "instructions": texts["instructions"],
            "practice": {"content": ids[0], "style": ids[1], "options": ids[2:]} if len(ids) > 2 else None}
