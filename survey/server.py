"""``safin survey serve``: a small web app that runs the study blind and stores answers in SQLite.

- One unguessable invite link per participant (``/s/TOKEN``; tokens from :mod:`secrets`, in the plan).
- Blind: nothing a participant can reach names a method or marks a screen's kind. The page, the state
  API and the answer API speak only the participant's own opaque identifiers (``survey.blinding``);
  images are served as ``/img/TOKEN/ID.png`` from bytes without metadata, with no ETag or Last-Modified
  (which would be the same for two participants). The server maps identifiers back to methods, so the
  database and the export hold the method chosen and the displayed order.
- Answers are saved as they are given, one row per (participant, screen, question) — answering again
  replaces the answer, never duplicates it; closing the browser and coming back resumes.
- A participant can only read and write their own answers (the token selects them), and only an option
  displayed on that screen is accepted. Request bodies are limited to 4 KiB.
- Only the study's own images are served, by identifier: no path from the request reaches the disk.
- ``/admin/export`` (CSV in the response schema) and ``/admin/status`` require the admin token
  (header ``X-Admin-Token`` or ``?token=``), compared in constant time.
"""
from __future__ import annotations

import csv
import hmac
import io
import json
import secrets
import sqlite3
import threading
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from .blinding import screens
from .design import BROKEN, image_file, load_plan
from .form import intro, intro_texts, message_page, render_page, thank_you
from .recruitment import ArrivalError, RecruitmentConfig, arrival_from_query
from .responses import COLUMNS

MAX_BODY = 4096

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
  participant TEXT NOT NULL, item INTEGER NOT NULL, question TEXT NOT NULL, set_id INTEGER NOT NULL,
  kind TEXT NOT NULL, chosen TEXT NOT NULL, displayed_order TEXT NOT NULL, shown_at TEXT, answered_at TEXT,
  PRIMARY KEY (participant, item, question));
