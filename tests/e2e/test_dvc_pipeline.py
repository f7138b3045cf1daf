"""``dvc repro`` on the ci profile, in a throw-away copy of this repository, as a user would run it."""
import csv
import json
import os
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
    res = subprocess.run(["dvc", "status", "--json"], cwd=repo, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


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
    assert set(manifest) == {"vgg19", "vgg19_normalised", "alexnet"}
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
    assert len(claims) >= 8 and {c["verdict"] for c in claims} <= {"reproduced", "not reproduced", "inconclusive"}
    page = (repo / "reports/report.html").read_text()
    assert "data:image/jpeg;base64," in page and "http://" not in page and "https://" not in page
    again = sh(["dvc", "repro"], repo, env)
    assert "Running stage" not in again  # nothing changed: nothing re-runs


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
