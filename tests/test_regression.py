import copy
import json

from evaluation.regression import compare, gate, tolerance

from .conftest import REPO

TOL = {"default": {"rel": 0.01, "abs": 1e-6}, "ssim": {"rel": 0.02, "abs": 1e-3}}


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
    assert code == 0 and "0 failing" in text


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


def test_tolerance_is_max_of_abs_and_rel():
    assert tolerance("ssim", 0.01, TOL) == 1e-3
    assert abs(tolerance("content_loss", 5.0, TOL) - 0.05) < 1e-12
    rows = compare(_doc(), _doc(), TOL)
    assert all(r.status == "ok" for r in rows) and len(rows) == 6 * 7
