"""A study is frozen once anyone has answered, and its analyses count what participants saw: image hashes in the
plan, the build refusing to change an answered study, the tally refusing a changed image; the design's repeats
(after their originals, each a different set); re-blinding only the participants that need it; the Luce and mixed
models on the same screens as the shares; study claims without SAFIN or with SAFIN alone."""
import hashlib
import json
import random

import numpy as np
import pytest
from PIL import Image

from survey.design import StudyConfig, image_hashes, load_plan, make_plan, plan_participant, save_plan
from survey.study import StudyFrozen, build_study, check_images

from .conftest import REPO
from .test_survey_server import fake_stylized

CFG = StudyConfig(n_sets=3, n_participants=3, n_attention_checks=1, n_repeats=1)


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def built(tmp_path):
    stylized = fake_stylized(tmp_path / "stylized", 3, CFG.methods)
    return stylized, build_study(stylized, tmp_path / "study", CFG)


def retrain(stylized, method="safin", set_id=0):
    """What a retraining does to the stylize stage's outputs: one output's pixels change."""
    path = stylized / method / f"{set_id:02d}.png"
    arr = np.asarray(Image.open(path)).copy()
    arr[:8] = 255 - arr[:8]
    Image.fromarray(arr).save(path)


def answer_file(responses, participant="p01"):
    responses.mkdir(exist_ok=True)
    (responses / f"responses_{participant}.csv").write_text(
        "participant,screen,question,chosen_option,shown_at,answered_at\n" f"{participant},0,best_stylization,x,t0,t1\n")


def test_the_plan_records_the_sha256_of_every_image_the_study_holds(built):
    _, study = built
    recorded = image_hashes(study / "plan.json")
    files = sorted((study / "images").glob("*/*.png"))
    assert len(files) == 3 * (2 + len(CFG.methods) + 1) + 2 + len(CFG.methods)  # and the practice screen
    assert recorded == {f"{f.parent.name}/{f.name}": sha(f) for f in files}


def test_an_answered_study_is_frozen_and_nothing_is_written(built, tmp_path, capsys):
    stylized, study = built
    answer_file(tmp_path / "responses")
    before = {p: p.read_bytes() for p in [study / "plan.json", *(study / "images").glob("*/*.png")]}
    retrain(stylized)
    with pytest.raises(StudyFrozen) as e:
        build_study(stylized, study, CFG, replace_unanswered=True, responses=tmp_path / "responses")
    msg = str(e.value)
    assert str(study) in msg and "1 answers" in msg and "00/safin.png" in msg
    assert "keep the old study" in msg and "start a new one" in msg and "survey.study" in msg
    assert {p: p.read_bytes() for p in before} == before  # plan and every image as they were
    # the same outputs as when it was built: an answered study is rebuilt without complaint
    retrain(stylized)  # (inverting twice restores the pixels)
    build_study(stylized, study, CFG, responses=tmp_path / "responses")
    assert "images unchanged" in capsys.readouterr().out
    # a new study in its own folder: built from the new outputs, the old one kept
    retrain(stylized)
    fresh = build_study(stylized, tmp_path / "study-2", CFG, responses=tmp_path / "responses-2")
    assert sha(fresh / "images/00/safin.png") != sha(study / "images/00/safin.png")
    assert (study / "plan.json").read_bytes() == before[study / "plan.json"]


def test_an_unanswered_study_takes_the_new_images_and_their_hashes(built, capsys):
    stylized, study = built
    plan_before = load_plan(study / "plan.json")[1]
    old = sha(study / "images/00/safin.png")
    linked = study.parent / "static_copy.png"  # a static export hard-links the study's images
    linked.hardlink_to(study / "images/00/safin.png")
    retrain(stylized)
    build_study(stylized, study, CFG)
    assert "image(s) changed and no answer was recorded" in capsys.readouterr().out
    new = sha(study / "images/00/safin.png")
    assert new != old and image_hashes(study / "plan.json")["00/safin.png"] == new
    assert sha(linked) == old  # replaced, not rewritten in place
    assert [p.token for p in load_plan(study / "plan.json")[1]] == [p.token for p in plan_before]


