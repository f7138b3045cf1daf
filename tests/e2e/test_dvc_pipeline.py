"""``dvc repro`` on the ci profile, with a plugin method, in a throw-away copy of this repository, as a user would
run it (one run a session, started in the background: ``conftest.py``); then the gate, the report in a browser,
the plugin's place in every stage, unrelated edits, the instruction-set check and an injected regression."""
import csv
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from .conftest import ISA_METHOD, dvc_status, run, sh
from .test_survey_browser import browser  # noqa: F401 (the fixture: headless Chromium)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]  # the first test waits for the run (4-6 min)

def methods():
    import baselines

    return [*baselines.METHOD_NAMES, "colorstats"]


def test_dvc_repro_on_ci_profile(ci_run):
    import baselines

    repo, env, out = ci_run["repo"], ci_run["env"], ci_run["out"]
    print(out[-2000:])
    assert "Running stage 'fetch_weights'" in out and "Running stage 'fetch_data'" in out
    for method in methods():
        assert f"Running stage 'train@{method}'" in out
        summary = json.loads((repo / f"outputs/train/{method}/summary.json").read_text())
        assert summary["iterations"] == 4 and summary["final_losses"]["total"] > 0
        assert (repo / f"outputs/train/{method}/weights.pt").exists()
        assert (repo / f"outputs/train/{method}/live/plots/metrics/loss/total.tsv").exists()
    manifest = json.loads((repo / "outputs/weights/manifest.json").read_text())
    assert set(manifest) == {"vgg19", "vgg19_normalised_derived", "alexnet"}  # ci: the derived encoder
    content = sorted((repo / "outputs/data/content").glob("*.jpg"))
    style = sorted((repo / "outputs/data/style").glob("*.jpg"))
    assert (len(content), len(style)) == (34, 21)
    assert Image.open(content[0]).size == (128, 128)
    report = json.loads((repo / "outputs/data/style/report.json").read_text())
    assert report["unreadable"] == []
    assert (repo / "dvc.lock").exists()
    # stylize: 40 pairs x 7 methods, grids; evaluate: metrics; the CI regression gate on the ci reference
    assert len(list((repo / "outputs/stylized/safin").glob("*.png"))) == 40
    assert (repo / "outputs/figures/grids/fig2_semantic_awareness.png").exists()
    summary = json.loads((repo / "metrics/summary.json").read_text())
    assert summary["profile"] == "ci" and set(summary["metrics"]) == set(methods())
    gate = run([sys.executable, "-m", "pipeline.cli", "regression"], repo, env)
    print(gate.stdout)
    assert gate.returncode == 0, "metric regression gate failed:\n" + gate.stdout[-4000:]
    assert "train/total" in gate.stdout  # the training trajectories are gated too
    for method in baselines.METHOD_NAMES:  # every built-in method is gated; the plugin has no reference
        assert re.search(rf"^{method} +train/total", gate.stdout, re.M), method
    assert "not gated: colorstats (no reference in" in gate.stdout
    survey = json.loads((repo / "metrics/survey.json").read_text())
    assert survey["simulated"] is True and set(survey["shares"]) == {"best_stylization", "fewest_artifacts"}
    report = (repo / "reports/report.md").read_text()
    assert "The paper's claims" in report and "ci profile" in report
    page = (repo / "reports/report.html").read_text()
    assert "data:image/jpeg;base64," in page  # no resource from a server: the ArtFID line may name its URL as text
    assert not re.search(r"""(src|href|url)\(?=?["']?https?://""", page), re.findall(r".{40}https?://.{20}", page)
    assert ci_run["again"] == {}  # nothing changed: nothing would re-run (but check_methods, always)


