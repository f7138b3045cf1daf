"""A participant completes a small study in a real headless Chromium (Debian's, driven by Playwright)."""
import csv
import io
import json
import os
import re
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from survey.design import StudyConfig, load_plan
from survey.responses import read_responses
from survey.study import build_study
from survey.tally import intro_seconds

from ..test_survey_server import LiveServer, fake_stylized

pytestmark = pytest.mark.slow  # a real browser: `make test`, not the edit loop's `make test-fast`

#: `make test` finds or installs it (tests/ensure_chromium.sh) and exports its path
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


def answer_screens(page, keys: tuple[str, str], n: int) -> None:
    """Answer ``n`` screens with the keyboard, waiting each time for the page to move on."""
    for _ in range(n):
        current = page.locator("#progress").text_content()
        for key in keys:
            page.keyboard.press(key)
        # moved on: the next screen, the end, or (a platform participant) already on the completion page
        page.wait_for_function(f"!document.getElementById('progress') || "
                               f"document.getElementById('progress').textContent !== {current!r} || "
                               "document.getElementById('done').style.display === 'block'")


def through_intro(page, crawl=None) -> None:
    """Consent, instructions and the practice screen (answered with keys 1 and 2), as a participant does."""
    page.wait_for_selector("#agree", state="visible")
    crawl and crawl.snapshot(page)
    page.click("#agree")
    page.wait_for_selector("#startpractice", state="visible")
    crawl and crawl.snapshot(page)
    page.click("#startpractice")
    page.wait_for_selector("#practicebanner", state="visible")
    page.wait_for_function("[...document.querySelectorAll('.opt img')].every(i => i.complete)")
    crawl and crawl.snapshot(page)
    page.keyboard.press("1")
    page.keyboard.press("2")
    page.wait_for_selector("#practicebanner", state="hidden")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def small_study(tmp_path):
    cfg = StudyConfig(n_sets=3, n_participants=2, n_attention_checks=1, n_repeats=0)
    return build_study(fake_stylized(tmp_path / "stylized", 3, cfg.methods), tmp_path / "study", cfg), cfg


def test_participant_completes_the_served_study_and_the_export_holds_their_answers(browser, small_study, tmp_path):
    study, cfg = small_study
    with LiveServer(study) as server:
        plan = server.app.state.plans[0]
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{server.url}/s/{plan.token}")
        through_intro(page)
        page.wait_for_selector(".opt img")
        assert page.locator(".opt").count() == 4
        # first screen by clicking, then close the browser tab and come back: it resumes
        page.locator(".q[data-q='best_stylization'] button").nth(0).click()
        page.locator(".q[data-q='fewest_artifacts'] button").nth(1).click()
        page.wait_for_function("document.getElementById('progress').textContent.startsWith('2 /')")
        page.close()
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        page.goto(f"{server.url}/s/{plan.token}")
        page.wait_for_function("document.getElementById('progress').textContent.startsWith('2 /')")
        page.screenshot(path=str(tmp_path / "phone.png"))
        answer_screens(page, ("2", "3"), len(plan.items) - 1)  # the rest with keyboard shortcuts
        page.wait_for_selector("#done", state="visible")
        assert "Thank you" in page.inner_text("#done")
        with urllib.request.urlopen(f"{server.url}/admin/export?token=adm") as r:
            rows = list(csv.DictReader(io.StringIO(r.read().decode())))
    assert len(rows) == len(plan.items) * 2 and {r["participant"] for r in rows} == {plan.participant}
    intro = json.loads(rows[0]["intro_times"])   # when each screen before the study went up and was left
    assert sorted(intro) == ["consent", "instructions", "practice"], intro
    assert intro["consent"][1] <= intro["instructions"][0] <= intro["instructions"][1] <= intro["practice"][0]
    assert intro["practice"][1] <= min(r["answered_at"] for r in rows)
    first = [r for r in rows if r["question"] == "best_stylization"][0]
    assert first["chosen"] in first["displayed_order"].split(";")
    path = tmp_path / "export.csv"
    path.write_text("participant,set,kind,question,chosen,displayed_order,shown_at,answered_at,simulated\n" +
                    "".join(",".join(r[k] for k in ("participant", "set", "kind", "question", "chosen", "displayed_order",
                                                   "shown_at", "answered_at", "simulated")) + "\n" for r in rows))
    assert read_responses([path], set(cfg.questions)).problems == []


