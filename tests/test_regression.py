import copy
import json

import yaml

from evaluation.metrics import DIRECTION
from evaluation.regression import compare, compare_training, gate, read_per_pair, read_trajectories, tolerance, update

from .conftest import REPO

TOL = {"default": {"rel": 0.01, "abs": 1e-6}, "ssim": {"rel": 0.02, "abs": 1e-3}}
#: the gate's own tolerances, as CI uses them
GATE_TOL = yaml.safe_load((REPO / "params.yaml").read_text())["regression"]["tolerances"]


def _doc():
    return json.loads((REPO / "metrics/reference/ci.json").read_text())


def _write(tmp_path, name, doc):
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


def test_reference_file_covers_every_method_and_metric():
    doc = _doc()
    assert doc["profile"] == "ci" and doc["n_pairs"] == 40
    assert set(doc["metrics"]) == {"safin", "safin_fin", "sanet", "sanet_safin", "adain", "wct"}


def test_identical_metrics_pass(tmp_path):
    ref = _write(tmp_path, "ref.json", _doc())
    code, text = gate(ref, ref, TOL)
    assert code == 0 and " 0 failing" in text


def test_a_metric_worse_beyond_tolerance_fails_the_gate(tmp_path):
    ref, cur = _doc(), _doc()
    cur["metrics"]["safin"]["content_loss"]["mean"] *= 1.05   # lower is better: 5 % worse
    cur["metrics"]["adain"]["ssim"]["mean"] -= 0.05            # higher is better: worse
    code, text = gate(_write(tmp_path, "r.json", ref), _write(tmp_path, "c.json", cur), TOL)
    assert code == 1
    bad = [line for line in text.splitlines() if "REGRESSED" in line]
    assert len(bad) == 2 and any("safin " in b and "content_loss " in b for b in bad)


def test_small_moves_pass_and_improvements_pass_unless_strict(tmp_path):
    ref, cur = _doc(), _doc()
    cur["metrics"]["safin"]["content_loss"]["mean"] *= 1.005   # within 1 %
    cur["metrics"]["wct"]["lpips"]["mean"] *= 0.9              # better
    r, c = _write(tmp_path, "r.json", ref), _write(tmp_path, "c.json", cur)
    code, text = gate(r, c, TOL)
    assert code == 0 and "IMPROVED" in text
    assert gate(r, c, TOL, strict=True)[0] == 1


def test_missing_metric_and_profile_mismatch_fail(tmp_path):
    ref, cur = _doc(), _doc()
    del cur["metrics"]["sanet"]
    assert gate(_write(tmp_path, "r.json", ref), _write(tmp_path, "c.json", cur), TOL)[0] == 1
    other = copy.deepcopy(ref)
    other["profile"] = "demo"
    code, text = gate(_write(tmp_path, "r2.json", ref), _write(tmp_path, "c2.json", other), TOL)
    assert code == 2 and "profile mismatch" in text
    for key, value, what in (("protocol", {"name": "not " + ref["protocol"]["name"]}, "protocol mismatch"),
                             ("cfsd_network", {"network": "torchvision VGG-19"}, "CFSD network mismatch")):
        other = copy.deepcopy(ref)
        other[key] = value
        code, text = gate(_write(tmp_path, "r3.json", ref), _write(tmp_path, "c3.json", other), TOL)
        assert code == 2 and what in text, text


def test_tolerance_is_max_of_abs_and_rel():
    assert tolerance("ssim", 0.01, TOL) == 1e-3
    assert abs(tolerance("content_loss", 5.0, TOL) - 0.05) < 1e-12
    rows = compare(_doc(), _doc(), TOL)
    assert all(r.status == "ok" for r in rows) and len(rows) == 6 * len(_doc()["metrics"]["safin"])  # every method, metric


def test_the_gate_catches_a_3_percent_worse_content_loss_with_its_own_tolerances(tmp_path):
    for method in _doc()["metrics"]:
        cur = _doc()
        cur["metrics"][method]["content_loss"]["mean"] *= 1.03
        code, text = gate(_write(tmp_path, "r.json", _doc()), _write(tmp_path, "c.json", cur), GATE_TOL)
        assert code == 1 and "REGRESSED" in text, method


def test_reference_holds_provenance_per_pair_metrics_and_training_trajectories():
    doc = _doc()
    assert doc["provenance"]["precision"] == "fp64" and "cpu" in doc["provenance"]
    assert all(len(v) == 40 for m in doc["per_pair"].values() for v in m.values())
    assert set(doc["training"]) == set(doc["metrics"])
    assert all(len(v) == 4 for m in doc["training"].values() for v in m.values())  # ci: 4 iterations
    for method, metrics in doc["metrics"].items():  # the summary's means are the per-pair means
        for metric, v in metrics.items():
            values = doc["per_pair"][method][metric]
            assert abs(sum(values) / len(values) - v["mean"]) <= 1e-5 * max(1.0, abs(v["mean"])), (method, metric)


def _live(root, method, losses):
    folder = root / method / "live" / "plots" / "metrics" / "loss"
    folder.mkdir(parents=True)
    for name, values in losses.items():
        (folder / f"{name}.tsv").write_text("step\t" + name + "\n" + "".join(f"{i}\t{v!r}\n" for i, v in enumerate(values)))


def test_training_trajectories_any_move_beyond_tolerance_fails(tmp_path):
    ref = {"adain": {"total": [300.0, 250.0, 200.0], "style": [20.0, 18.0, 16.0]}}
    _live(tmp_path / "same", "adain", ref["adain"])
    assert read_trajectories(tmp_path / "same", ["adain", "wct"]) == ref
    tol = {"training": {"rel": 1e-6, "abs": 1e-9}}
    assert all(r.status == "ok" for r in compare_training(ref, ref, tol))
    for moved in ([300.0, 250.0, 200.0 * (1 + 1e-5)], [300.0, 250.0 * (1 - 1e-5), 200.0], [300.0, 250.0]):
        rows = compare_training(ref, {"adain": {**ref["adain"], "total": moved}}, tol)
        assert [r.status for r in rows] == ["changed", "ok"], moved  # better or worse: both fail
    rows = compare_training(ref, {}, tol)
    assert {r.status for r in rows} == {"missing"}


def test_update_then_gate_round_trips_with_training(tmp_path):
    summary = _doc()
    for k in ("per_pair", "training", "provenance"):
        summary.pop(k, None)
    cur = _write(tmp_path, "summary.json", summary)
    per_pair = tmp_path / "per_pair.csv"
    metrics = list(summary["metrics"]["adain"])
    per_pair.write_text("method,pair," + ",".join(metrics) + "\n" + "".join(
        f"{m},{i}," + ",".join("1.5" for _ in metrics) + "\n" for m in summary["metrics"] for i in range(3)))
    for m in summary["metrics"]:
        _live(tmp_path / "train", m, {"total": [3.0, 2.0]})
    ref = tmp_path / "ref.json"
    doc = update(ref, cur, per_pair_path=per_pair, train_dir=tmp_path / "train", provenance={"cpu": "x"})
    assert doc["per_pair"] == read_per_pair(per_pair) and doc["training"]["wct"] == {"total": [3.0, 2.0]}
    code, text = gate(ref, cur, GATE_TOL, train_dir=tmp_path / "train")
    assert code == 0, text
    _live(tmp_path / "train2", "adain", {"total": [3.0, 2.01]})
    code, text = gate(ref, cur, GATE_TOL, train_dir=tmp_path / "train2")
    assert code == 1 and "CHANGED" in text and "MISSING" in text  # adain moved; the others are gone
