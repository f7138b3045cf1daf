"""The user-study plan, response schema, simulation and tally (no torch anywhere)."""
import subprocess
import sys
from pathlib import Path

import numpy as np

from survey.design import BROKEN, StudyConfig, load_plan, make_plan, plan_participant, save_plan
from survey.responses import read_responses, write_responses
from survey.simulate import SimulationModel, population_shares, simulate
from survey.tally import TallyConfig, cluster_bootstrap, tally

# The tallies here are about shares, exclusions and claims: models=False leaves out the Luce scale and the mixed
# model (about 10 s a tally), which tests/test_survey_models.py and the pipeline's tally stage test


def test_survey_package_does_not_import_torch():
    code = "import sys, survey.design, survey.tally, survey.figures, survey.simulate, survey.responses, survey.blinding, survey.study, survey.static, survey.server, pipeline.survey; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_plan_shuffles_per_participant_with_checks_and_repeats(tmp_path):
    cfg = StudyConfig(n_participants=5)
    plans = make_plan(cfg)
    assert len({p.token for p in plans}) == 5 and all(len(p.token) >= 20 for p in plans)
    for p in plans:
        kinds = [i.kind for i in p.items]
        assert kinds.count("regular") == 40 and kinds.count("repeat") == 2 and kinds.count("attention") == 2
        assert sorted(i.set_id for i in p.items if i.kind == "regular") == list(range(40))
        assert all(BROKEN in i.order for i in p.items if i.kind == "attention")
        assert all(sorted(i.order) == sorted(cfg.methods) for i in p.items if i.kind != "attention")
    assert [i.set_id for i in plans[0].items] != [i.set_id for i in plans[1].items]
    # the same seed gives the same order (tokens are random by design)
    again = plan_participant(cfg, 0)
    assert [(i.set_id, i.order) for i in again.items] == [(i.set_id, i.order) for i in plans[0].items]
    cfg2, loaded = load_plan(save_plan(plans, cfg, tmp_path / "plan.json"))
    assert cfg2 == cfg and loaded[3].items == plans[3].items


#: preferences the tests give the simulation (the default simulated study has none)
EFFECTS = {"best_stylization": {"safin": 0.6, "sanet": 0.4, "wct": -0.5, "adain": -0.2},
           "fewest_artifacts": {"safin": 0.7, "sanet": -0.3, "wct": -0.6, "adain": 0.2}}


def _sim(n_participants=25, seed=1, careless=0.1, beta=EFFECTS):
    cfg = StudyConfig(n_participants=n_participants)
    model = SimulationModel(beta=beta, seed=seed, careless=careless)
    return cfg, model, simulate(make_plan(cfg), cfg, model)


def test_tally_recovers_the_simulated_preferences_within_its_cis(tmp_path):
    cfg, model, rows = _sim()
    resp = read_responses([write_responses(rows, tmp_path / "r.csv")], set(cfg.questions))
    assert resp.problems == [] and resp.simulated
    doc = tally(resp, TallyConfig(cfg.methods, list(cfg.questions), n_sets=40, models=False))
    truth = population_shares(model, cfg.methods)
    covered = [doc["shares"][q][m]["ci95"][0] <= truth[q][m] <= doc["shares"][q][m]["ci95"][1]
               for q in cfg.questions for m in cfg.methods]
    assert sum(covered) >= 7, (doc["shares"], truth)  # 8 intervals at 95%: at most one miss expected
    # the clustered interval is wider than the naive Wilson one
    s = doc["shares"]["best_stylization"]["safin"]
    assert (s["ci95"][1] - s["ci95"][0]) > (s["wilson95_naive"][1] - s["wilson95_naive"][0])
    assert doc["tests"]["best_stylization"]["friedman"]["p"] < 0.01
    assert -0.2 < doc["agreement"]["best_stylization"]["fleiss_kappa"] < 1
    assert doc["consistency"]["best_stylization"]["repeats"] > 0


def test_careless_participants_are_excluded_and_reported(tmp_path):
    cfg, _, rows = _sim(careless=1.0, seed=3)
    doc = tally(read_responses([write_responses(rows, tmp_path / "r.csv")]), TallyConfig(cfg.methods, list(cfg.questions), models=False))
    failed = doc["participants"]["excluded"]["failed attention check"]
    assert 0 < len(failed) < 25 and doc["participants"]["kept"] == 25 - len(failed)


