"""The ``safin`` console script, as a user runs it."""
import os
import shutil
import subprocess
import sys

import pytest

from .conftest import REPO, safin


def run(*args, cwd=REPO, env=None):
    return safin(*args, cwd=cwd, env=env)


def test_console_script_is_installed():
    exe = shutil.which("safin", path=os.path.dirname(sys.executable))
    assert exe, "the 'safin' console script should be installed next to the interpreter"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "fetch-weights" in out.stdout and "fetch-data" in out.stdout


def test_fetch_weights_prints_source_and_checksums_offline(real_cache):
    from safin.io.weights import REGISTRY

    res = run("fetch-weights", env={"SAFIN_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr
    for name in ("vgg19", "vgg19_normalised", "alexnet"):
        assert f"{name}: " in res.stdout
        assert REGISTRY[name].tensor_sha256 in res.stdout
    assert res.stdout.count("from ") >= 3 and "file sha256" in res.stdout


def test_unknown_asset_is_an_error():
    res = run("fetch-weights", "--asset", "resnet")
    assert res.returncode == 1 and "unknown asset 'resnet'" in res.stderr


def test_prepare_images_cli_reports_unreadable(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(REPO / "data/sample/content/coffee.jpg", src / "coffee.jpg")
    (src / "bad.png").write_bytes(b"nope")
    res = run("prepare-images", str(src), str(tmp_path / "out"), "--size", "32", "--workers", "1")
    assert res.returncode == 0, res.stderr
    assert "2 images found" in res.stdout and "1 unreadable" in res.stdout and "bad.png" in res.stdout


def test_profile_without_name_shows_the_active_one():
    res = run("profile")
    assert res.returncode == 0 and "active profile: demo" in res.stdout


def test_bench_train_only_with_loader_writes_flops_and_loader_rows(tmp_path):
    """`safin bench --train-only --loader-workers N` (what `make gpu-check` runs, here on the CPU)."""
    import json

    import yaml
    from PIL import Image

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for role in ("content", "style"):
        (tmp_path / "data" / role).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (72, 72), (i * 90, 40, 160)).save(tmp_path / "data" / role / f"{i}.jpg")
    params["data"]["out"] = str(tmp_path / "data")
    params["train"].update(crop=32, batch_size=2)
    params["benchmark"].update(train_batch=2, train_size=32, warmup=0)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "speed.json"
    res = run("bench", "--params", str(tmp_path / "params.yaml"), "--train-only", "--train-runs", "1",
              "--method", "adain", "--loader-workers", "0", "--out", str(out))
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    assert [r["mode"] for r in doc["results"]] == ["train"] and "wct_transform" not in doc
    assert doc["results"][0]["train_gflop_per_image"] > 0 and doc["results"][0]["paper_recipe_hours"] > 0
    assert doc["loader"][0]["workers"] == 0 and doc["loader"][0]["pairs_per_s"] > 0
    assert "GFLOP/img" in res.stdout and "content/style pairs/s" in res.stdout


def test_train_set_parses_yaml_values_and_refuses_unknown_keys():
    from pipeline.train import parse_settings

    assert parse_settings(["compile=true", "num_workers=8", "lr=1e-4", "precision=fp32"]) == {
        "compile": True, "num_workers": 8, "lr": 1e-4, "precision": "fp32"}
    with pytest.raises(ValueError, match="'colour' is not a trainer setting.*deterministic"):
        parse_settings(["colour=red"])
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_settings(["compile"])
    with pytest.raises(ValueError, match="not a trainer setting"):
        parse_settings(["method=wct"])


def test_train_set_max_iter_is_not_dropped_by_the_absent_option(monkeypatch):
    """``--set max_iter=150`` without ``--max-iter`` reached the trainer as None (then the profile's 600)."""
    import pipeline.train
    from pipeline.cli import main

    seen = {}
    monkeypatch.setattr(pipeline.train, "run", lambda params, method, **kw: seen.update(kw) or {})
    assert main(["train", "--method", "wct", "--set", "max_iter=150", "--set", "device=cpu"]) == 0
    assert seen["max_iter"] == 150 and seen["device"] == "cpu"
    assert main(["train", "--method", "wct", "--set", "max_iter=150", "--max-iter", "7"]) == 0
    assert seen["max_iter"] == 7  # the option, when given, wins


def test_train_with_a_bad_setting_is_a_clear_error_before_any_work():
    res = run("train", "--method", "adain", "--set", "colour=red")
    assert res.returncode == 2 and "'colour' is not a trainer setting" in res.stderr


@pytest.mark.slow
def test_gpu_check_script_runs_its_steps_and_prints_the_summary(tmp_path):
    """`make gpu-check`'s script, one of its steps on the CPU (the paper profile's parameters, the
    sample set cached at 512 px, the step runner, the summary). The loader step's command is
    ``safin bench --train-only --loader-workers``: tests/test_cli.py::test_bench_train_only_with_loader_… runs it
    (here that step was 26 s of the test's 34 s, Xeon)."""
    env = {"PY": sys.executable, "GPU_OUT": str(tmp_path / "gpu"), "ONLY": "inference_safin_big",
           "SIZES_BIG": "64", "DEADLINE_S": "400"}
    res = subprocess.run(["bash", "pipeline/gpu_check.sh"], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "== inference_safin_big: exit 0" in res.stdout
    steps = (tmp_path / "gpu/steps.txt").read_text()
    assert "trainer_safin" not in steps and "loader" not in steps  # not in ONLY: not run
    summary = res.stdout[res.stdout.index("== summary"):]
    assert "-- inference_safin_big\nsafin        infer    64px fast" in summary
