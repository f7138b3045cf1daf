"""Participants from a recruitment platform through one study link: a counterbalanced plan each, the same plan
for the same id, a full study, an abandoned slot back in the pool after the timeout, the completion redirect with
the right code, platform ids in the export and (hashed) in the tally."""
import csv
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from starlette.testclient import TestClient

from survey.design import BROKEN, StudyConfig
from survey.recruitment import Arrival, ArrivalError, RecruitmentConfig, arrival_from_query
from survey.server import Store, create_app
from survey.study import build_study

from .test_survey_server import fake_stylized

CFG = StudyConfig(n_sets=3, n_participants=6, n_attention_checks=1, n_repeats=0)
RECRUIT = RecruitmentConfig(completion_url="https://app.prolific.com/submissions/complete?cc={code}",
                            completion_code="DONE42", excluded_code="NOPASS7", slot_timeout_minutes=30,
                            allowed=["prolific", "mturk", "generic"])


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def served(tmp_path):
    study = build_study(fake_stylized(tmp_path / "stylized", 3, CFG.methods), tmp_path / "study", CFG)
    clock = Clock()
    app = create_app(study, admin_token="adm", recruitment=RECRUIT, clock=clock)
    return TestClient(app), app, clock


def prolific(client, pid, session="S1"):
    return client.get(f"/join?PROLIFIC_PID={pid}&STUDY_ID=ST1&SESSION_ID={session}", follow_redirects=False)


def session_of(response) -> str:
    assert response.status_code == 303, response.text
    return response.headers["location"].rsplit("/", 1)[1]


def complete(client, app, token, fail_attention=False):
    """Answer every screen (the researcher's plan says where the attention check's broken image is) and finish."""
    held = app.state.store.session(token)
    plan = {p.participant: p for p in app.state.plans}[held[0]] if held else \
        next(p for p in app.state.plans if p.token == token)
    assert client.post(f"/api/{token}/consent", json={"decision": "agreed"}).json()["ok"]
    for i, item in enumerate(plan.items):
        broken = item.order.index(BROKEN) if BROKEN in item.order else None
        pos = broken if fail_attention and broken is not None else (1 if broken == 0 else 0)
        for q in CFG.questions:
            r = client.post(f"/api/{token}/answer", json={"index": i, "question": q, "chosen": item.options[pos]})
            assert r.status_code == 200
    return client.post(f"/api/{token}/finish").json()


def plan_of(app, token):
    return app.state.store.session(token)[0]


def test_each_new_id_gets_the_next_plan_and_the_same_id_gets_its_own_again(served):
    client, app, _ = served
    tokens = [session_of(prolific(client, f"5f{i:022d}")) for i in range(6)]
    assert [plan_of(app, t) for t in tokens] == [f"p{i:02d}" for i in range(1, 7)]  # the design's order
    assert session_of(prolific(client, "5f" + "0" * 22, session="S9")) == tokens[0]  # reload, another session
    other_device = TestClient(app)  # no cookies, nothing shared but the id
    assert session_of(prolific(other_device, "5f" + "0" * 22)) == tokens[0]
    page = client.get(f"/s/{tokens[2]}")
    assert page.status_code == 200 and tokens[2] in page.text
    state = client.get(f"/api/{tokens[2]}/state").json()
    plan = {p.participant: p for p in app.state.plans}["p03"]
    assert [it["options"] for it in state["items"]] == [it.options for it in plan.items]
    image = client.get(f"/img/{tokens[2]}/{plan.items[0].options[0]}.png")
    assert image.status_code == 200 and image.content[:4] == b"\x89PNG"
    assert client.get(f"/img/{tokens[1]}/{plan.items[0].options[0]}.png").status_code == 404  # not p02's image


def test_a_full_study_says_so_and_an_abandoned_slot_returns_after_the_timeout(served):
    client, app, clock = served
    tokens = [session_of(prolific(client, f"id{i}")) for i in range(6)]
    complete(client, app, tokens[0])                      # finished: never returned to the pool
    item0 = client.get(f"/api/{tokens[3]}/state").json()["items"][0]
    client.post(f"/api/{tokens[3]}/consent", json={"decision": "agreed"})
    client.post(f"/api/{tokens[3]}/answer", json={"index": 0, "question": "best_stylization",
                                                  "chosen": item0["options"][1]})
    full = prolific(client, "late")
    assert full.status_code == 200 and "The study is full" in full.text
    clock.now += 29 * 60                 # the others keep answering; p04 goes quiet
    for t in tokens[1:3] + tokens[4:]:
        client.get(f"/api/{t}/state")
    assert "The study is full" in prolific(client, "late").text  # 29 min: not yet
    clock.now += 2 * 60                                                # p04 silent for 31 min: its slot is free
    late = session_of(prolific(client, "late"))
    assert plan_of(app, late) == "p04" and client.get(f"/api/{late}/state").json()["answers"] == {}
    gone = client.get(f"/s/{tokens[3]}")
    assert gone.status_code == 410 and "expired" in gone.text
    assert client.get(f"/api/{tokens[3]}/state").status_code == 404
    kept = app.state.store._conn().execute("SELECT participant, chosen FROM released_answers").fetchall()
    assert len(kept) == 1 and kept[0][0] == "p04"  # the abandoned answer kept aside, not counted
    assert not client.get(f"/api/{late}/state").json()["consented"]  # the new holder consents for themselves
    assert all(row[0] != "p04" for row in app.state.store.export_rows())
    # the abandoned participant comes back: a new arrival, and the study is full again
    assert "The study is full" in prolific(client, "id3").text