def test_incomplete_and_invalid_rows_are_reported(tmp_path):
    cfg, _, rows = _sim(n_participants=3)
    rows = [r for r in rows if not (r["participant"] == "p02" and r["set"] >= 10)]  # p02 stopped early
    bad = dict(rows[0], chosen="cyclegan")
    dup = dict(rows[1])
    path = write_responses(rows + [bad, dup], tmp_path / "r.csv")
    resp = read_responses([path], set(cfg.questions))
    assert any("was not displayed" in p for p in resp.problems)
    assert any("duplicate answer" in p for p in resp.problems)
    doc = tally(resp, TallyConfig(cfg.methods, list(cfg.questions), n_sets=40, models=False))
    assert "p02" in doc["participants"]["excluded"]["incomplete"]


def test_every_kind_of_malformed_response_is_reported_with_file_and_row_never_a_crash(tmp_path):
    """Wrong columns, duplicated rows, an unknown participant, an answer naming a method that was not
    displayed, a truncated last line, a file that is not UTF-8: each is one reported problem; the good
    rows are all kept."""
    cfg = StudyConfig(n_sets=4, n_participants=2, n_attention_checks=0, n_repeats=0)
    plans = make_plan(cfg)
    rows = simulate(plans, cfg, SimulationModel(seed=3))
    good = write_responses(rows, tmp_path / "good.csv")
    (tmp_path / "columns.csv").write_text("who,what\np01,safin\n")
    header, first, second = good.read_text().splitlines()[:3]
    unknown = first.replace("p01", "p99", 1)
    not_shown = first.split(",")
    not_shown[4] = "cyclegan"
    (tmp_path / "bad_rows.csv").write_text("\n".join([header, first, unknown, ",".join(not_shown), second[:25]]))
    (tmp_path / "latin1.csv").write_bytes((header + "\n").encode() + "p01,0,regular,best_stylization,caf\xe9".encode("latin-1"))
    files = [good, tmp_path / "columns.csv", tmp_path / "bad_rows.csv", tmp_path / "latin1.csv"]
    resp = read_responses(files, set(cfg.questions), {p.participant for p in plans})
    assert len(resp.rows) == len(rows)
    expected = {"columns.csv: missing column": 1, "bad_rows.csv:2: duplicate answer": 1,
                "bad_rows.csv:3: unknown participant 'p99'": 1, "bad_rows.csv:4: chosen 'cyclegan' was not displayed": 1,
                "bad_rows.csv:5: truncated or malformed row": 1, "latin1.csv: unreadable (UnicodeDecodeError": 1}
    for needle, n in expected.items():
        assert sum(needle in p for p in resp.problems) == n, (needle, resp.problems)
    assert len(resp.problems) == len(expected)


def test_two_way_cluster_bootstrap_shares_sum_to_one():
    v = np.zeros((5, 6, 4))
    v[:, :, 0] = 1
    boot = cluster_bootstrap(v, 50, 0)
    assert np.allclose(boot.sum(1), 1) and np.allclose(boot[:, 0], 1)


def test_simulated_study_claims_are_never_verdicts(tmp_path):
    import json

    from evaluation.claims import INCONCLUSIVE, check_claims
    from tests.test_claims_report import _per_pair

    cfg, _, rows = _sim()
    doc = tally(read_responses([write_responses(rows, tmp_path / "r.csv")]), TallyConfig(cfg.methods, list(cfg.questions), models=False))
    (tmp_path / "tally.json").write_text(json.dumps(doc))
    verdicts = check_claims(_per_pair(tmp_path, {}), tmp_path, tmp_path / "tally.json")
    study = [v for v in verdicts if "user study" in v.claim or "Users prefer" in v.claim]
    assert len(study) == 2 and all(v.verdict == INCONCLUSIVE and "SIMULATED" in v.evidence for v in study)


