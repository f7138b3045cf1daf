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
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .blinding import screens
from .design import load_plan
from .form import render_page, thank_you
from .responses import COLUMNS

MAX_BODY = 4096

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
  participant TEXT NOT NULL, item INTEGER NOT NULL, question TEXT NOT NULL, set_id INTEGER NOT NULL,
  kind TEXT NOT NULL, chosen TEXT NOT NULL, displayed_order TEXT NOT NULL, shown_at TEXT, answered_at TEXT,
  PRIMARY KEY (participant, item, question));
CREATE TABLE IF NOT EXISTS finished (participant TEXT PRIMARY KEY, at TEXT);
"""


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
             order: list[str], shown_at: str, answered_at: str) -> None:
        self._conn().execute(
            "INSERT INTO answers VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(participant, item, question) DO UPDATE SET "
            "chosen=excluded.chosen, shown_at=excluded.shown_at, answered_at=excluded.answered_at",
            (participant, item, question, set_id, kind, chosen, ";".join(order), shown_at, answered_at))

    def answers(self, participant: str) -> dict[str, str]:
        rows = self._conn().execute("SELECT item, question, chosen FROM answers WHERE participant=?", (participant,))
        return {f"{i}|{q}": c for i, q, c in rows}

    def finish(self, participant: str, at: str) -> None:
        self._conn().execute("INSERT OR REPLACE INTO finished VALUES (?,?)", (participant, at))

    def export_rows(self) -> list[tuple]:
        return list(self._conn().execute(
            "SELECT participant, set_id, kind, question, chosen, displayed_order, shown_at, answered_at, 0, item "
            "FROM answers ORDER BY participant, item, question"))

    def counts(self) -> dict:
        c = self._conn()
        return {"answers": c.execute("SELECT COUNT(*) FROM answers").fetchone()[0],
                "participants_started": c.execute("SELECT COUNT(DISTINCT participant) FROM answers").fetchone()[0],
                "participants_finished": c.execute("SELECT COUNT(*) FROM finished").fetchone()[0]}


def create_app(study_dir: Path, db_path: Path | None = None, admin_token: str | None = None) -> Starlette:
    study_dir = Path(study_dir).resolve()
    images_root = (study_dir / "images").resolve()
    cfg, plans = load_plan(study_dir / "plan.json")
    by_token = {p.token: p for p in plans}
    files = {p.token: {i: images_root / f"{set_id:02d}" / f"{role}.png" for i, (set_id, role) in p.image_ids().items()}
             for p in plans}
    store = Store(Path(db_path or study_dir / "responses.sqlite"))
    admin = admin_token or secrets.token_urlsafe(24)

    def plan_for(request: Request):
        return by_token.get(request.path_params["token"])

    async def page(request: Request):
        plan = plan_for(request)
        if plan is None:
            return HTMLResponse("<h2>This invitation link is not valid.</h2>", status_code=404)
        return HTMLResponse(render_page({"mode": "served", "token": plan.token, "api": f"/api/{plan.token}",
                                         "images": f"/img/{plan.token}", "questions": cfg.questions}))

    async def state(request: Request):
        plan = plan_for(request)
        if plan is None:
            return JSONResponse({"error": "unknown token"}, status_code=404)
        answers = {}
        for k, method in store.answers(plan.participant).items():
            item = plan.items[int(k.split("|")[0])]
            answers[k] = item.options[item.order.index(method)]  # back to this participant's identifier
        return JSONResponse({"items": screens(plan), "answers": answers})

    async def answer(request: Request):
        plan = plan_for(request)
        if plan is None:
            return JSONResponse({"error": "unknown token"}, status_code=404)
        body = await _limited_body(request)
        if body is None:
            return JSONResponse({"error": "request too large"}, status_code=413)
        try:
            data = json.loads(body)
            index, question, chosen = int(data["index"]), str(data["question"]), str(data["chosen"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "malformed answer"}, status_code=400)
        if not 0 <= index < len(plan.items):
            return JSONResponse({"error": "no such screen"}, status_code=400)
        if question not in cfg.questions:
            return JSONResponse({"error": "no such question"}, status_code=400)
        item = plan.items[index]
        if chosen not in item.options:
            return JSONResponse({"error": "that option was not displayed on this screen"}, status_code=400)
        method = item.order[item.options.index(chosen)]
        store.save(plan.participant, index, question, item.set_id, item.kind, method, item.order,
                   str(data.get("shown_at", ""))[:40], str(data.get("answered_at", ""))[:40])
        return JSONResponse({"ok": True})

    async def finish(request: Request):
        plan = plan_for(request)
        if plan is None:
            return JSONResponse({"error": "unknown token"}, status_code=404)
        import datetime as dt

        store.finish(plan.participant, dt.datetime.now(dt.timezone.utc).isoformat())
        return JSONResponse({"ok": True})

    async def image(request: Request):
        name = request.path_params["name"]
        target = files.get(request.path_params["token"], {}).get(name[:-4] if name.endswith(".png") else "")
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
        w.writerow(COLUMNS)
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
        Route("/s/{token}", page), Route("/s/{token}/done", done),
        Route("/api/{token}/state", state), Route("/api/{token}/answer", answer, methods=["POST"]),
        Route("/api/{token}/finish", finish, methods=["POST"]),
        Route("/img/{token}/{name}", image), Route("/admin/export", export), Route("/admin/status", status),
    ])
    app.state.admin_token = admin
    app.state.plans = plans
    app.state.store = store
    return app


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


def serve(study_dir: Path, host: str = "127.0.0.1", port: int = 8000, admin_token: str | None = None) -> None:
    import uvicorn

    app = create_app(study_dir, admin_token=admin_token)
    base = f"http://{host}:{port}"
    print("Invite links (send one to each participant):")
    for participant, link in invite_links(app, base):
        print(f"  {participant}: {link}")
    print(f"Admin export: {base}/admin/export?token={app.state.admin_token}")
    uvicorn.run(app, host=host, port=port, log_level="warning")