def test_the_end_redirects_to_the_platform_with_the_right_code(served):
    client, app, _ = served
    good, bad = session_of(prolific(client, "good")), session_of(prolific(client, "bad"))
    assert complete(client, app, good)["next"] == "https://app.prolific.com/submissions/complete?cc=DONE42"
    assert complete(client, app, bad, fail_attention=True)["next"] == \
        "https://app.prolific.com/submissions/complete?cc=NOPASS7"
    invited = app.state.plans[-1]      # an invited participant (no platform) stays on the thank-you page
    assert complete(client, app, invited.token)["next"] is None
    assert RecruitmentConfig(completion_url="https://x/?cc={code}", completion_code="A").completion(
        Arrival("prolific", "p"), excluded=True) is None  # no code for the excluded: no redirect


def test_platform_ids_are_exported_and_hashed_in_the_tally(served, tmp_path):
    from pipeline.survey import platform_ids
    from survey.responses import read_responses

    client, app, _ = served
    worker = session_of(client.get("/join?workerId=A1B2C3&assignmentId=3XYZ&hitId=H9", follow_redirects=False))
    complete(client, app, worker)
    export = client.get("/admin/export?token=adm").text
    rows = list(csv.DictReader(io.StringIO(export)))
    assert {r["platform"] for r in rows} == {"mturk"} and {r["platform_id"] for r in rows} == {"A1B2C3"}
    assert json.loads(rows[0]["platform_extras"]) == {"assignmentId": "3XYZ", "hitId": "H9"}
    (tmp_path / "server.csv").write_text(export)
    resp = read_responses([tmp_path / "server.csv"])
    plans = {p.participant: p for p in app.state.plans}
    params = {"survey": {"recruitment": {"hash_ids": True}}}
    hashed = platform_ids(resp.rows, params, plans)
    (participant, entry), = hashed.items()
    assert entry["platform"] == "mturk" and entry["hashed"] and "A1B2C3" not in json.dumps(hashed)
    assert len(entry["id"]) == 16 and platform_ids(resp.rows, params, plans) == hashed  # stable
    params["survey"]["recruitment"]["hash_ids"] = False
    assert platform_ids(resp.rows, params, plans)[participant]["id"] == "A1B2C3"


def test_bad_links_and_the_mturk_preview_get_a_page_and_no_plan(served):
    client, app, _ = served
    r = client.get("/join")
    assert r.status_code == 400 and "PROLIFIC_PID, workerId, pid" in r.text
    r = client.get("/join?PROLIFIC_PID=<script>")
    assert r.status_code == 400 and "PROLIFIC_PID: not a participant id" in r.text and "<script>" not in r.text
    r = client.get("/join?workerId=W1&assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H", follow_redirects=False)
    assert r.status_code == 200 and "Accept the task" in r.text
    assert app.state.store._conn().execute("SELECT COUNT(*) FROM arrivals").fetchone()[0] == 0
    with pytest.raises(ArrivalError, match="STUDY_ID"):
        arrival_from_query({"PROLIFIC_PID": "ok", "STUDY_ID": "a b"})
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['cod'\]"):
        RecruitmentConfig(completion_url="https://x/?cc={cod}")
    with pytest.raises(ValueError, match="unknown key"):
        RecruitmentConfig.from_params({"completion": "x"})


def test_concurrent_arrivals_never_share_a_slot(tmp_path):
    store = Store(tmp_path / "r.sqlite")
    order = [f"p{i:02d}" for i in range(1, 21)]
    barrier = threading.Barrier(16)

    def arrive(i):
        barrier.wait(timeout=10) if i < 16 else None
        return store.assign(Arrival("generic", f"u{i}"), order, now=1.0, timeout_s=60)

    with ThreadPoolExecutor(max_workers=16) as pool:
        got = list(pool.map(arrive, range(30)))
    held = [g[0] for g in got if g is not None]
    assert sorted(held) == order and sum(g is None for g in got) == 10


