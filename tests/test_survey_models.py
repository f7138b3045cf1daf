"""The study's preference scale, mixed model and power analysis recover what the simulation put in."""
import numpy as np
import pytest

from survey.design import StudyConfig, make_plan
from survey.models import luce_scale, mixed_model
from survey.power import PowerConfig, power_analysis, simulate_votes
from survey.simulate import SimulationModel, simulate

METHODS = ["safin", "sanet", "wct", "adain"]
BETA = {"safin": 0.6, "sanet": 0.4, "wct": -0.5, "adain": -0.2}


def _rows(seed, participant_sd=0.0, set_sd=0.0):
    cfg = StudyConfig(n_participants=25)
    model = SimulationModel(beta={"best_stylization": BETA}, participant_sd=participant_sd, set_sd=set_sd,
                            position_bias=(0.0, 0.0, 0.0, 0.0), careless=0.0, seed=seed)
    return simulate(make_plan(cfg), cfg, model)


def _covered(est, truth):
    return [est[m]["ci95"][0] <= truth[m] <= est[m]["ci95"][1] for m in METHODS]


@pytest.fixture(scope="module")
def plain_rows():
    """The paper's design (25 x 40) with only the method effects: the Luce model holds exactly."""
    return _rows(seed=2)


def test_the_luce_scale_recovers_the_simulated_preferences(plain_rows):
    scale = luce_scale(plain_rows, METHODS, "best_stylization", n_bootstrap=300)
    b = np.array([BETA[m] for m in METHODS])
    truth = dict(zip(METHODS, b - b.mean()))  # theta is centred
    assert sum(_covered(scale["theta"], truth)) >= 3, (scale["theta"], truth)  # 4 intervals at 95%
    assert [m for m, _ in sorted(scale["theta"].items(), key=lambda kv: -kv[1]["value"])][:2] == ["safin", "sanet"]
    assert abs(sum(scale["p_chosen_all_shown"].values()) - 1) < 1e-9
    assert scale["n_choices"] == 25 * 40  # the regular screens, as the shares: attention checks and repeats left out


def test_the_mixed_model_recovers_the_log_odds_and_sees_the_random_effects(plain_rows):
    fit = mixed_model(plain_rows, METHODS, "best_stylization")
    b = np.array([BETA[m] for m in METHODS])
    p = np.exp(b) / np.exp(b).sum()  # every method shown on every screen: P(chosen) = softmax
    truth = dict(zip(METHODS, np.log(p / (1 - p))))
    assert sum(_covered(fit["fixed_log_odds"], truth)) >= 3, (fit["fixed_log_odds"], truth)
    assert fit["n_rows"] == 25 * 40 * 4  # the regular screens only
    quiet = fit["random_effect_sd"]
    noisy = mixed_model(_rows(seed=3, participant_sd=1.0, set_sd=1.0), METHODS, "best_stylization")["random_effect_sd"]
    assert noisy["set x method"] > 2 * quiet["set x method"] and noisy["participant x method"] > quiet["participant x method"]


def test_power_is_the_false_alarm_rate_without_an_effect_and_grows_with_the_study():
    none = power_analysis(PowerConfig(METHODS, effect=0.0, participants=[25], sets=[40], simulations=200, bootstrap=200))
    assert none["grid"][0]["power"] <= 0.07  # one-sided 2.5 % test: false detections only
    big = power_analysis(PowerConfig(METHODS, effect=1.0, participants=[10, 100], sets=[40], simulations=100,
                                     bootstrap=200), design=(25, 40))
    power = {(g["participants"], g["sets"]): g["power"] for g in big["grid"]}
    assert power[(100, 40)] >= 0.9 and power[(100, 40)] > power[(10, 40)]
    assert big["design"] == {"participants": 25, "sets": 40, "power": power[(25, 40)], "mc_se": big["design"]["mc_se"]}
    assert big["participants_needed_for_target"]["40"] in (10, 100)


def test_simulated_votes_follow_the_choice_model():
    model = SimulationModel(beta={"q": {"safin": 1.0}}, participant_sd=0, set_sd=0, position_bias=(0, 0, 0, 0))
    votes = simulate_votes(model, METHODS, "q", 200, 50, np.random.default_rng(0))
    assert votes.shape == (200, 50, 4) and np.all(votes.sum(-1) == 1)
    p = np.exp([1.0, 0, 0, 0]) / np.exp([1.0, 0, 0, 0]).sum()
    assert np.allclose(votes.mean((0, 1)), p, atol=0.02)