def test_static_form_works_from_file_and_downloads_the_responses(browser, small_study, tmp_path):
    from survey.static import export_static

    study, cfg = small_study
    pages = export_static(study, tmp_path / "static")
    page = browser.new_page(accept_downloads=True)
    page.goto(pages[1].as_uri())
    through_intro(page)
    page.wait_for_selector(".opt img")
    n = int(page.locator("#progress").text_content().split("/")[1])
    answer_screens(page, ("1", "4"), n)
    page.wait_for_selector("#download", state="visible")
    with page.expect_download() as dl:
        page.click("#download")
    target = tmp_path / "responses_p02.csv"
    dl.value.save_as(target)
    _, plans = load_plan(study / "plan.json")
    by_id = {p.participant: p for p in plans}
    resp = read_responses([target], set(cfg.questions), set(by_id), by_id)  # decoded with the researcher's plan
    assert resp.problems == [] and len(resp.rows) == n * 2 and {r["participant"] for r in resp.rows} == {"p02"}
    # keys 1 then 4 on every screen: the methods recorded are those shown there in positions 1 and 4
    for r in resp.rows:
        it = next(it for it in by_id["p02"].items if it.set_id == r["set"] and it.kind == r["kind"])
        assert r["chosen"] == it.order[0 if r["question"] == "best_stylization" else 3]
    # the time on the screens before the study travels in the file too, and the tally reports it
    intro = resp.rows[0]["intro_times"]
    assert sorted(intro) == ["consent", "instructions", "practice"], intro
    assert intro["consent"][0] <= intro["consent"][1] <= intro["instructions"][0] <= intro["instructions"][1] \
        <= intro["practice"][0] <= intro["practice"][1] <= min(r["answered_at"] for r in resp.rows)
    seconds = intro_seconds(resp.rows)
    assert {s: v["participants"] for s, v in seconds.items()} == {"consent": 1, "instructions": 1, "practice": 1}


HEX_ID = re.compile(r"[0-9a-f]{16}")


def is_clean_png(data: bytes) -> bool:
    from ..test_survey_blinding import png_chunks

    return png_chunks(data) == [b"IHDR", b"IDAT", b"IEND"]


class Crawl:
    """Everything one participant's browser sends and receives, and every URL its page references."""

    def __init__(self, page):
        self.texts: list[str] = []      # URLs, headers, request bodies, text responses, page sources
        self.images: list[bytes] = []
        self.referenced: set[str] = set()
        page.on("request", lambda r: self.texts.extend([r.url, json.dumps(r.headers), r.post_data or ""]))
        page.on("response", self._response)

    def _response(self, r):
        self.texts.extend([r.url, json.dumps(r.headers)])
        try:
            body = r.body()
        except Exception:               # a file:// response may have no retrievable body; read from disk instead
            return
        if body.startswith(b"\x89PNG"):
            self.images.append(body)
        else:
            self.texts.append(body.decode("utf-8"))

    def snapshot(self, page):
        self.texts.append(page.content())
        self.referenced |= set(page.eval_on_selector_all("img[src]", "els => els.map(e => e.src)"))


def crawl_study(page, crawl: Crawl, n_keys=("1", "2"), redirect: str | None = None) -> None:
    """Act as the participant: consent, instructions, practice, every screen, a zoom, back and forth, to the end."""
    through_intro(page, crawl)
    page.wait_for_selector(".opt img")
    n = int(page.locator("#progress").text_content().split("/")[1])
    crawl.snapshot(page)
    page.keyboard.press("z")
    crawl.snapshot(page)
    page.keyboard.press("Escape")
    for i in range(n):
        answer_screens(page, n_keys, 1)
        if i == n - 1:
            break
        page.wait_for_function("[...document.querySelectorAll('.opt img')].every(i => i.complete)")
        crawl.snapshot(page)
    if redirect:   # a platform participant leaves for the completion URL
        page.wait_for_url(redirect)
    else:
        page.wait_for_selector("#done", state="visible")
    crawl.snapshot(page)


