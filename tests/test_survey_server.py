"""The study server: security, resume, exactly-once storage under load with a restart."""
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from survey.design import StudyConfig
from survey.study import build_study


def fake_stylized(root: Path, n_sets: int, methods) -> Path:
    rng = np.random.default_rng(0)
    for s in range(n_sets):
        for name in ("content", "style"):
            (root / "inputs").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), np.uint8)).save(root / "inputs" / f"{s:02d}_{name}.png")
        for m in methods:
            (root / m).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), np.uint8)).save(root / m / f"{s:02d}.png")
    return root


@pytest.fixture
def study(tmp_path):
    cfg = StudyConfig(n_sets=3, n_participants=4, n_attention_checks=1, n_repeats=1)
    return build_study(fake_stylized(tmp_path / "stylized", 3, cfg.methods), tmp_path / "study", cfg)


@pytest.fixture
def client(study):
    from starlette.testclient import TestClient

    from survey.server import create_app

    app = create_app(study, admin_token="admin-secret")
    c = TestClient(app)
    for p in app.state.plans:  # answers are kept only after consent (tests/test_survey_recruitment.py)
        assert c.post(f"/api/{p.token}/consent", json={"decision": "agreed"}).json()["ok"]
    return c, app


def test_invite_links_are_unguessable_and_unknown_tokens_refused(client):
    c, app = client
    tokens = [p.token for p in app.state.plans]
    assert len(set(tokens)) == 4 and all(len(t) >= 20 for t in tokens)
    assert c.get(f"/s/{tokens[0]}").status_code == 200
    assert c.get("/s/guess").status_code == 404
    assert c.get("/api/guess/state").status_code == 404
    assert c.post("/api/guess/answer", json={"index": 0, "question": "best_stylization", "chosen": "safin"}).status_code == 404


def test_a_participant_sees_and_changes_only_their_own_answers(client):
    c, app = client
    a, b = app.state.plans[0], app.state.plans[1]
    chosen = a.items[0].options[2]  # the participant answers with their own opaque identifier
    assert c.post(f"/api/{a.token}/answer", json={"index": 0, "question": "best_stylization", "chosen": chosen}).json()["ok"]
    assert c.get(f"/api/{a.token}/state").json()["answers"] == {"0|best_stylization": chosen}
    assert c.get(f"/api/{b.token}/state").json()["answers"] == {}
    # answering again replaces (resume / change of mind), never duplicates; the export holds the method
    c.post(f"/api/{a.token}/answer", json={"index": 0, "question": "best_stylization", "chosen": a.items[0].options[0]})
    export = c.get("/admin/export", headers={"X-Admin-Token": "admin-secret"}).text.strip().splitlines()
    assert len(export) == 2 and f",{a.items[0].order[0]},{';'.join(a.items[0].order)}," in export[1]


@pytest.mark.parametrize("body, status", [
    ({"index": 0, "question": "best_stylization", "chosen": "cyclegan"}, 400),
    ({"index": 0, "question": "best_stylization", "chosen": "safin"}, 400),       # method names mean nothing
    ({"index": 0, "question": "best_stylization", "chosen": "OTHER"}, 400),       # another participant's option
    ({"index": 0, "question": "best_stylization", "chosen": "SCREEN1"}, 400),     # an option of another screen
    ({"index": 99, "question": "best_stylization", "chosen": "OWN"}, 400),
    ({"index": 0, "question": "favourite_colour", "chosen": "OWN"}, 400),
    ({"index": 0, "question": "best_stylization", "chosen": "OWN"}, 200),
    ({"question": "best_stylization"}, 400),
])
def test_only_displayed_options_and_known_screens_are_accepted(client, body, status):
    c, app = client
    me, other = app.state.plans[0], app.state.plans[1]
    swap = {"OWN": me.items[0].options[1], "OTHER": other.items[0].options[1], "SCREEN1": me.items[1].options[0]}
    body = {k: swap.get(v, v) for k, v in body.items()}
    assert c.post(f"/api/{me.token}/answer", json=body).status_code == status


def test_request_size_is_limited(client):
    c, app = client
    big = json.dumps({"index": 0, "question": "best_stylization", "chosen": "safin", "pad": "x" * 10_000})
    r = c.post(f"/api/{app.state.plans[0].token}/answer", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize("path", ["../plan.json", "..%2fplan.json", "%2e%2e/plan.json", "%252e%252e%252fplan.json",
                                  "00/../../plan.json", "/etc/passwd", "00/content.png", "00/safin.png",
                                  "..%5cplan.json", "OTHER.png", "OWN", "OWN.jpg"])
def test_only_the_participants_own_identifiers_are_served(client, path):
    c, app = client
    me, other = app.state.plans[0], app.state.plans[1]
    path = path.replace("OWN", me.items[0].options[0]).replace("OTHER", other.items[0].options[0])
    assert c.get(f"/img/{me.token}/{path}").status_code == 404
    r = c.get(f"/img/{me.token}/{me.items[0].options[0]}.png")
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG")
    assert not {"etag", "last-modified", "content-disposition"} & set(r.headers)  # nothing shared or named


def test_admin_routes_refuse_without_the_admin_token(client):
    c, _ = client
    assert c.get("/admin/export").status_code == 403
    assert c.get("/admin/export?token=wrong").status_code == 403
    assert c.get("/admin/status").status_code == 403
    assert c.get("/admin/status", headers={"X-Admin-Token": "admin-secret"}).json()["participants"] == 4


class LiveServer:
    def __init__(self, study, port=0, **app_options):
        import socket

        import uvicorn

        from survey.server import create_app

        if not port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = port
        self.app = create_app(study, admin_token="adm", **app_options)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=20)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"