def test_the_tally_refuses_an_answer_given_on_an_image_that_changed(built):
    _, study = built
    _, plans = load_plan(study / "plan.json")
    item = plans[0].items[0]
    rows = [{"participant": "p01", "set": item.set_id, "kind": item.kind, "question": "best_stylization",
             "chosen": item.order[0], "order": item.order}]
    recorded = image_hashes(study / "plan.json")
    assert check_images(study, rows, recorded) == {"checked": True, "images": 2 + len(item.order)}
    target = study / "images" / f"{item.set_id:02d}" / f"{item.order[-1]}.png"
    target.write_bytes(target.read_bytes()[:-1] + b"\0")
    with pytest.raises(StudyFrozen, match=rf"{target.name}: changed since the study was built.*1 counted answers"):
        check_images(study, rows, recorded)
    target.unlink()
    with pytest.raises(StudyFrozen, match="is missing"):
        check_images(study, rows, recorded)
    # answers on other sets are not affected; a plan from before the hashes says it could not check
    other = [r | {"set": (item.set_id + 1) % 3} for r in rows]
    assert check_images(study, other, recorded)["checked"] is True
    assert check_images(study, rows, {})["checked"] is False


@pytest.mark.parametrize("n_repeats,n_sets", [(2, 40), (5, 5), (3, 4)])
def test_repeats_come_after_their_originals_and_never_repeat_a_set_twice(n_repeats, n_sets):
    for seed in range(60):
        cfg = StudyConfig(n_sets=n_sets, n_repeats=n_repeats, n_attention_checks=2, seed=seed)
        items = plan_participant(cfg, seed % 7).items
        repeats = [i for i, it in enumerate(items) if it.kind == "repeat"]
        assert len(repeats) == min(n_repeats, n_sets)
        assert len({items[i].set_id for i in repeats}) == len(repeats)
        for i in repeats:
            original = next(j for j, it in enumerate(items) if it.kind == "regular" and it.set_id == items[i].set_id)
            assert original < i


def test_only_participants_without_identifiers_are_blinded_again(tmp_path):
    cfg = StudyConfig(n_sets=3, n_participants=3, n_attention_checks=1, n_repeats=1)
    plans = make_plan(cfg)
    path = save_plan(plans, cfg, tmp_path / "plan.json", images={"00/content.png": "ab" * 32})
    doc = json.loads(path.read_text())
    for it in doc["participants"][1]["items"]:  # p02 written before blinding; p01's and p03's pages are out
        it["options"] = []
    doc["participants"][1]["refs"] = {}
    path.write_text(json.dumps(doc))
    _, loaded = load_plan(path)
    assert loaded[0].items == plans[0].items and loaded[0].refs == plans[0].refs
    assert loaded[2].items == plans[2].items and loaded[2].refs == plans[2].refs
    assert all(len(it.options) == len(it.order) for it in loaded[1].items)
    ids = [set(p.image_ids()) for p in loaded]
    assert not (ids[1] & ids[0]) and not (ids[1] & ids[2])
    assert image_hashes(path) == {"00/content.png": "ab" * 32}  # saved back with the image hashes kept


def test_the_luce_and_mixed_models_count_the_same_screens_as_the_shares():
    from survey.models import _choices, _option_records

    methods = ["safin", "sanet", "wct"]
    rng = random.Random(0)
    rows = []
    for p in range(8):
        for s in range(10):
            order = rng.sample(methods, 3)
            rows.append({"participant": f"p{p}", "set": s, "kind": "regular", "question": "q", "screen": str(s),
                         "order": order, "chosen": rng.choice(order)})
    # a repeat answered against the participant's first choice, every time: a model that counts it moves
    extra = [{**r, "kind": "repeat", "screen": "99", "chosen": "wct"} for r in rows if r["set"] == 0]
    # what each model is fitted on (a fit takes seconds: statsmodels' VB), and the shares' votes
    for data in (lambda rs: _choices(rs, methods, "q"), lambda rs: _option_records(rs, methods, "q")):
        assert data(rows + extra) == data(rows) and len(data(rows)) > 0
    from survey.tally import vote_tensor

    assert np.array_equal(vote_tensor(rows + extra, methods, "q")[0], vote_tensor(rows, methods, "q")[0])