def test_answers_are_kept_only_after_consent_and_declining_frees_the_slot(served):
    client, app, _ = served
    token = session_of(prolific(client, "first"))
    plan = {p.participant: p for p in app.state.plans}[plan_of(app, token)]
    body = {"index": 0, "question": "best_stylization", "chosen": plan.items[0].options[0]}
    r = client.post(f"/api/{token}/answer", json=body)
    assert r.status_code == 403 and "consent" in r.json()["error"]
    assert client.post(f"/api/{token}/consent", json={"decision": "maybe"}).status_code == 400
    assert client.post(f"/api/{token}/consent", json={"decision": "declined"}).json()["ok"]
    assert client.get(f"/s/{token}").status_code == 410                    # the slot went back at once
    assert plan_of(app, session_of(prolific(client, "second"))) == plan.participant
    invited = app.state.plans[-1]
    assert client.post(f"/api/{invited.token}/consent", json={"decision": "agreed"}).json()["ok"]
    assert client.post(f"/api/{invited.token}/answer", json={**body, "chosen": invited.items[0].options[0]}).json()["ok"]
    export = list(csv.DictReader(io.StringIO(client.get("/admin/export?token=adm").text)))
    assert export[0]["consented_at"].startswith("20")  # when the participant agreed, with every answer
    page = client.get(f"/s/{invited.token}").text
    assert "I agree" in page and "research study on image style transfer" in page  # the default texts


def test_the_researchers_own_texts_replace_the_defaults(tmp_path):
    from survey.form import intro_texts

    (tmp_path / "consent.txt").write_text("Our lab's consent.\nSecond line.\n\nSecond paragraph <b>.\n")
    texts = intro_texts(str(tmp_path / "consent.txt"))
    assert texts["consent"] == ["Our lab's consent. Second line.", "Second paragraph <b>."]
    assert texts["instructions"][0].startswith("Each screen shows")
    with pytest.raises(ValueError, match="missing.txt: the instructions text cannot be read"):
        intro_texts(None, str(tmp_path / "missing.txt"))


@pytest.mark.parametrize("prefix", ["/study", ""])  # a proxy that passes the path on, and one that strips it
def test_behind_a_reverse_proxy_every_url_carries_the_base_path(tmp_path, prefix):
    study = build_study(fake_stylized(tmp_path / "stylized", 3, CFG.methods), tmp_path / "study", CFG)
    client = TestClient(create_app(study, admin_token="adm", recruitment=RECRUIT, base_path="/study/"))
    r = client.get(f"{prefix}/join?pid=u1", follow_redirects=False, headers={"X-Forwarded-Proto": "https"})
    assert r.status_code == 303 and r.headers["location"].startswith("/study/s/")
    token = r.headers["location"].rsplit("/", 1)[1]
    page = client.get(f"{prefix}/s/{token}").text
    assert f'"api": "/study/api/{token}"' in page and f'"images": "/study/img/{token}"' in page
    assert client.post(f"{prefix}/api/{token}/consent", json={"decision": "agreed"}).json()["ok"]
    state = client.get(f"{prefix}/api/{token}/state").json()
    assert client.get(f"{prefix}/img/{token}/{state['items'][0]['options'][0]}.png").content[:4] == b"\x89PNG"
    assert client.get("/studyx/join?pid=u2").status_code == 404  # only the base path itself is stripped


def test_finishing_needs_consent_and_every_answer(served):
    client, app, _ = served
    token = session_of(prolific(client, "quick"))
    r = client.post(f"/api/{token}/finish")
    assert r.status_code == 409 and r.json()["error"] == "no consent"
    client.post(f"/api/{token}/consent", json={"decision": "agreed"})
    r = client.post(f"/api/{token}/finish")
    plan = {p.participant: p for p in app.state.plans}[plan_of(app, token)]
    assert r.status_code == 409 and r.json()["error"] == f"not finished: {2 * len(plan.items)} answers missing"
    assert app.state.store.counts()["participants_finished"] == 0
    assert complete(client, app, token)["next"].endswith("cc=DONE42")


def test_an_invite_link_closes_when_a_platform_participant_holds_its_plan(served):
    client, app, _ = served
    p1 = app.state.plans[0]
    token = session_of(prolific(client, "arrival"))
    assert plan_of(app, token) == p1.participant
    assert client.get(f"/s/{p1.token}").status_code == 404
    assert client.post(f"/api/{p1.token}/consent", json={"decision": "agreed"}).status_code == 404
    invited = app.state.plans[1]  # an invited participant who consented (no answer yet): their plan is taken
    assert client.post(f"/api/{invited.token}/consent", json={"decision": "agreed"}).json()["ok"]
    assert plan_of(app, session_of(prolific(client, "next"))) == app.state.plans[2].participant


