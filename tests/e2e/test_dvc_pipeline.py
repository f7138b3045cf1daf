"""``dvc repro`` on the ci profile, in a throw-away copy of this repository, as a user would run it."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ..conftest import REPO


def sh(cmd, cwd, env):
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, shell=isinstance(cmd, str))
    assert res.returncode == 0, f"{cmd} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout + res.stderr


def dvc_status(repo, env) -> dict:
    """``dvc status`` without stage check_methods, which is always changed by design (it checks the
    installed methods; the stages of an unchanged method stay up to date)."""
    res = subprocess.run(["dvc", "status", "--json"], cwd=repo, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    status = json.loads(res.stdout)
    assert "always changed" in status.get("check_methods", []), status
    return {k: v for k, v in status.items() if k != "check_methods"}


def stages_run(out: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", out)


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory, real_cache):
    dst = tmp_path_factory.mktemp("clone") / "repo"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "SAFIN_OFFLINE": "1", "CI": "true", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    sh("git init -q && git add -A && git commit -qm copy", dst, env)
    return dst, env


@pytest.fixture(scope="module")
def ci_run(repo_copy):
    """``dvc repro`` on the ci profile, once for the tests of this module (they run in this order)."""
    repo, env = repo_copy
    sh([sys.executable, "-m", "pipeline.cli", "profile", "ci"], repo, env)
    return repo, env, sh(["dvc", "repro"], repo, env)


@pytest.mark.slow
def test_dvc_repro_on_ci_profile(ci_run):
    repo, env, out = ci_run
    print(out[-2000:])
    assert "Running stage 'fetch_weights'" in out and "Running stage 'fetch_data'" in out
    import baselines
    for method in baselines.METHOD_NAMES:
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
    # stylize: 40 pairs x 6 methods, grids; evaluate: metrics; the CI regression gate on the ci reference
    assert len(list((repo / "outputs/stylized/safin").glob("*.png"))) == 40
    assert (repo / "outputs/figures/grids/fig2_semantic_awareness.png").exists()
    summary = json.loads((repo / "metrics/summary.json").read_text())
    assert summary["profile"] == "ci" and set(summary["metrics"]) == set(baselines.METHOD_NAMES)
    gate = subprocess.run([sys.executable, "-m", "pipeline.cli", "regression"], cwd=repo, env=env,
                          capture_output=True, text=True)
    print(gate.stdout)
    assert gate.returncode == 0, "metric regression gate failed:\n" + gate.stdout[-4000:]
    assert "train/total" in gate.stdout  # the training trajectories are gated too
    survey = json.loads((repo / "metrics/survey.json").read_text())
    assert survey["simulated"] is True and set(survey["shares"]) == {"best_stylization", "fewest_artifacts"}
    report = (repo / "reports/report.md").read_text()
    assert "The paper's claims" in report and "ci profile" in report
    claims = json.loads((repo / "reports/claims.json").read_text())
    assert len(claims) >= 8 and {c["verdict"] for c in claims} <= {"holds in this run (1 seed)", "inconclusive",
                                                                   "does not hold in this run (1 seed)"}
    page = (repo / "reports/report.html").read_text()
    assert "data:image/jpeg;base64," in page  # no resource from a server: the ArtFID line may name its URL as text
    assert not re.search(r"""(src|href|url)\(?=?["']?https?://""", page), re.findall(r".{40}https?://.{20}", page)
    again = sh(["dvc", "repro"], repo, env)
    assert stages_run(again) == ["check_methods"]  # nothing changed: nothing re-runs but the method check


@pytest.mark.slow
def test_unrelated_edits_leave_training_alone_and_real_responses_retally(ci_run):
    """Editing the survey tally or the downloader marks no training stage stale; a real responses file
    re-tallies and the report switches from SIMULATED to the real study."""
    repo, env, _ = ci_run
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
        rerun = subprocess.run([sys.executable, "-m", "pipeline.cli", "train", "--method", "adain"], cwd=repo,
                               env=env, capture_output=True, text=True)
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


@pytest.mark.slow
def test_the_gate_holds_under_every_instruction_set_this_cpu_can_emulate(ci_run):
    """The gated computation (every method's ci training, 2 pairs stylized and measured) in a process
    capped at each older instruction set than this CPU's own (whose run is the test above), held
    against the reference frozen on another machine."""
    from safin.runtime import cpu_isa

    repo, env, _ = ci_run
    others = [s for s in cpu_isa.emulatable() if s != cpu_isa.hardware_isa()]
    assert others, "every x86-64 CPU of these machines can emulate at least the baseline"
    res = subprocess.run([sys.executable, "-m", "pipeline.cli", "isa-check", "--settings", ",".join(others),
                          "--pairs", "2", "--out", "isa_check.json"], cwd=repo, env=env, capture_output=True, text=True)
    print(res.stdout[-6000:])
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]
    doc = json.loads((repo / "isa_check.json").read_text())
    assert set(doc["settings"]) == set(others)
    for setting, r in doc["settings"].items():
        assert r["failing"] == 0 and "emulated on" in r["cpu"], (setting, r)
        assert r["max_rel_dev_training"] < 1e-9, (setting, r)  # float64: no chaos left to amplify


PLUGIN = REPO / "tests" / "plugins" / "colorstats"