CREATE TABLE IF NOT EXISTS finished (participant TEXT PRIMARY KEY, at TEXT);
CREATE TABLE IF NOT EXISTS arrivals (
  id INTEGER PRIMARY KEY, platform TEXT NOT NULL, pid TEXT NOT NULL, participant TEXT NOT NULL,
  session TEXT NOT NULL UNIQUE, extras TEXT NOT NULL, arrived_at REAL NOT NULL, last_seen REAL NOT NULL,
  state TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS one_active_slot_per_id ON arrivals (platform, pid) WHERE state = 'active';
CREATE UNIQUE INDEX IF NOT EXISTS one_holder_per_slot ON arrivals (participant) WHERE state = 'active';
CREATE TABLE IF NOT EXISTS consents (participant TEXT PRIMARY KEY, decision TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS released_consents (participant TEXT NOT NULL, decision TEXT NOT NULL, at TEXT NOT NULL,
  arrival INTEGER NOT NULL, released_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS intro_times (participant TEXT NOT NULL, screen TEXT NOT NULL, shown_at TEXT NOT NULL,
  done_at TEXT NOT NULL, PRIMARY KEY (participant, screen));
CREATE TABLE IF NOT EXISTS released_intro_times (participant TEXT NOT NULL, screen TEXT NOT NULL, shown_at TEXT NOT NULL,
  done_at TEXT NOT NULL, arrival INTEGER NOT NULL, released_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS released_answers (
  participant TEXT NOT NULL, item INTEGER NOT NULL, question TEXT NOT NULL, set_id INTEGER NOT NULL,
  kind TEXT NOT NULL, chosen TEXT NOT NULL, displayed_order TEXT NOT NULL, shown_at TEXT, answered_at TEXT,
  arrival INTEGER NOT NULL, released_at REAL NOT NULL);
"""

#: the export's columns after the response schema's: who the participant is on their platform, and when they saw and
#: left the screens before the study (``intro_times``: JSON, ``{screen: [shown_at, done_at]}`` for :data:`INTRO_SCREENS`)
PLATFORM_COLUMNS = ["platform", "platform_id", "platform_extras", "consented_at", "intro_times"]
#: the screens before the study whose times are kept (none of them counted in the tally's votes)
INTRO_SCREENS = ("consent", "instructions", "practice")


def _intro_times(data) -> tuple[str, str] | None:
    """``(shown_at, done_at)`` from a page's JSON body (strings, at most 40 characters each), or None."""
    if not isinstance(data, dict):
        return None
    shown, done = (str(data.get(k) or "")[:40] for k in ("shown_at", "done_at"))
    return (shown, done) if shown and done else None


class Store:
    """SQLite storage; one connection per thread, WAL mode so a restart loses nothing committed."""

    def __init__(self, path: Path):
        self.path = str(path)
        self._local = threading.local()
        with self._conn() as c:
            c.executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def save(self, participant: str, item: int, question: str, set_id: int, kind: str, chosen: str,
             order: list[str], shown_at: str, answered_at: str, session: str | None = None) -> bool:
        """Store one answer (answering again replaces it). ``session``: a platform session, checked to still hold
        the plan in the same transaction (False: it expired or withdrew; nothing written)."""
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            if session is not None and c.execute("SELECT 1 FROM arrivals WHERE session=? AND state='active' AND "
                                                 "participant=?", (session, participant)).fetchone() is None:
                c.execute("ROLLBACK")
                return False
            c.execute(
                "INSERT INTO answers VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(participant, item, question) DO UPDATE SET "
                "chosen=excluded.chosen, shown_at=excluded.shown_at, answered_at=excluded.answered_at",
                (participant, item, question, set_id, kind, chosen, ";".join(order), shown_at, answered_at))
            c.execute("COMMIT")
            return True
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def answers(self, participant: str) -> dict[str, str]:
        rows = self._conn().execute("SELECT item, question, chosen FROM answers WHERE participant=?", (participant,))
        return {f"{i}|{q}": c for i, q, c in rows}

    def finish(self, participant: str, at: str) -> None:
        self._conn().execute("INSERT OR REPLACE INTO finished VALUES (?,?)", (participant, at))

    def intro(self, participant: str, screen: str, shown_at: str, done_at: str) -> None:
        """When ``participant`` saw screen ``screen`` (one of :data:`INTRO_SCREENS`) and left it (the page's clock,
        ISO-8601, as for answers); the last visit is kept."""
        self._conn().execute("INSERT OR REPLACE INTO intro_times VALUES (?,?,?,?)", (participant, screen, shown_at,
                                                                                    done_at))

    def intro_times(self) -> dict[str, dict[str, list[str]]]:
        """``{participant: {screen: [shown_at, done_at]}}``."""
        out: dict[str, dict[str, list[str]]] = {}
        for participant, screen, shown, done in self._conn().execute("SELECT * FROM intro_times"):
            out.setdefault(participant, {})[screen] = [shown, done]
        return out

    def export_rows(self) -> list[tuple]:
        intro = self.intro_times()
        return [(*row, json.dumps(intro[row[0]], sort_keys=True) if row[0] in intro else "")
                for row in self._export_rows()]

    def _export_rows(self) -> list[tuple]:
        return list(self._conn().execute(
            "SELECT a.participant, a.set_id, a.kind, a.question, a.chosen, a.displayed_order, a.shown_at, "
            "a.answered_at, 0, a.item, COALESCE(r.platform, ''), COALESCE(r.pid, ''), COALESCE(r.extras, ''), "
            "COALESCE(k.at, '') FROM answers a "
            "LEFT JOIN arrivals r ON r.participant = a.participant AND r.state = 'active' "
            "LEFT JOIN consents k ON k.participant = a.participant AND k.decision = 'agreed' "
            "ORDER BY a.participant, a.item, a.question"))

    # -- platform arrivals (survey.recruitment) --------------------------------------------------------------
    def assign(self, arrival, order: list[str], now: float, timeout_s: float) -> tuple[str, str] | None:
        """``(participant, session)`` for a platform participant: the slot this id already holds, else the first
        plan of ``order`` nobody holds (no active arrival, no answer, not finished), after returning to the pool
        every slot whose holder neither finished nor was seen for ``timeout_s`` (their answers moved to
        ``released_answers``, kept). None: every slot is taken or in progress. One transaction: two arrivals
        never get one slot."""
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            row = c.execute("SELECT participant, session FROM arrivals WHERE platform=? AND pid=? AND state='active'",
                            (arrival.platform, arrival.pid)).fetchone()
            if row:
                c.execute("UPDATE arrivals SET last_seen=? WHERE session=?", (now, row[1]))
                c.execute("COMMIT")
                return row[0], row[1]
            stale = c.execute("SELECT id, participant FROM arrivals WHERE state='active' AND last_seen < ? AND "
                              "participant NOT IN (SELECT participant FROM finished)", (now - timeout_s,)).fetchall()
            for arrival_id, participant in stale:
                self._release(c, arrival_id, participant, now)
            taken = {r[0] for r in c.execute(
                "SELECT participant FROM arrivals WHERE state='active' UNION SELECT participant FROM answers "
                "UNION SELECT participant FROM finished UNION SELECT participant FROM consents")}
            free = next((p for p in order if p not in taken), None)
            if free is None:
                c.execute("COMMIT")
                return None
            session = secrets.token_urlsafe(16)
            c.execute("INSERT INTO arrivals (platform, pid, participant, session, extras, arrived_at, last_seen, state) "
                      "VALUES (?,?,?,?,?,?,?,'active')", (arrival.platform, arrival.pid, free, session,
                                                          json.dumps(dict(arrival.extras)), now, now))
            c.execute("COMMIT")
            return free, session
        except BaseException:
            c.execute("ROLLBACK")
            raise

    @staticmethod
    def _release(c, arrival_id: int, participant: str, now: float) -> None:
        """Give a platform participant's slot back: their answers and consent kept aside, never counted."""
        for table in ("answers", "consents", "intro_times"):
            c.execute(f"INSERT INTO released_{table} SELECT *, ?, ? FROM {table} WHERE participant=?",
                      (arrival_id, now, participant))
            c.execute(f"DELETE FROM {table} WHERE participant=?", (participant,))
        c.execute("UPDATE arrivals SET state='released' WHERE id=?", (arrival_id,))

    def consent(self, participant: str, decision: str, at: str, session: str | None, now: float) -> None:
        """Record the consent screen's decision; a platform participant who declines frees their slot at once."""
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("INSERT OR REPLACE INTO consents VALUES (?,?,?)", (participant, decision, at))
            if decision == "declined":  # a withdrawal: answers given before are kept aside, never counted
                row = c.execute("SELECT id FROM arrivals WHERE session=? AND state='active'",
                                (session,)).fetchone() if session else None
                if row:
                    self._release(c, row[0], participant, now)  # and the platform slot goes back to the pool
                else:
                    c.execute("INSERT INTO released_answers SELECT *, 0, ? FROM answers WHERE participant=?",
                              (now, participant))
                    c.execute("DELETE FROM answers WHERE participant=?", (participant,))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def held_by_arrival(self, participant: str) -> bool:
        return self._conn().execute("SELECT 1 FROM arrivals WHERE participant=? AND state='active'",
                                    (participant,)).fetchone() is not None

    def consented(self, participant: str) -> bool:
        return self._conn().execute("SELECT 1 FROM consents WHERE participant=? AND decision='agreed'",
                                    (participant,)).fetchone() is not None

    def session(self, token: str) -> tuple[str, str] | None:
        """``(participant, state)`` of a platform session token (None: not one)."""
        row = self._conn().execute("SELECT participant, state FROM arrivals WHERE session=?", (token,)).fetchone()
        return (row[0], row[1]) if row else None

    def touch(self, token: str, now: float) -> None:
        self._conn().execute("UPDATE arrivals SET last_seen=? WHERE session=? AND state='active'", (now, token))

    def arrival_of(self, participant: str):
        """The active platform arrival holding ``participant``'s plan (None: an invited participant)."""
        from .recruitment import Arrival

        row = self._conn().execute("SELECT platform, pid, extras FROM arrivals WHERE participant=? AND state='active'",
                                   (participant,)).fetchone()
        return Arrival(row[0], row[1], tuple(json.loads(row[2]).items())) if row else None

    def failed_attention(self, participant: str, broken: str) -> bool:
        return self._conn().execute("SELECT 1 FROM answers WHERE participant=? AND kind='attention' AND chosen=?",
                                    (participant, broken)).fetchone() is not None

    def counts(self) -> dict:
        c = self._conn()
        return {"answers": c.execute("SELECT COUNT(*) FROM answers").fetchone()[0],
                "participants_started": c.execute("SELECT COUNT(DISTINCT participant) FROM answers").fetchone()[0],
                "participants_finished": c.execute("SELECT COUNT(*) FROM finished").fetchone()[0]}


def create_app(study_dir: Path, db_path: Path | None = None, admin_token: str | None = None,
               recruitment: RecruitmentConfig | None = None, clock=time.time,
               texts: dict[str, list[str]] | None = None, base_path: str = "") -> Starlette:
    """The study's web app. ``recruitment``: platform arrivals at ``/join`` (:mod:`survey.recruitment`); invite
    links (``/s/TOKEN`` of the plan) work either way. ``clock``: seconds, for the slot timeout (tests).
    ``texts``: the consent and instructions screens' paragraphs (:func:`survey.form.intro_texts`).
    ``base_path``: the path the study lives under behind a reverse proxy (``/study``): every URL the app writes
    starts with it, and requests are served whether the proxy strips it or passes it on."""
    base = "/" + base_path.strip("/") if base_path.strip("/") else ""
    study_dir = Path(study_dir).resolve()
    images_root = (study_dir / "images").resolve()
    cfg, plans = load_plan(study_dir / "plan.json")
    by_token = {p.token: p for p in plans}
    by_participant = {p.participant: p for p in plans}
    files = {p.participant: {i: image_file(images_root, set_id, role) for i, (set_id, role) in p.image_ids().items()}
             for p in plans}
    store = Store(Path(db_path or study_dir / "responses.sqlite"))
    admin = admin_token or secrets.token_urlsafe(24)
    recruitment = recruitment or RecruitmentConfig()
    texts = texts or intro_texts()

    def plan_for(request: Request):
        """The plan a token stands for: an invite token of the plan, or an active platform session."""
        token = request.path_params["token"]
        plan = by_token.get(token)
        if plan is not None and store.held_by_arrival(plan.participant):
            return None  # a platform participant holds this plan: its invite link is closed
        if plan is None and len(token) < 64:
            held = store.session(token)
            if held and held[1] == "active":
                store.touch(token, clock())
                plan = by_participant.get(held[0])
        return plan

    def expired(request: Request) -> bool:
        held = store.session(request.path_params["token"][:64])
        return bool(held) and held[1] != "active"

    async def join(request: Request):
        try:
            arrival = arrival_from_query(request.query_params)
        except ArrivalError as e:
            return HTMLResponse(message_page("This study link is incomplete", str(e)), status_code=400)
        if arrival.platform not in recruitment.allowed:
            return HTMLResponse(message_page("This study link is not valid", "this study does not recruit there"),
                                status_code=400)
        if recruitment.study_id and dict(arrival.extras).get("STUDY_ID", recruitment.study_id) != recruitment.study_id:
            return HTMLResponse(message_page("This study link is not valid", "it belongs to another study"),
                                status_code=400)
        if arrival.preview:
            return HTMLResponse(message_page("Preview", "Accept the task to start the study."))
        got = store.assign(arrival, [p.participant for p in plans], clock(), 60 * float(recruitment.slot_timeout_minutes))
        if got is None:
            return HTMLResponse(message_page("The study is full", "Every place in this study is taken. Thank you for "
                                             "your interest; please return the task on your platform."))
        return RedirectResponse(f"{base}/s/{got[1]}", status_code=303)

    async def page(request: Request):
        plan = plan_for(request)
        if plan is None:
            if expired(request):
                return HTMLResponse(message_page("This session has expired", "Your place was given to another "
                                                 "participant after a long pause. Open the study again from your "
                                                 "platform to start anew."), status_code=410)
            return HTMLResponse("<h2>This invitation link is not valid.</h2>", status_code=404)
        token = request.path_params["token"]
        return HTMLResponse(render_page({"mode": "served", "token": token, "api": f"{base}/api/{token}",
                                         "images": f"{base}/img/{token}", "questions": cfg.questions,
                                         "intro": intro(plan, texts)}))

    async def state(request: Request):
        plan = plan_for(request)
        if plan is None:
            return JSONResponse({"error": "unknown token"}, status_code=404)
        answers = {}
        for k, method in store.answers(plan.participant).items():
            item = plan.items[int(k.split("|")[0])]
            answers[k] = item.options[item.order.index(method)]  # back to this participant's identifier
        return JSONResponse({"items": screens(plan), "answers": answers, "consented": store.consented(plan.participant)})

    async def posted(request: Request):
        """``(plan, the body's JSON object or None, None)``, or ``(None, None, the error response)``: the body is read
        first (size-limited), then the token's plan is looked up (the session is checked again at the write)."""
        body = await _limited_body(request)
        if body is None:
            return None, None, JSONResponse({"error": "request too large"}, status_code=413)
        plan = plan_for(request)
        if plan is None:
            return None, None, JSONResponse({"error": "unknown token"}, status_code=404)
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = None
        return plan, data if isinstance(data, dict) else None, None

    async def consent(request: Request):
        plan, data, error = await posted(request)
        if error:
            return error
        decision = (data or {}).get("decision")
        if decision not in ("agreed", "declined"):
            return JSONResponse({"error": "decision must be agreed or declined"}, status_code=400)
        import datetime as dt

        token = request.path_params["token"]
        store.consent(plan.participant, decision, dt.datetime.now(dt.timezone.utc).isoformat(),
                      token if token not in by_token else None, clock())
        times = _intro_times(data)
        if decision == "agreed" and times:   # the consent screen's time (a withdrawal keeps none)
            store.intro(plan.participant, "consent", *times)
        return JSONResponse({"ok": True})

    async def intro_time(request: Request):
        """When the participant saw and left the instructions or the practice screen (never an answer)."""
        plan, data, error = await posted(request)
        if error:
            return error
        screen, times = (data or {}).get("screen"), _intro_times(data)
        if screen not in INTRO_SCREENS[1:] or not times:
            return JSONResponse({"error": f"screen must be one of {list(INTRO_SCREENS[1:])}, with shown_at and "
                                          "done_at"}, status_code=400)
        if not store.consented(plan.participant):
            return JSONResponse({"error": "no consent recorded: times are kept only after consent"}, status_code=403)
        store.intro(plan.participant, screen, *times)
        return JSONResponse({"ok": True})

    async def answer(request: Request):
        plan, data, error = await posted(request)
        if error:
            return error
        try:
            index, question, chosen = int(data["index"]), str(data["question"]), str(data["chosen"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "malformed answer"}, status_code=400)
        if not store.consented(plan.participant):
            return JSONResponse({"error": "no consent recorded: answers are kept only after consent"}, status_code=403)
        if not 0 <= index < len(plan.items):
            return JSONResponse({"error": "no such screen"}, status_code=400)
        if question not in cfg.questions:
            return JSONResponse({"error": "no such question"}, status_code=400)
        item = plan.items[index]
        if chosen not in item.options:
            return JSONResponse({"error": "that option was not displayed on this screen"}, status_code=400)
        method = item.order[item.options.index(chosen)]
        token = request.path_params["token"]
        if not store.save(plan.participant, index, question, item.set_id, item.kind, method, item.order,
                          str(data.get("shown_at", ""))[:40], str(data.get("answered_at", ""))[:40],
                          session=None if token in by_token else token):
            return JSONResponse({"error": "this session has expired"}, status_code=410)
        return JSONResponse({"ok": True})

    async def finish(request: Request):
        plan = plan_for(request)
        if plan is None:
            return JSONResponse({"error": "unknown token"}, status_code=404)
        import datetime as dt

        done = store.answers(plan.participant)
        missing = sum(f"{i}|{q}" not in done for i in range(len(plan.items)) for q in cfg.questions)
        if not store.consented(plan.participant) or missing:
            return JSONResponse({"error": "no consent" if not store.consented(plan.participant) else
                                 f"not finished: {missing} answers missing"}, status_code=409)
        store.finish(plan.participant, dt.datetime.now(dt.timezone.utc).isoformat())
        # the platform's completion URL: its code, or the other code (or none) after a failed attention check
        excluded = store.failed_attention(plan.participant, BROKEN)
        return JSONResponse({"ok": True, "next": recruitment.completion(store.arrival_of(plan.participant), excluded)})

    async def image(request: Request):
        name = request.path_params["name"]
        plan = plan_for(request)
        target = files.get(plan.participant, {}).get(name[:-4] if name.endswith(".png") else "") if plan else None
        if target is None or not target.is_file():
            return PlainTextResponse("not found", status_code=404)
        # the bytes only: no ETag / Last-Modified (equal for every participant), no file name
        return Response(target.read_bytes(), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"})

    def is_admin(request: Request) -> bool:
        given = request.headers.get("x-admin-token") or request.query_params.get("token") or ""
        return hmac.compare_digest(given.encode(), admin.encode())

    async def export(request: Request):
        if not is_admin(request):
            return PlainTextResponse("forbidden", status_code=403)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(COLUMNS + PLATFORM_COLUMNS)
        for row in store.export_rows():
            w.writerow(row)
        return Response(buf.getvalue(), media_type="text/csv",
                        headers={"Content-Disposition": "attachment; filename=responses.csv"})

    async def status(request: Request):
        if not is_admin(request):
            return JSONResponse({"error": "forbidden"}, status_code=403)
        return JSONResponse({**store.counts(), "participants": len(plans)})

    async def done(request: Request):
        return HTMLResponse(thank_you())

    app = Starlette(routes=[
        Route("/join", join), Route("/s/{token}", page), Route("/s/{token}/done", done),
        Route("/api/{token}/state", state), Route("/api/{token}/answer", answer, methods=["POST"]),
        Route("/api/{token}/finish", finish, methods=["POST"]), Route("/api/{token}/consent", consent, methods=["POST"]),
        Route("/api/{token}/intro", intro_time, methods=["POST"]),
        Route("/img/{token}/{name}", image), Route("/admin/export", export), Route("/admin/status", status),
    ])
    # a static page (file:// or another host) with a collection URL posts to /api/...: any origin may, since the
    # token in the path is what authorises (no cookies, no credentials)
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST"],
                       allow_headers=["Content-Type"], allow_credentials=False)
    if base:
        app.add_middleware(StripBasePath, base=base)
    app.state.admin_token = admin
    app.state.recruitment = recruitment
    app.state.plans = plans
    app.state.store = store
    return app


class StripBasePath:
    """Serve ``BASE/...`` as ``/...``: a proxy that passes the study's path prefix on works like one that strips it."""

    def __init__(self, app, base: str):
        self.app, self.base = app, base

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == self.base or path.startswith(self.base + "/")):
            scope = dict(scope, path=path[len(self.base):] or "/", raw_path=None)
        await self.app(scope, receive, send)


async def _limited_body(request: Request) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return body


def invite_links(app: Starlette, base_url: str) -> list[tuple[str, str]]:
    return [(p.participant, f"{base_url.rstrip('/')}/s/{p.token}") for p in app.state.plans]


def study_link(base_url: str) -> str:
    """The one link for a recruitment platform, with each platform's placeholders (Prolific fills
    ``{{%PROLIFIC_PID%}}``; MTurk appends its own parameters to an external question's URL)."""
    base = f"{base_url.rstrip('/')}/join"
    return (f"{base}?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}&STUDY_ID={{{{%STUDY_ID%}}}}&SESSION_ID={{{{%SESSION_ID%}}}}"
            f"  (Prolific);  {base}  (MTurk: its workerId, assignmentId, hitId);  {base}?pid=ID  (any other)")


def serve(study_dir: Path, host: str = "127.0.0.1", port: int = 8000, admin_token: str | None = None,
          recruitment: RecruitmentConfig | None = None, texts: dict[str, list[str]] | None = None,
          public_url: str | None = None, forwarded_allow_ips: str = "127.0.0.1") -> None:
    """Run the study. Behind a reverse proxy give ``public_url`` (``https://example.org/study``): the links printed
    use it and the app writes its path (``/study``) into every URL; ``X-Forwarded-For``/``-Proto`` are trusted
    from ``forwarded_allow_ips`` (the proxy's address)."""
    import urllib.parse

    import uvicorn

    base_path = urllib.parse.urlsplit(public_url).path.rstrip("/") if public_url else ""
    app = create_app(study_dir, admin_token=admin_token, recruitment=recruitment, texts=texts, base_path=base_path)
    base = public_url.rstrip("/") if public_url else f"http://{host}:{port}"
    if app.state.recruitment.allowed:
        print(f"Study link for {', '.join(app.state.recruitment.allowed)}: {study_link(base)}")
    print("Invite links, one per participant (closed for a plan a platform participant holds):")
    for participant, link in invite_links(app, base):
        print(f"  {participant}: {link}")
    print(f"Admin export: {base}/admin/export?token={app.state.admin_token}")
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=True,
                forwarded_allow_ips=forwarded_allow_ips)