def assert_blind(crawl: Crawl, methods, mine: set[str], others: set[str]) -> None:
    words = [m.lower() for m in methods] + ["broken"]
    blob = "\n".join(crawl.texts).lower()
    leaks = sorted({w for w in words if w in blob})
    assert not leaks, f"the participant can read {leaks}"
    assert '"attention"' not in blob and '"repeat"' not in blob
    seen = set(HEX_ID.findall(blob))
    assert seen & mine and not seen & others, "an identifier of another participant reached this one"
    assert crawl.images and all(is_clean_png(b) for b in crawl.images)


@pytest.fixture
def crawl_study_dir(tmp_path):
    cfg = StudyConfig(n_sets=3, n_participants=2, n_attention_checks=2, n_repeats=1)
    return build_study(fake_stylized(tmp_path / "stylized", 3, cfg.methods), tmp_path / "study", cfg), cfg


def ids_of(plan) -> set[str]:
    return set(plan.image_ids())


def test_crawler_served_study_reveals_no_method_no_check_and_no_shared_id(browser, crawl_study_dir):
    """Participants arrive from Prolific through the one study link and leave through its completion redirect."""
    from survey.recruitment import RecruitmentConfig

    study, cfg = crawl_study_dir
    recruit = RecruitmentConfig(completion_url="/complete?cc={code}", completion_code="C0DE1", allowed=["prolific"])
    with LiveServer(study, recruitment=recruit) as server:
        plans = server.app.state.plans
        for n, _ in enumerate(plans):
            page = browser.new_page()
            crawl = Crawl(page)
            page.goto(f"{server.url}/join?PROLIFIC_PID=5f{n:022d}&STUDY_ID=ST&SESSION_ID=SE{n}")
            session = page.url.rsplit("/", 1)[1]
            me = next(p for p in plans if p.participant == server.app.state.store.session(session)[0])
            crawl_study(page, crawl, redirect="**/complete?cc=C0DE1")   # back to the platform with its code
            page.goto(f"{server.url}/s/{session}")   # the resumed state, too (it sends them back again)
            page.wait_for_url("**/complete?cc=C0DE1")
            crawl.snapshot(page)
            for url in crawl.referenced:    # fetch every referenced URL again, outside the page
                with urllib.request.urlopen(url) as r:
                    crawl.texts.extend([url, json.dumps(dict(r.headers))])
                    body = r.read()
                    assert body.startswith(b"\x89PNG")
                    crawl.images.append(body)
            page.close()
            assert len(crawl.referenced) > 2 * len(cfg.methods)
            assert_blind(crawl, cfg.methods, ids_of(me), set().union(*(ids_of(p) for p in plans if p is not me)))
        # one more arrival finds the study full: that page, too, shows no method, no check, nobody's identifiers
        page = browser.new_page()
        crawl = Crawl(page)
        page.goto(f"{server.url}/join?PROLIFIC_PID=5f{len(plans):022d}&STUDY_ID=ST&SESSION_ID=SEX")
        crawl.snapshot(page)
        page.close()
        blob = "\n".join(crawl.texts).lower()
        assert "the study is full" in blob
        assert not [w for w in [*map(str.lower, cfg.methods), "broken", '"attention"', '"repeat"'] if w in blob], blob
        assert not set(HEX_ID.findall(blob)) & set().union(*(ids_of(p) for p in plans)), blob
        with urllib.request.urlopen(f"{server.url}/admin/export?token=adm") as r:
            rows = list(csv.DictReader(io.StringIO(r.read().decode())))
    # the researcher loses nothing: every answer with its method and the displayed order, mapped back
    assert len(rows) == sum(len(p.items) for p in plans) * 2
    assert {r["chosen"] for r in rows} <= set(cfg.methods) | {"broken"}
    by_id = {p.participant: p for p in plans}
    for r in rows:
        order = r["displayed_order"].split(";")
        assert order in [it.order for it in by_id[r["participant"]].items if it.set_id == int(r["set"])]
        assert r["chosen"] == order[0 if r["question"] == "best_stylization" else 1]