def test_every_verdict_follows_from_the_per_pair_numbers(ci_run, min_checked=1):
    """Each claim comparing two methods on a metric: its effect is the paired relative difference recomputed
    here from ``metrics/per_pair.csv``, inside its CI, and its verdict is the one the CI gives (a claim that
    said "holds" whatever the numbers, or measured the wrong methods, fails here). A claim "not evaluated" names
    methods summary.json flags as degenerate (the ci profile's 4-step models mostly are: evaluation/degenerate.py)."""
    from evaluation.claims import DIRECTION, DOES_NOT_HOLD, HOLDS, INCONCLUSIVE

    repo = ci_run["repo"]
    with open(repo / "metrics/per_pair.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    claims = json.loads((repo / "reports/claims.json").read_text())
    assert len(claims) >= 8
    summary = json.loads((repo / "metrics/summary.json").read_text())
    n_pairs, degenerate = summary["n_pairs"], summary.get("degenerate") or {}
    checked = 0
    for c in claims:
        if c["verdict"].startswith("not evaluated: degenerate outputs of "):
            named = c["verdict"].removeprefix("not evaluated: degenerate outputs of ").split(", ")
            assert named and all(m in degenerate for m in named), (c, degenerate)
            continue
        m = re.match(r"(\w+): (\w+) \S+ vs (\w+) \S+; (paired )?difference", c["evidence"])
        if not m:
            continue
        metric, a, b, paired = m.groups()
        va = np.array([float(r[metric]) for r in rows if r["method"] == a])
        vb = np.array([float(r[metric]) for r in rows if r["method"] == b])
        assert len(va) == len(vb) == n_pairs, (c["claim"], len(va), len(vb))
        effect = ((va - vb) / np.abs(vb).mean()).mean()
        mean, (lo, hi) = c["numbers"]["mean"], c["numbers"]["ci95"]
        assert abs(effect - mean) < 1e-4 and lo <= mean <= hi, (c["claim"], effect, mean, lo, hi)
        if paired:  # "a is better than b": lower (or higher) by the metric's direction
            good, bad = (hi < 0, lo > 0) if DIRECTION[metric] < 0 else (lo > 0, hi < 0)
        else:  # "similar": the CI within ±margin
            margin = c["numbers"]["margin"]
            good, bad = -margin < lo and hi < margin, lo > margin or hi < -margin
        assert c["verdict"] == (HOLDS if good else DOES_NOT_HOLD if bad else INCONCLUSIVE), c
        checked += 1
    assert checked >= min_checked, claims


def test_the_report_renders_offline_in_a_real_browser(ci_run, browser, tmp_path):
    """reports/report.html opened from disk in headless Chromium with every network request refused: the claims
    come first, every table has rows, every figure's image decodes and has a caption, and the screenshot is
    not blank."""
    import io

    repo = ci_run["repo"]
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


def test_a_plugin_method_goes_through_the_whole_pipeline(ci_run):
    """A method from another package, named in params.yaml and nowhere else: trained, stylized, evaluated,
    benchmarked, in the grids, the report and the study; taking it out of the lists leaves every other
    method's training and stylization up to date (only what gathers all methods is stale)."""
    repo, env = ci_run["repo"], ci_run["env"]
    listing = sh([sys.executable, "-m", "pipeline.cli", "methods"], repo, env)
    assert "colorstats" in listing and "Colour statistics (plugin)" in listing and "safin-colorstats 0.1.0" in listing
    summary = json.loads((repo / "outputs/train/colorstats/summary.json").read_text())
    assert summary["iterations"] == 4 and summary["final_losses"]["total"] > 0
    assert len(list((repo / "outputs/stylized/colorstats").glob("*.png"))) == 40
    metrics = json.loads((repo / "metrics/summary.json").read_text())["metrics"]
    assert "colorstats" in metrics and metrics["colorstats"]["lpips"]["mean"] > 0
    grid = Image.open(repo / "outputs/figures/grids/pairs_01.png")  # row label, content, style, 7 methods
    cell = (grid.width - 36 - 4) / 9 - 4
    assert cell == int(cell) and cell >= 64, grid.width
    last = np.asarray(grid.convert("L"))[40:40 + int(cell), grid.width - 4 - int(cell):grid.width - 4]
    assert last.std() > 1  # the plugin's column holds an image
    speed = json.loads((repo / "metrics/speed.json").read_text())
    assert any(r["method"] == "colorstats" and "error" not in r for r in speed["results"])
    report = (repo / "reports/report.md").read_text()
    assert "| colorstats | Colour statistics (plugin) | plugin safin-colorstats 0.1.0 |" in report
    assert any(line.startswith("| colorstats |") and "[" in line for line in report.splitlines()
               if "lpips" not in line)
    record = json.loads((repo / "outputs/methods/colorstats.json").read_text())
    assert record["distribution"] == "safin-colorstats" and not record["builtin"]
    # offered to the study: named in survey.methods, the study holds its images (labels from its class)
    assert (repo / "data/survey/study/images/00/colorstats.png").exists()
    tally = json.loads((repo / "outputs/survey/tally.json").read_text())
    assert "colorstats" in tally["shares"]["best_stylization"]
    assert tally["labels"]["colorstats"] == "Colour statistics (plugin)"
    # out of the lists again: only the stages that gather every method are stale, no other method's
    params = repo / "params.yaml"
    with_plugin = params.read_text()
    try:
        params.write_text(ci_run["without_plugin"])
        status = dvc_status(repo, env)
        assert {"grids", "evaluate", "benchmark", "survey_tally"} <= set(status), status
        assert not [s for s in status if s.startswith(("train@", "stylize@"))], status
    finally:
        params.write_text(with_plugin)
    assert dvc_status(repo, env) == {}


def test_unrelated_edits_leave_training_alone_and_real_responses_retally(ci_run):
    """Editing the survey tally or the downloader marks no training stage stale; a real responses file
    re-tallies and the report switches from SIMULATED to the real study."""
    repo, env = ci_run["repo"], ci_run["env"]
    edited = [repo / "survey/tally.py", repo / "safin/io/download.py"]
    originals = {f: f.read_text() for f in edited}
    responses = repo / "data/survey/responses/study.csv"
    try:
        for f in edited:
            f.write_text(f.read_text() + "\n# an unrelated edit\n")
        status = dvc_status(repo, env)
        assert "survey_tally" in status, status  # the check can see a stale stage
        assert not [s for s in status if s.startswith("train")], status
        # and training itself resumes its final checkpoint instead of starting again
        stage_out = repo / "outputs/train/adain"
        shutil.copytree(stage_out, repo / "adain_backup")
        rerun = run([sys.executable, "-m", "pipeline.cli", "train", "--method", "adain"], repo, env)
        assert rerun.returncode == 0 and "resuming adain from iteration 4" in rerun.stderr, rerun.stderr[-2000:]
        shutil.rmtree(stage_out)  # the stage's outputs as DVC recorded them
        shutil.move(repo / "adain_backup", stage_out)
        for f, text in originals.items():
            f.write_text(text)
        with open(repo / "outputs/survey/simulated_responses.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        with open(responses, "w", newline="") as f:  # the same answers, as if real (simulated=0)
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows({**r, "simulated": "0"} for r in rows)
        status = dvc_status(repo, env)
        assert set(status) == {"survey_tally"}, status
        out = sh(["dvc", "repro", "report"], repo, env)
        assert "Running stage 'survey_tally'" in out and "Running stage 'report'" in out
        assert "Running stage 'train" not in out
        assert json.loads((repo / "metrics/survey.json").read_text())["simulated"] is False
        assert "SIMULATED" not in (repo / "reports/report.md").read_text()
    finally:
        for f, text in originals.items():
            f.write_text(text)
        responses.unlink(missing_ok=True)


def test_the_gate_holds_under_an_older_instruction_set(ci_run):
    """The gated computation of one method (``ISA_METHOD``: its ci training, one pair stylized and measured) in a
    process capped at the newest instruction set older than this run's own (whose run is the pipeline above;
    ``conftest.isa_settings`` says why one), held against the reference frozen on another machine."""
    from safin.runtime import cpu_isa

    repo, res, others = ci_run["repo"], ci_run["isa"], ci_run["isa_settings"]
    assert others, "every x86-64 CPU of these machines can emulate at least the baseline"
    print(res.stdout[-6000:])
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]
    doc = json.loads((repo / "isa_check.json").read_text())
    assert set(doc["settings"]) == set(others) and doc["methods"] == [ISA_METHOD]
    assert cpu_isa.active_isa() not in others
    for setting, r in doc["settings"].items():
        assert r["failing"] == 0 and "emulated on" in r["cpu"], (setting, r)
        assert r["max_rel_dev_training"] < 1e-9, (setting, r)  # float64: no chaos left to amplify
    assert f"{ISA_METHOD} " in res.stdout and "train/total" in res.stdout


def test_the_gate_bites_on_an_injected_regression(ci_run):
    """One method's style weight changed by 1 %: its training trajectory moves and the gate fails."""
    repo, env = ci_run["repo"], ci_run["env"]
    params = repo / "params.yaml"
    original = params.read_text()
    adain = "    adain: {content_weight: 1.0, style_weight: 10.0"   # its line in train.method_overrides
    assert original.count(adain) == 1, "train.method_overrides.adain not found in the ci params.yaml"
    try:
        params.write_text(original.replace(adain, adain[:-1] + "1"))   # style_weight 10.0 -> 10.1
        # the checkpoint of the old recipe stops a plain rerun; --restart sets it aside (never deleted)
        stopped = subprocess.run([sys.executable, "-m", "pipeline.cli", "train", "--method", "adain"], cwd=repo,
                                 env=env, capture_output=True, text=True)
        assert stopped.returncode == 1 and "--restart" in stopped.stderr, stopped.stderr[-2000:]
        sh([sys.executable, "-m", "pipeline.cli", "train", "--method", "adain", "--restart"], repo, env)
        gate = subprocess.run([sys.executable, "-m", "pipeline.cli", "regression"], cwd=repo, env=env,
                              capture_output=True, text=True)
        print(gate.stdout)
        assert gate.returncode == 1, gate.stdout
        failing = [line for line in gate.stdout.splitlines() if line.rstrip().endswith(("CHANGED", "REGRESSED"))]
        assert failing and all(line.startswith("adain ") for line in failing), failing
        assert any("train/style" in line for line in failing)
    finally:
        params.write_text(original)