def test_withdrawing_after_answering_sets_the_answers_aside(served):
    client, app, _ = served
    invited = app.state.plans[-1]
    client.post(f"/api/{invited.token}/consent", json={"decision": "agreed"})
    client.post(f"/api/{invited.token}/answer", json={"index": 0, "question": "best_stylization",
                                                       "chosen": invited.items[0].options[0]})
    assert len(app.state.store.export_rows()) == 1
    client.post(f"/api/{invited.token}/consent", json={"decision": "declined"})
    assert app.state.store.export_rows() == []      # not counted, not exported
    kept = app.state.store._conn().execute("SELECT participant FROM released_answers").fetchall()
    assert kept == [(invited.participant,)]         # but not deleted


def test_platform_links_are_refused_unless_the_researcher_opens_them(tmp_path):
    study = build_study(fake_stylized(tmp_path / "stylized", 3, CFG.methods), tmp_path / "study", CFG)
    closed = TestClient(create_app(study, admin_token="adm"))
    r = closed.get("/join?pid=anyone")
    assert r.status_code == 400 and "does not recruit there" in r.text
    own = TestClient(create_app(study, admin_token="adm", recruitment=RecruitmentConfig(allowed=["prolific"],
                                                                                         study_id="ST1")))
    assert "belongs to another study" in own.get("/join?PROLIFIC_PID=x&STUDY_ID=OTHER").text
    assert "does not recruit there" in own.get("/join?pid=x").text
    assert own.get("/join?PROLIFIC_PID=x&STUDY_ID=ST1", follow_redirects=False).status_code == 303


def test_time_on_the_consent_instructions_and_practice_screens_is_exported_tallied_and_reported(served, tmp_path):
    """The page sends when each screen before the study went up and was left; the export holds them per participant,
    the tally reports each screen's median over the participants kept, and a released slot's times go aside."""
    from evaluation.report import study_note
    from survey.responses import read_responses
    from survey.tally import TallyConfig, tally

    client, app, clock = served
    token = session_of(prolific(client, "early"))
    times = {"shown_at": "2026-12-07T10:00:00.000Z", "done_at": "2026-12-07T10:00:12.000Z"}
    intro = {"screen": "instructions", "shown_at": "2026-12-07T10:00:12.000Z", "done_at": "2026-12-07T10:00:52.000Z"}
    assert client.post(f"/api/{token}/intro", json=intro).status_code == 403      # before consent: not kept
    assert client.post(f"/api/{token}/consent", json={"decision": "agreed", **times}).json()["ok"]
    assert client.post(f"/api/{token}/intro", json={**intro, "screen": "consent"}).status_code == 400  # sent with it
    assert client.post(f"/api/{token}/intro", json={"screen": "practice"}).status_code == 400          # no times
    assert client.post(f"/api/{token}/intro", json=intro).json()["ok"]
    practice = {"screen": "practice", "shown_at": "2026-12-07T10:00:52.000Z", "done_at": "2026-12-07T10:01:00.000Z"}
    assert client.post(f"/api/{token}/intro", json=practice).json()["ok"]
    complete(client, app, token)
    other = session_of(prolific(client, "second"))
    client.post(f"/api/{other}/consent", json={"decision": "agreed", "shown_at": "2026-12-07T11:00:00Z",
                                               "done_at": "2026-12-07T11:00:30Z"})
    complete(client, app, other)
    gone = session_of(prolific(client, "leaves"))   # consents, then abandons the slot: its times go aside
    client.post(f"/api/{gone}/consent", json={"decision": "agreed", **times})
    clock.now += 31 * 60
    session_of(prolific(client, "late"))
    assert app.state.store._conn().execute("SELECT COUNT(*) FROM released_intro_times").fetchone()[0] == 1
    export = client.get("/admin/export?token=adm").text
    rows = list(csv.DictReader(io.StringIO(export)))
    early = next(r for r in rows if r["platform_id"] == "early")
    assert json.loads(early["intro_times"]) == {"consent": [times["shown_at"], times["done_at"]],
                                                "instructions": [intro["shown_at"], intro["done_at"]],
                                                "practice": [practice["shown_at"], practice["done_at"]]}
    (tmp_path / "server.csv").write_text(export)
    cfg = TallyConfig(methods=CFG.methods, questions=CFG.questions, n_bootstrap=20, models=False)
    doc = tally(read_responses([tmp_path / "server.csv"]), cfg)
    seconds = doc["participants"]["intro_seconds"]
    assert seconds["consent"] == {"participants": 2, "median": 21.0, "quartiles": [16.5, 25.5]}
    assert seconds["instructions"]["median"] == 40.0 and seconds["practice"]["median"] == 8.0
    assert seconds["instructions"]["participants"] == 1
    assert "consent 21 s [16, 26] (2 participants); instructions 40 s" in study_note(doc)