def _post(url, data, deadline):
    body = json.dumps(data).encode()
    while time.time() < deadline:  # bounded retries: the server may be restarting
        try:
            req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise TimeoutError(url)


def _join(url, deadline) -> str:
    """The session a study link's redirect names (bounded retries: the server may be restarting)."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **kw):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    while time.time() < deadline:
        try:
            opener.open(url, timeout=10)
        except urllib.error.HTTPError as e:
            if e.code == 303:
                return e.headers["Location"].rsplit("/", 1)[1]
            raise
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise TimeoutError(url)


@pytest.mark.slow
def test_200_concurrent_participants_with_a_restart_lose_nothing(tmp_path):
    cfg = StudyConfig(n_sets=3, n_participants=200, n_attention_checks=0, n_repeats=0)
    study = build_study(fake_stylized(tmp_path / "stylized", 3, cfg.methods), tmp_path / "study", cfg)
    from survey.recruitment import RecruitmentConfig

    server = LiveServer(study, recruitment=RecruitmentConfig(allowed=["prolific"])).__enter__()
    port = server.port
    plans = server.app.state.plans
    deadline = time.time() + 240
    expected = set()

    by_id = {p.participant: p for p in plans}

    def participant(n):
        """A participant from a platform: arrives at the one study link, gets a plan, answers every screen."""
        session = _join(f"http://127.0.0.1:{port}/join?PROLIFIC_PID=5f{n:022d}&STUDY_ID=S&SESSION_ID=X{n}", deadline)
        plan = by_id[server.app.state.store.session(session)[0]]
        _post(f"http://127.0.0.1:{port}/api/{session}/consent", {"decision": "agreed"}, deadline)
        for i, item in enumerate(plan.items):
            for q in cfg.questions:
                chosen = item.options[(i + len(q)) % len(item.options)]
                _post(f"http://127.0.0.1:{port}/api/{session}/answer",
                      {"index": i, "question": q, "chosen": chosen}, deadline)
        return plan.participant

    with ThreadPoolExecutor(max_workers=40) as pool:
        futures = [pool.submit(participant, n) for n in range(200)]
        total = 200 * 3 * 2
        while server.app.state.store.counts()["answers"] < total * 0.3 and time.time() < deadline:
            time.sleep(0.005)
        server.__exit__()                      # restart mid-run: same database, same port
        at_restart = server.app.state.store.counts()["answers"]
        server = LiveServer(study, port=port, recruitment=RecruitmentConfig(allowed=["prolific"])).__enter__()
        done = [f.result(timeout=240) for f in futures]
    for plan in plans:
        for i, _ in enumerate(plan.items):
            for q in cfg.questions:
                expected.add((plan.participant, i, q))
    with urllib.request.urlopen(f"{server.url}/admin/export?token=adm") as r:
        rows = r.read().decode().strip().splitlines()[1:]
    server.__exit__()
    assert len(done) == 200 and sorted(done) == sorted(by_id)  # 200 arrivals, 200 distinct plans
    assert 0 < at_restart < total, at_restart  # the restart really happened mid-run
    assert len(rows) == len(expected) == 200 * 3 * 2  # every answer stored exactly once


def test_a_changed_design_replaces_an_unanswered_plan_but_never_an_answered_one(client, tmp_path, capsys):
    """The pipeline's survey_study stage: a method added to survey.methods before anyone answered sets the old
    plan aside (nothing deleted) and plans anew; once an answer is recorded, it refuses and says how many."""
    c, app = client
    study = tmp_path / "study"
    stylized = tmp_path / "stylized"
    bigger = StudyConfig(n_sets=3, n_participants=5, n_attention_checks=1, n_repeats=1)
    responses = tmp_path / "responses"
    responses.mkdir()
    a = app.state.plans[0]
    assert c.post(f"/api/{a.token}/answer", json={"index": 0, "question": "best_stylization",
                                                   "chosen": a.items[0].options[0]}).json()["ok"]
    before = (study / "plan.json").read_bytes()
    with pytest.raises(ValueError, match=r"differs in n_participants; 1 answers recorded: 1 in .*responses.sqlite"):
        build_study(stylized, study, bigger, replace_unanswered=True, responses=responses)
    assert (study / "plan.json").read_bytes() == before
    (tmp_path / "study2").mkdir()
    fresh = build_study(stylized, tmp_path / "study2", StudyConfig(n_sets=3, n_participants=4, n_attention_checks=1,
                                                                   n_repeats=1))
    (responses / "p01.csv").write_text("participant,screen\np01,0\n")  # a returned file's answers count too
    with pytest.raises(ValueError, match="1 answers recorded: 1 in 1 response file"):
        build_study(stylized, fresh, bigger, replace_unanswered=True, responses=responses)
    (responses / "p01.csv").unlink()
    old = (fresh / "plan.json").read_bytes()
    build_study(stylized, fresh, bigger, replace_unanswered=True, responses=responses)
    assert "no answer was recorded: the old plan and its database moved to" in capsys.readouterr().out
    kept = list((fresh / "superseded").glob("*/plan.json"))
    assert len(kept) == 1 and kept[0].read_bytes() == old
    assert json.loads((fresh / "plan.json").read_text())["config"]["n_participants"] == 5
