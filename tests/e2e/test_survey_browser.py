"""A participant completes a small study in a real headless Chromium (Debian's, driven by Playwright)."""
import csv
import io
import os
import shutil
import urllib.request

import pytest

from survey.design import StudyConfig
from survey.responses import read_responses
from survey.study import build_study

from ..test_survey_server import LiveServer, fake_stylized

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
        page.wait_for_function(f"document.getElementById('progress').textContent !== {current!r} || "
                               "document.getElementById('done').style.display === 'block'")


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
    page.wait_for_selector(".opt img")
    n = int(page.locator("#progress").text_content().split("/")[1])
    answer_screens(page, ("1", "4"), n)
    page.wait_for_selector("#download", state="visible")
    with page.expect_download() as dl:
        page.click("#download")
    target = tmp_path / "responses_p02.csv"
    dl.value.save_as(target)
    resp = read_responses([target], set(cfg.questions))
    assert resp.problems == [] and len(resp.rows) == n * 2 and {r["participant"] for r in resp.rows} == {"p02"}
