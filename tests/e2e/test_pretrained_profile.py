"""``safin profile pretrained && dvc repro`` end to end, in a throw-away copy of this repository, with a server
on 127.0.0.1 standing in for the authors' hosts (GitHub releases, Dropbox, Google Drive behind its confirm page)
through ``SAFIN_URL_MIRROR``: synthetic files with exactly the released keys, shapes and containers."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ..conftest import REPO, FileServer
from ..test_releases import mirror_name, serve_release
from .test_dvc_pipeline import sh, stages_run
from .test_survey_browser import browser  # noqa: F401 (the fixture: headless Chromium)

RELEASED = ("adain", "wct", "sanet", "safin")


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory, real_cache):
    tmp = tmp_path_factory.mktemp("pretrained")
    repo = tmp / "repo"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for rel in filter(None, files):
        if (REPO / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, repo / rel)
    server = FileServer()
    server.thread.start()
    for i, method in enumerate(RELEASED):
        serve_release(server, method, tmp, seed=10 + i)
    from safin.io.weights import REGISTRY

    bethge = REGISTRY["vgg19_normalised"].sources[0]  # the first source of the encoder asset: bethgelab's
    server.files[mirror_name(bethge.url)] = (tmp / "src_adain" / "vgg_normalised.pth").read_bytes()
    cache = tmp / "cache"
    (cache / "weights").mkdir(parents=True)
    for name in ("vgg19", "alexnet"):  # the offline assets, as a user's cache holds them
        for suffix in (".pth", ".json"):
            shutil.copy(real_cache / "weights" / f"{name}{suffix}", cache / "weights" / f"{name}{suffix}")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "CI": "true",
           "SAFIN_CACHE": str(cache), "SAFIN_URL_MIRROR": server.url("").rstrip("/"),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("SAFIN_OFFLINE", None)
    sh("git init -q && git add -A && git commit -qm copy", repo, env)
    sh([sys.executable, "-m", "pipeline.cli", "profile", "pretrained"], repo, env)
    # the profile as it is, but small images and a short benchmark, so the test takes minutes on 2 cores
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["stylize"]["size"] = 64
    params["benchmark"].update(sizes=[64], runs=1, warmup=0, wct_size=0, methods=["adain"])
    params["evaluate"]["bootstrap"] = 200
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = sh(["dvc", "repro"], repo, env)
    yield repo, env, out, server, cache
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.mark.slow
def test_the_pretrained_profile_runs_on_the_authors_files(pretrained_run):
    repo, env, out, server, cache = pretrained_run
    print(out[-3000:])
    ran = stages_run(out)
    for stage in ["fetch_weights", *(f"train@{m}" for m in RELEASED), *(f"stylize@{m}" for m in RELEASED),
                  "evaluate", "grids", "report", "survey_study", "survey_tally"]:
        assert stage in ran, (stage, ran)
    assert not [s for s in ran if s in ("train@safin_fin", "train@sanet_safin")]  # no release: left out
    # every file came from the (mirrored) canonical URL, WCT's through Google Drive's confirm page
    asked = {name for name, _ in server.requests}
    assert any(n.startswith("drive.google.com/uc?export=download&id=") for n in asked)
    assert any(n.startswith("drive.usercontent.google.com/download?id=") for n in asked)
    recorded = json.loads((cache / "recorded_sha256.json").read_text())
    assert len([k for k in recorded if k.startswith("release/")]) == 2 + 3 + 2 + 10
    assert "vgg19_normalised/url/vgg_normalised.pth" in recorded  # the encoder asset from bethgelab's file
    for m in RELEASED:
        summary = json.loads((repo / f"outputs/train/{m}/summary.json").read_text())
        assert summary["origin"] == "authors' release" and summary["encoder"]["source"].startswith("the authors'")
        assert len(list((repo / f"outputs/stylized/{m}").glob("*.png"))) == 40
    metrics = json.loads((repo / "metrics/summary.json").read_text())
    assert metrics["profile"] == "pretrained" and set(metrics["metrics"]) == set(RELEASED)
    assert metrics["encoder"]["source"].startswith("url https://github.com/naoto0804/pytorch-AdaIN")
    report = (repo / "reports/report.md").read_text()
    assert "pretrained profile: the authors' released models" in report
    for m in RELEASED:
        assert f"| {m} | the authors' release: " in report
    for m in ("safin_fin", "sanet_safin"):
        assert f"| {m} | left out: no released weights of the authors" in report
    assert "Models: adain: the authors' release" in report  # the claims say which models they are about
    claims = json.loads((repo / "reports/claims.json").read_text())
    assert claims and all(c["verdict"] for c in claims)
    page = (repo / "reports/report.html").read_text()
    assert "data:image/jpeg;base64," in page and 'src="http' not in page and "src='http" not in page
    receipt = json.loads((repo / "outputs/survey_study.json").read_text())
    assert receipt["methods"] == ["safin", "sanet", "wct", "adain"] and receipt["images"] > 40 * 4
    assert (repo / "data/survey/study/plan.json").exists()
    # a second run downloads nothing and re-runs nothing but the method check
    n = len(server.requests)
    again = sh(["dvc", "repro"], repo, env)
    assert stages_run(again) == ["check_methods"] and len(server.requests) == n


@pytest.mark.slow
def test_the_report_renders_offline_in_a_real_browser(pretrained_run, browser, tmp_path):
    """reports/report.html opened from disk in headless Chromium with every network request refused: the claims
    come first, every table has rows, every figure's image decodes and has a caption, and the screenshot is
    not blank."""
    import io

    import numpy as np
    from PIL import Image

    repo = pretrained_run[0]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requested = []

    def refuse(route):
        requested.append(route.request.url)
        route.abort()

    page.route("http*://**", refuse)
    page.goto((repo / "reports/report.html").as_uri())
    page.wait_for_load_state("load")
    headings = page.eval_on_selector_all("h2", "els => els.map(e => e.textContent)")
    assert headings[0] == "The paper's claims" and "Metrics (mean over pairs, bootstrap 95% CI)" in headings
    rows = page.eval_on_selector_all("table", "ts => ts.map(t => t.querySelectorAll('tbody tr').length)")
    assert len(rows) >= 8 and min(rows) >= 1, rows
    figures = page.eval_on_selector_all(
        "figure", "fs => fs.map(f => [f.querySelector('img').complete && f.querySelector('img').naturalWidth,"
                  " f.querySelector('figcaption').textContent])")
    assert len(figures) >= 4 and all(w and w > 0 for w, _ in figures), figures
    assert any(c.startswith("Paper Fig. 2") for _, c in figures) and all(len(c) > 20 for _, c in figures)
    assert requested == []  # nothing outside the file itself
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("L"), dtype=float)
    page.close()
    assert shot.shape[0] > 2000 and shot.std() > 10  # a long page with content, not a blank one
