import shutil

import pytest
import yaml

from pipeline.params import _flatten, apply_profile, load_params, profile_keys, profile_names

from .conftest import REPO


def test_every_profile_sets_the_same_keys_and_all_exist_in_params():
    names = profile_names(REPO / "profiles")
    assert set(names) == {"ci", "demo", "paper", "pretrained", "styleid"}
    keysets = {n: set(profile_keys(n, REPO / "profiles")) for n in names}
    assert len({frozenset(k) for k in keysets.values()}) == 1, keysets
    flat = _flatten(load_params(REPO / "params.yaml"))
    assert keysets["ci"] <= set(flat)


def test_params_yaml_holds_the_demo_profile_by_default():
    flat = _flatten(load_params(REPO / "params.yaml"))
    for k, v in profile_keys("demo", REPO / "profiles").items():
        assert flat[k] == v, k


def test_switching_profiles_round_trips_and_keeps_comments(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    original = params.read_text()
    apply_profile("ci", params, REPO / "profiles")
    ci = yaml.safe_load(params.read_text())
    assert ci["profile"] == "ci" and ci["data"]["size"] == 128
    assert "# Every knob of the pipeline" in params.read_text()
    apply_profile("paper", params, REPO / "profiles")
    assert yaml.safe_load(params.read_text())["data"]["content"]["source"].endswith("train2014.zip")
    apply_profile("demo", params, REPO / "profiles")
    assert yaml.safe_load(params.read_text()) == yaml.safe_load(original)


def test_unknown_profile_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown profile 'nope'.*ci"):
        apply_profile("nope", REPO / "params.yaml", REPO / "profiles")


def test_the_styleid_profile_is_the_pretrained_one_on_styleids_set():
    """tests/e2e/test_pretrained_profile.py runs the styleid profile: this holds it to the pretrained profile but for
    the set, so that run proves the pretrained profile's path too."""
    pre, sid = (profile_keys(n, REPO / "profiles") for n in ("pretrained", "styleid"))
    differ = {k for k in pre if pre[k] != sid[k]}
    assert differ == {"profile", "data.evaluation.set"}, differ
    assert sid["data.evaluation.set"] == "styleid" and sid["evaluate.protocol"] == "styleid"