def test_study_claims_without_safin_or_with_safin_alone_are_inconclusive(tmp_path):
    from evaluation.claims import INCONCLUSIVE, check_claims
    from tests.test_claims_report import _per_pair

    for shares in ({"sanet": 0.6, "wct": 0.4}, {"safin": 1.0}):
        doc = {"simulated": False, "shares": {q: {m: {"share": v, "ci95": [v - 0.1, v + 0.1]} for m, v in shares.items()}
                                              for q in ("best_stylization", "fewest_artifacts")}}
        (tmp_path / "tally.json").write_text(json.dumps(doc))
        verdicts = check_claims(_per_pair(tmp_path, {}), tmp_path, tmp_path / "tally.json")
        study = [v for v in verdicts if "user study" in v.claim or "Users prefer" in v.claim]
        assert len(study) == 2 and all(v.verdict == INCONCLUSIVE for v in study)
        assert all(("does not show SAFIN" if "safin" not in shares else "SAFIN alone") in v.evidence for v in study)


def test_the_report_says_whether_the_study_images_were_checked():
    from evaluation.report import study_note

    doc = {"simulated": False, "participants": {"kept": 3, "total": 3, "excluded": {}}}
    assert "sha256 checked by the tally" in study_note(doc | {"images": {"checked": True, "images": 21}})
    assert "21 images" in study_note(doc | {"images": {"checked": True, "images": 21}})
    why = "the plan predates recorded image hashes (built before they existed)"
    assert f"not checked against the plan: {why}" in study_note(doc | {"images": {"checked": False, "why": why}})


def test_a_participant_too_fast_is_excluded_by_that_rule_and_one_without_times_is_not_judged():
    import datetime as dt

    from survey.responses import Responses
    from survey.tally import TallyConfig, exclusions

    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)

    def rows(participant, seconds):
        out = []
        for s in range(4):
            for j, q in enumerate(("best_stylization", "fewest_artifacts")):
                shown = t0 + dt.timedelta(seconds=100 * s)
                answered = shown + dt.timedelta(seconds=(seconds or 0) * (j + 1) / 2)
                out.append({"participant": participant, "set": s, "kind": "regular", "question": q, "chosen": "safin",
                            "order": ["safin", "sanet"], "screen": s, "simulated": False,
                            "shown_at": shown.isoformat() if seconds is not None else "",
                            "answered_at": answered.isoformat() if seconds is not None else ""})
        return out

    resp = Responses(rows("slow", 6.0) + rows("fast", 1.5) + rows("edge", 2.0) + rows("untimed", None))
    cfg = TallyConfig(["safin", "sanet"], ["best_stylization", "fewest_artifacts"], n_sets=4)
    excluded, reasons = exclusions(resp, cfg)
    assert reasons["too fast"] == ["fast"] and excluded == {"fast"}
    cfg.min_median_screen_seconds = None
    assert exclusions(resp, cfg)[0] == set()


@pytest.fixture
def params_for(tmp_path):
    """params.yaml pointed at a small built study, its responses and a registration, all under tmp_path."""
    from pipeline.params import load_params

    def make(study):
        params = load_params("params.yaml")
        params["survey"].update({"methods": CFG.methods, "n_sets": 3, "n_participants": 3, "attention_checks": 1,
                                 "repeats": 1, "bootstrap": 50, "study": str(study), "responses": str(tmp_path / "resp"),
                                 "out": str(tmp_path / "out"), "metrics": str(tmp_path / "survey.json"),
                                 "preregistration": str(tmp_path / "prereg.json")})
        params["survey"]["power"].update({"participants": [10], "sets": [20], "simulations": 20, "bootstrap": 50})
        return params
    return make