def test_crawler_static_study_reveals_no_method_no_check_and_no_shared_id(browser, crawl_study_dir, tmp_path):
    from survey.static import export_static

    study, cfg = crawl_study_dir
    _, plans = load_plan(study / "plan.json")
    pages = export_static(study, tmp_path / "static")
    for page_path, me in zip(pages, plans):
        page = browser.new_page(accept_downloads=True)
        crawl = Crawl(page)
        page.goto(page_path.as_uri())
        crawl_study(page, crawl)
        crawl.texts.append(page_path.read_text())
        for url in crawl.referenced:        # every file the page references, read as a host would serve it
            assert url.startswith("file://")
            crawl.texts.append(url)
            crawl.images.append(Path(urllib.request.url2pathname(url[len("file://"):])).read_bytes())
        with page.expect_download() as dl:
            page.click("#download")
        target = tmp_path / f"responses_{me.participant}.csv"
        dl.value.save_as(target)
        crawl.texts.extend([dl.value.suggested_filename, target.read_text()])   # what the participant sends back
        page.close()
        assert_blind(crawl, cfg.methods, ids_of(me), set().union(*(ids_of(p) for p in plans if p is not me)))
    by_id = {p.participant: p for p in plans}
    resp = read_responses(sorted(tmp_path.glob("responses_p*.csv")), set(cfg.questions), set(by_id), by_id)
    assert resp.problems == [] and len(resp.rows) == sum(len(p.items) for p in plans) * 2