def test_figures_are_labelled_simulated(tmp_path, monkeypatch):
    """Every figure of a simulated tally says SIMULATED in its title (and a real one does not), and draws the
    tally's numbers: the bars are the vote shares, the heat map the per-set shares."""
    from survey import figures

    cfg, _, rows = _sim()
    doc = tally(read_responses([write_responses(rows, tmp_path / "r.csv")]), TallyConfig(cfg.methods, list(cfg.questions), models=False))
    drawn = {}
    save = figures._save

    def keep(fig, out, plt):
        ax = fig.axes[0]
        drawn[Path(out).name] = {"title": ax.get_title(), "bars": [p.get_height() for p in ax.patches],
                                 "widths": [p.get_width() for p in ax.patches],
                                 "image": ax.images[0].get_array().copy() if ax.images else None}
        return save(fig, out, plt)

    monkeypatch.setattr(figures, "_save", keep)
    for real in (False, True):
        doc = {**doc, "simulated": not real}
        for fn in (figures.grouped_bars, figures.stacked_bars):
            assert fn(doc, tmp_path / f"{fn.__name__}.png").stat().st_size > 10_000
        assert figures.heat_map(doc, "best_stylization", tmp_path / "heat_map.png").stat().st_size > 5_000
        assert all(("SIMULATED" in d["title"]) != real for d in drawn.values()), drawn
    questions = list(cfg.questions)
    shares = [doc["shares"][q][m]["share"] for m in cfg.methods for q in questions]  # bars: method by method
    assert np.allclose(drawn["grouped_bars.png"]["bars"], shares)
    stacked = [doc["shares"][q][m]["share"] * 100 for m in cfg.methods for q in questions]
    assert np.allclose(sorted(drawn["stacked_bars.png"]["widths"]), sorted(stacked))
    per_set = doc["per_set"]["best_stylization"]
    expected = [[per_set[s][m] for s in sorted(per_set, key=int)] for m in cfg.methods]
    assert np.allclose(drawn["heat_map.png"]["image"], expected)


def test_the_default_simulated_study_prefers_no_method(tmp_path):
    """The pipeline's SIMULATED Fig. 7 must not redraw the paper's conclusion: by default every method's
    population share is 1/4, and the tally finds no difference."""
    model = SimulationModel()
    assert model.beta == {}
    truth = population_shares(model, ["safin", "sanet", "wct", "adain"])
    assert set(truth) == {"best_stylization", "fewest_artifacts"}
    for q in truth.values():
        assert all(abs(v - 0.25) < 0.01 for v in q.values()), truth  # position bias averages out over orders
    cfg = StudyConfig(n_participants=25)
    rows = simulate(make_plan(cfg), cfg, model)
    doc = tally(read_responses([write_responses(rows, tmp_path / "r.csv")]), TallyConfig(cfg.methods, list(cfg.questions), n_sets=40, models=False))
    for q in cfg.questions:
        shares = doc["shares"][q]
        assert all(shares[m]["ci95"][0] <= 0.25 <= shares[m]["ci95"][1] for m in cfg.methods), shares


def test_a_study_of_safin_against_the_methods_beyond_the_paper(tmp_path):
    """The study takes any method list: SAFIN against AdaAttN, StyTr² and SANet, each screen showing the four; a
    simulated preference for AdaAttN comes back as its share, SANet's dislike as the lowest."""
    methods = ["safin", "adaattn", "stytr2", "sanet"]
    cfg = StudyConfig(methods=methods, n_participants=25)
    plans = make_plan(cfg)
    assert all(sorted(i.order) == sorted(methods) for p in plans for i in p.items if i.kind != "attention")
    beta = {q: {"safin": 0.0, "adaattn": 0.8, "stytr2": 0.0, "sanet": -0.8} for q in cfg.questions}
    rows = simulate(plans, cfg, SimulationModel(beta=beta, seed=2, careless=0.0))
    resp = read_responses([write_responses(rows, tmp_path / "r.csv")], set(cfg.questions))
    doc = tally(resp, TallyConfig(methods, list(cfg.questions), n_sets=cfg.n_sets, models=False))
    for q in cfg.questions:
        shares = {m: v["share"] for m, v in doc["shares"][q].items() if not m.startswith("_")}
        assert set(shares) == set(methods)
        assert max(shares, key=shares.get) == "adaattn" and min(shares, key=shares.get) == "sanet", shares