def test_preregister_then_tally_says_whether_the_study_matches_its_registration(built, tmp_path, params_for):
    from evaluation.report import study_note
    from pipeline.survey import preregister, registration_parts, tally_stage
    from survey.preregistration import check

    _, study = built
    params = params_for(study)
    path, sha = preregister(params)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha and sha in (tmp_path / "prereg.json.sha256").read_text()
    reg = json.loads(path.read_text())
    assert reg["design"]["n_participants"] == 3 and reg["exclusion_rules"]["too fast"].startswith("median time")
    assert reg["plan_sha256"] and reg["images_sha256"] and reg["power"]["design"]["participants"] == 3
    with pytest.raises(FileExistsError, match="never rewritten"):
        preregister(params)
    doc = tally_stage(params)  # (no answers yet: a simulated study, tallied against the registration all the same)
    assert doc["preregistration"]["matches"] is True
    assert "matches its preregistration" in study_note(doc)
    assert "too fast: 0" in study_note(doc) and "Exclusion rules, in order: failed attention check" in study_note(doc)
    # what the stage does at every tally (above), without refitting the models: a rule changed after registering
    params["survey"]["exclusion"]["min_median_screen_seconds"] = 1.0
    doc["preregistration"] = check(path, registration_parts(params))
    assert doc["preregistration"]["matches"] is False and doc["preregistration"]["differences"] == [
        "exclusion_rules: too fast"]
    assert "does NOT match its preregistration" in study_note(doc) and "differs in exclusion_rules: too fast" in study_note(doc)
    params["survey"]["exclusion"]["min_median_screen_seconds"] = 2.0
    another = {**registration_parts(params), "design": {**reg["design"], "n_participants": 4}}
    assert check(path, another)["differences"] == ["design: n_participants"]
    path.write_text(path.read_text().replace('"seed": 0', '"seed": 0 '))  # edited after registering
    doc["preregistration"] = check(path, registration_parts(params))
    assert doc["preregistration"]["unchanged"] is False and "edited after it was registered" in study_note(doc)


def test_preregister_refuses_once_answers_exist(built, tmp_path, params_for):
    from pipeline.survey import preregister

    _, study = built
    answer_file(tmp_path / "resp")
    with pytest.raises(ValueError, match="already has 1 answers.*before any data exists"):
        preregister(params_for(study))
    assert not (tmp_path / "prereg.json").exists()


def test_answers_in_the_database_freeze_the_study_even_when_set_aside_and_an_unreadable_one_refuses(built, tmp_path):
    import sqlite3

    from survey.server import Store

    stylized, study = built
    store = Store(study / "responses.sqlite")
    store._conn().execute("INSERT INTO released_answers VALUES ('p01',0,'q',0,'regular','safin','a;b','','',0,0)")
    retrain(stylized)
    with pytest.raises(StudyFrozen, match=r"1 answers \(1 in .*responses.sqlite\)"):
        build_study(stylized, study, CFG)
    store._conn().close()
    for f in study.glob("responses.sqlite*"):
        f.unlink()
    (study / "responses.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(ValueError, match="cannot be read.*whether the study has answers is unknown"):
        build_study(stylized, study, CFG)


def test_preregister_needs_a_built_study(tmp_path, params_for):
    from pipeline.survey import preregister

    with pytest.raises(ValueError, match="build the study first"):
        preregister(params_for(tmp_path / "nothing"))


def test_a_study_analysed_otherwise_than_registered_gets_no_verdict(tmp_path):
    from evaluation.claims import INCONCLUSIVE, REPRODUCED, check_claims
    from tests.test_claims_report import _per_pair

    shares = {"safin": (0.7, 0.6, 0.8), "sanet": (0.3, 0.2, 0.4)}
    doc = {"simulated": False, "shares": {q: {m: {"share": v, "ci95": [lo, hi]} for m, (v, lo, hi) in shares.items()}
                                          for q in ("best_stylization", "fewest_artifacts")}}
    for reg, want in (({"matches": True, "differences": []}, REPRODUCED),
                      ({"matches": False, "differences": ["exclusion_rules: too fast"]}, INCONCLUSIVE)):
        (tmp_path / "tally.json").write_text(json.dumps(doc | {"preregistration": reg}))
        study = [v for v in check_claims(_per_pair(tmp_path, {}), tmp_path, tmp_path / "tally.json")
                 if "user study" in v.claim or "Users prefer" in v.claim]
        assert [v.verdict for v in study] == [want, want]
    assert "does not match its preregistration (exclusion_rules: too fast)" in study[0].evidence


def test_the_luce_scales_resamples_come_from_params(tmp_path):
    """survey.model_bootstrap reaches the tally (the ci profile takes 50, every other profile 300)."""
    import shutil

    from pipeline.params import apply_profile, load_params
    from pipeline.survey import tally_config

    assert tally_config(load_params(REPO / "params.yaml")).model_bootstrap == 300
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    apply_profile("ci", params, REPO / "profiles")
    assert tally_config(load_params(params)).model_bootstrap == 50