def test_platform_participants_get_distinct_plans_codes_and_a_freed_slot(browser, tmp_path):
    """Prolific arrivals in Chromium: one reloads midway and finishes from a second browser, one fails the attention
    check, one abandons; a late arrival finds the study full, then gets the abandoned slot after the timeout.
    SAFIN_STUDY_BROWSER_EXTRA=N adds N participants who complete it, every third reloading midway (the issue's 30
    participants: N=27, 86.6 s on an AMD EPYC Zen 3, docs/survey.md; `make test` runs the four above)."""
    from evaluation.report import study_note
    from pipeline.params import load_params
    from pipeline.survey import preregister, tally_stage
    from survey.design import BROKEN
    from survey.recruitment import RecruitmentConfig

    extra = int(os.environ.get("SAFIN_STUDY_BROWSER_EXTRA", "0"))
    cfg = StudyConfig(n_sets=2, n_participants=3 + extra, n_attention_checks=1, n_repeats=0)
    study = build_study(fake_stylized(tmp_path / "stylized", 3, cfg.methods), tmp_path / "study", cfg)
    params = load_params("params.yaml")   # registered before anyone arrives
    params["survey"].update({"methods": cfg.methods, "n_sets": 2, "n_participants": 3 + extra, "attention_checks": 1,
                             "repeats": 0, "bootstrap": 50, "study": str(study), "responses": str(tmp_path / "resp"),
                             "out": str(tmp_path / "out"), "metrics": str(tmp_path / "survey.json"),
                             "preregistration": str(tmp_path / "prereg.json")})
    params["survey"]["power"].update({"participants": [10], "sets": [20], "simulations": 20, "bootstrap": 50})
    # these participants are scripts that answer in milliseconds: the 'too fast' rule (tests/test_survey_study.py)
    # would exclude them all, so this study registers a threshold of 0 s and the rule stays in the tally
    params["survey"]["exclusion"]["min_median_screen_seconds"] = 0.0
    preregister(params)
    clock = type("Clock", (), {"now": 1e6, "__call__": lambda self: self.now})()
    recruit = RecruitmentConfig(completion_url="/complete?cc={code}", completion_code="DONE42",
                                excluded_code="NOPASS7", slot_timeout_minutes=30, allowed=["prolific"])
    with LiveServer(study, recruitment=recruit, clock=clock) as server:
        plans = {p.participant: p for p in server.app.state.plans}

        def arrive(context, pid):
            page = context.new_page()
            page.goto(f"{server.url}/join?PROLIFIC_PID={pid}&STUDY_ID=ST&SESSION_ID=S")
            return page

        def plan_of(page):
            return plans[server.app.state.store.session(page.url.rsplit("/", 1)[1])[0]]

        def answer_all(page, plan, fail=False, stop=None):
            """Every remaining screen (up to ``stop``), choosing (from the researcher's plan) the broken image or
            avoiding it."""
            page.wait_for_selector(".opt img")
            start = int(page.locator("#progress").text_content().split("/")[0]) - 1
            for index in range(start, len(plan.items) if stop is None else stop):
                order = plan.items[index].order
                pos = order.index(BROKEN) if fail and BROKEN in order else (1 if order[0] == BROKEN else 0)
                answer_screens(page, (str(pos + 1), str(pos + 1)), 1)

        first, second = browser.new_context(), browser.new_context()
        a = arrive(first, "pidA")
        through_intro(a)
        answer_screens(a, ("1", "2"), 1)
        a.reload()                                    # midway: resumes on the next screen
        a.wait_for_function("document.getElementById('progress').textContent.startsWith('2 /')")
        a2 = arrive(second, "pidA")                    # the same participant from a second browser
        assert plan_of(a2) is plan_of(a)
        got = [plan_of(a).participant]
        answer_all(a2, plan_of(a2))
        a2.wait_for_url("**/complete?cc=DONE42")
        c = arrive(first, "pidC")
        through_intro(c)
        got.append(plan_of(c).participant)
        answer_all(c, plan_of(c), fail=True)
        c.wait_for_url("**/complete?cc=NOPASS7")       # the attention check failed: the other code
        d = arrive(first, "pidD")
        through_intro(d)
        answer_screens(d, ("1", "2"), 1)               # ... then leaves
        for n in range(extra):
            x = arrive(first if n % 2 else second, f"pidX{n}")
            through_intro(x)
            got.append(plan_of(x).participant)
            if n % 3 == 0:                             # several reload midway and go on where they were
                answer_all(x, plan_of(x), stop=1)
                x.reload()
                x.wait_for_function("document.getElementById('progress').textContent.startsWith('2 /')")
            answer_all(x, plan_of(x))
            x.wait_for_url("**/complete?cc=DONE42")
            x.close()
        late = arrive(second, "pidE")
        assert "The study is full" in late.content()
        clock.now += 31 * 60
        late.goto(f"{server.url}/join?PROLIFIC_PID=pidE&STUDY_ID=ST&SESSION_ID=S")
        assert plan_of(late) is plan_of(d)            # the abandoned slot, after the timeout
        through_intro(late)
        got.append(plan_of(late).participant)
        answer_all(late, plan_of(late))
        late.wait_for_url("**/complete?cc=DONE42")
        first.close()
        second.close()
        export = urllib.request.urlopen(f"{server.url}/admin/export?token=adm").read().decode()
    assert sorted(got) == sorted(plans)                # every plan, each to one participant
    (tmp_path / "resp").mkdir()
    (tmp_path / "resp" / "server.csv").write_text(export)
    doc = tally_stage(params)                          # collected, then tallied against the registration
    assert doc["participants"]["excluded"]["failed attention check"] == [got[1]]
    assert doc["participants"]["kept"] == 2 + extra and len(set(got)) == 3 + extra
    assert {entry["platform"] for entry in doc["platform_ids"].values()} == {"prolific"}
    assert len(doc["platform_ids"]) == 3 + extra
    note = study_note(doc)
    assert "matches its preregistration" in note and "failed attention check: 1; too fast: 0; incomplete: 0" in note