@pytest.fixture
def installed_plugin():
    """The test plugin installed into this venv as a user would (pip, its own pyproject.toml), removed after."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = PLUGIN / "build"
    subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", str(PLUGIN)], check=True,
                   capture_output=True, text=True)
    shutil.rmtree(build, ignore_errors=True)
    for egg in PLUGIN.glob("*.egg-info"):
        shutil.rmtree(egg, ignore_errors=True)
    try:
        yield "colorstats"
    finally:
        subprocess.run([*pip, "uninstall", "-y", "safin-colorstats"], capture_output=True, text=True)


@pytest.mark.slow
def test_a_plugin_method_goes_through_the_whole_pipeline(ci_run, installed_plugin):
    """A method from another package, named in params.yaml and nowhere else: trained, stylized, evaluated,
    benchmarked, in the grids, the report and the study's list; no other method's training or
    stylization re-runs; the gate says it has no reference for it."""
    from PIL import Image

    repo, env, _ = ci_run
    params = repo / "params.yaml"
    original = params.read_text()
    train_list = "methods: [adain, wct, sanet, sanet_safin, safin, safin_fin]"
    stylize_list = "methods: [safin, safin_fin, sanet, sanet_safin, adain, wct]"
    survey_list = "methods: [safin, sanet, wct, adain]"
    assert original.count(train_list) == 2 and original.count(stylize_list) == 1  # train and benchmark; stylize
    assert original.count(survey_list) == 1
    grid = repo / "outputs/figures/grids/pairs_01.png"
    width_before = Image.open(grid).width
    listing = sh([sys.executable, "-m", "pipeline.cli", "methods"], repo, env)
    assert "colorstats" in listing and "Colour statistics (plugin)" in listing and "safin-colorstats 0.1.0" in listing
    try:
        params.write_text(original.replace(train_list, train_list[:-1] + ", colorstats]")
                          .replace(stylize_list, stylize_list[:-1] + ", colorstats]")
                          .replace(survey_list, survey_list[:-1] + ", colorstats]"))
        out = sh(["dvc", "repro"], repo, env)
        ran = stages_run(out)
        assert {"check_methods", "train@colorstats", "stylize@colorstats", "grids", "evaluate", "benchmark",
                "survey_tally", "report"} <= set(ran), ran
        assert not [s for s in ran if s.startswith(("train@", "stylize@")) and not s.endswith("@colorstats")], ran
        summary = json.loads((repo / "outputs/train/colorstats/summary.json").read_text())
        assert summary["iterations"] == 4 and summary["final_losses"]["total"] > 0
        assert len(list((repo / "outputs/stylized/colorstats").glob("*.png"))) == 40
        metrics = json.loads((repo / "metrics/summary.json").read_text())["metrics"]
        assert "colorstats" in metrics and metrics["colorstats"]["lpips"]["mean"] > 0
        assert Image.open(grid).width > width_before  # one more column
        speed = json.loads((repo / "metrics/speed.json").read_text())
        assert any(r["method"] == "colorstats" for r in speed["results"])
        report = (repo / "reports/report.md").read_text()
        assert "| colorstats | Colour statistics (plugin) | plugin safin-colorstats 0.1.0 |" in report
        assert any(line.startswith("| colorstats |") and "[" in line for line in report.splitlines()
                   if "lpips" not in line)
        record = json.loads((repo / "outputs/methods/colorstats.json").read_text())
        assert record["distribution"] == "safin-colorstats" and not record["builtin"]
        gate = subprocess.run([sys.executable, "-m", "pipeline.cli", "regression"], cwd=repo, env=env,
                              capture_output=True, text=True)
        assert gate.returncode == 0, gate.stdout[-3000:]
        assert "not gated: colorstats (no reference in" in gate.stdout
        # offered to the study: named in survey.methods, a study is built with it (labels from its class)
        study = subprocess.run([sys.executable, "-m", "pipeline.cli", "survey", "build-study", "--study",
                                str(repo / "study_with_plugin")], cwd=repo, env=env, capture_output=True, text=True)
        assert study.returncode == 0, study.stderr[-2000:]
        assert (repo / "study_with_plugin/images/00/colorstats.png").exists()
        tally = json.loads((repo / "outputs/survey/tally.json").read_text())
        assert "colorstats" in tally["shares"]["best_stylization"]
        assert tally["labels"]["colorstats"] == "Colour statistics (plugin)"
    finally:
        params.write_text(original)
        shutil.rmtree(repo / "study_with_plugin", ignore_errors=True)
    status = dvc_status(repo, env)  # back to the original list: only what aggregates methods is stale
    assert not [s for s in status if s.startswith(("train@", "stylize@"))], status


@pytest.mark.slow
def test_the_gate_bites_on_an_injected_regression(ci_run):
    """One method's style weight changed by 1 %: its training trajectory moves and the gate fails."""
    repo, env, _ = ci_run
    params = repo / "params.yaml"
    original = params.read_text()
    assert "adain: {content_weight: 1.0, style_weight: 10.0}" in original
    try:
        params.write_text(original.replace("adain: {content_weight: 1.0, style_weight: 10.0}",
                                           "adain: {content_weight: 1.0, style_weight: 10.1}"))
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