def test_a_static_page_posts_each_answer_to_the_collection_url(browser, small_study, tmp_path):
    """file:// page, answers posted cross-origin to the study server as they are given: no file to send back."""
    from survey.static import export_static

    study, cfg = small_study
    with LiveServer(study) as server:
        pages = export_static(study, tmp_path / "static", collect=server.url)
        page = browser.new_page()
        page.goto(pages[0].as_uri())
        through_intro(page)
        answer_screens(page, ("1", "2"), 1)
        plan = server.app.state.plans[0]
        deadline = time.time() + 30   # posted as given: on the server before the study ends
        while len(server.app.state.store.answers(plan.participant)) < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert server.app.state.store.answers(plan.participant).keys() == {"0|best_stylization", "0|fewest_artifacts"}
        n = int(page.locator("#progress").text_content().split("/")[1])
        answer_screens(page, ("1", "2"), n - 1)
        page.wait_for_function("document.getElementById('donemsg').textContent === 'Your answers are saved.'")
        assert not page.locator("#download").is_visible()
        rows = list(csv.DictReader(io.StringIO(urllib.request.urlopen(f"{server.url}/admin/export?token=adm").read().decode())))
    assert len(rows) == n * 2 and {r["participant"] for r in rows} == {plan.participant} and rows[0]["consented_at"]
    assert sorted(json.loads(rows[0]["intro_times"])) == ["consent", "instructions", "practice"]   # posted too
    for r in rows:
        it = next(it for it in plan.items if it.set_id == int(r["set"]) and it.kind == r["kind"])
        assert r["chosen"] == it.order[0 if r["question"] == "best_stylization" else 1]


class PathProxy:
    """A reverse proxy on 127.0.0.1 as the docs' nginx example sets one up: ``/study/...`` forwarded to the study
    server with the path as it came, ``X-Forwarded-For`` and ``X-Forwarded-Proto`` added; anything else 404."""

    def __init__(self, upstream_port: int, prefix: str = "/study"):
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        proxy = self
        self.seen: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                proxy.seen.append(f"{self.command} {self.path}")
                if not (self.path == prefix or self.path.startswith(prefix + "/")):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "host")}
                headers.update({"Host": f"127.0.0.1:{proxy.port}", "X-Forwarded-For": self.client_address[0],
                                "X-Forwarded-Proto": "http"})
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                conn.request(self.command, self.path, body=body or None, headers=headers)
                r = conn.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_OPTIONS = _forward

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_participant_through_a_reverse_proxy_under_a_path(browser, small_study, tmp_path):
    """`safin survey serve --public-url` as a researcher runs it behind a proxy that serves it under /study: the links
    it prints go through the proxy, and a participant in Chromium sees every page, image and answer work there."""
    import socket
    import subprocess
    import sys

    from ..conftest import REPO

    study, cfg = small_study
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with PathProxy(port) as proxy:
        public = f"http://127.0.0.1:{proxy.port}/study"
        server = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "survey", "serve", "--study", str(study),
                                   "--port", str(port), "--public-url", public], cwd=REPO, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            printed = []
            while not printed or not printed[-1].startswith("Admin export"):
                line = server.stdout.readline()
                assert line, "".join(printed)
                printed.append(line.strip())
            links = [line.split(": ", 1)[1] for line in printed if line.startswith(("p01:", "p02:"))]
            admin = printed[-1].split(": ", 1)[1]
            assert len(links) == 2 and all(link.startswith(f"{public}/s/") for link in links), printed
            assert admin.startswith(f"{public}/admin/export?token="), printed
            deadline = time.time() + 30
            while time.time() < deadline:   # uvicorn listening
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.1)
            page = browser.new_page()
            page.goto(links[0])
            through_intro(page)
            page.wait_for_function("[...document.querySelectorAll('.opt img')].every(i => i.complete && i.naturalWidth)")
            n = int(page.locator("#progress").text_content().split("/")[1])
            answer_screens(page, ("1", "2"), n)
            page.wait_for_selector("#done", state="visible")
            page.close()
            rows = list(csv.DictReader(io.StringIO(urllib.request.urlopen(admin).read().decode())))
        finally:
            server.terminate()
            server.wait(timeout=20)
    assert len(rows) == n * 2 and {r["participant"] for r in rows} == {"p01"}
    assert sorted(json.loads(rows[0]["intro_times"])) == ["consent", "instructions", "practice"]
    # everything the page asked for went through the proxy, under its path (the browser's own /favicon.ico aside)
    asked = [line.split(" ", 1)[1] for line in proxy.seen if line != "GET /favicon.ico"]
    assert all(path.startswith("/study/") for path in asked), proxy.seen
    kinds = {path.split("/")[2] for path in asked}
    assert {"s", "api", "img", "admin"} <= kinds, kinds
