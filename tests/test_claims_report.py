import csv

import numpy as np
import pytest

from evaluation.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, better, check_claims, read_per_pair, similar
from evaluation.metrics import DIRECTION, hist_chi2, pair_metrics
from evaluation.statistics import bootstrap_ci

METHODS = ("safin", "safin_fin", "sanet", "sanet_safin", "adain", "wct")


def _per_pair(tmp_path, shift):
    rng = np.random.default_rng(0)
    path = tmp_path / "per_pair.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "pair", *DIRECTION])
        base = {m: rng.uniform(1, 2, 40) for m in DIRECTION}
        for method in METHODS:
            for i in range(40):
                w.writerow([method, i, *[base[m][i] * (1 + shift.get((method, m), 0.0)) for m in DIRECTION]])
    return path


def test_better_decides_only_when_the_ci_excludes_zero(tmp_path):
    pp = read_per_pair(_per_pair(tmp_path, {("sanet_safin", "content_loss"): -0.1, ("safin", "ssim"): -0.1}))
    assert better(pp, "sanet_safin", "sanet", "content_loss")[0] == REPRODUCED
    assert better(pp, "sanet", "sanet_safin", "content_loss")[0] == NOT_REPRODUCED
    assert better(pp, "adain", "wct", "content_loss")[0] == INCONCLUSIVE   # identical values
    assert better(pp, "safin", "wct", "ssim")[0] == NOT_REPRODUCED         # higher is better for SSIM
    assert better(pp, "safin", "missing", "ssim")[0] == INCONCLUSIVE


def test_similar_is_an_equivalence_test(tmp_path):
    pp = read_per_pair(_per_pair(tmp_path, {("sanet_safin", "style_loss"): 0.05, ("safin", "style_loss"): 0.5}))
    assert similar(pp, "sanet_safin", "sanet", "style_loss")[0] == REPRODUCED
    assert similar(pp, "safin", "sanet", "style_loss")[0] == NOT_REPRODUCED


def test_no_verdict_from_too_few_pairs_identical_values_or_a_zero_width_interval():
    from evaluation.claims import MIN_PAIRS

    # the case found in review: one pair each gave "holds in this run (1 seed)"
    verdict, why, _ = better({"a": {"lpips": np.array([.30])}, "b": {"lpips": np.array([.31])}}, "a", "b", "lpips")
    assert verdict == INCONCLUSIVE and "only 1 pair; a verdict needs at least 10" in why
    rng = np.random.default_rng(0)
    few = {"a": {"lpips": rng.uniform(0.1, 0.2, MIN_PAIRS - 1)}, "b": {"lpips": rng.uniform(0.5, 0.6, MIN_PAIRS - 1)}}
    assert better(few, "a", "b", "lpips")[0] == INCONCLUSIVE  # a clear gap, but 9 pairs
    enough = {m: {"lpips": np.concatenate([v["lpips"], v["lpips"][:1]])} for m, v in few.items()}
    assert better(enough, "a", "b", "lpips")[0] == REPRODUCED  # the same gap at 10 pairs
    same = {"a": {"ssim": np.full(40, 0.5)}, "b": {"ssim": np.full(40, 0.5)}}
    for fn in (better, similar):
        verdict, why, _ = fn(same, "a", "b", "ssim")
        assert verdict == INCONCLUSIVE and "identical values" in why
    flat = {"a": {"ssim": np.full(40, 0.5)}, "b": {"ssim": np.full(40, 0.4)}}  # constant per method: CI of width 0
    verdict, why, _ = better(flat, "a", "b", "ssim")
    assert verdict == INCONCLUSIVE and "the same on every pair (0.5 and 0.4): no spread" in why
    nan = {"a": {"ssim": np.r_[np.full(39, 0.5), np.nan]}, "b": {"ssim": rng.uniform(0, 1, 40)}}
    assert "non-finite" in better(nan, "a", "b", "ssim")[1]


def test_the_minimum_number_of_pairs_is_where_the_bootstrap_interval_starts_to_cover():
    """MIN_PAIRS' reason, re-measured: the 95% percentile bootstrap CI of a mean over 5 normal values covers the true
    mean in well under 90% of samples, over 10 in about 90% or more (200 samples each, fixed seeds)."""
    def coverage(n, k=200):
        rng = np.random.default_rng(n)
        hits = 0
        for i in range(k):
            _, lo, hi = bootstrap_ci(rng.standard_normal(n), n_resamples=1000, seed=i)
            hits += lo <= 0 <= hi
        return hits / k

    assert coverage(5) < 0.88 and coverage(10) >= 0.89


def test_claims_without_training_logs_or_survey_are_inconclusive(tmp_path):
    verdicts = check_claims(_per_pair(tmp_path, {}), tmp_path / "no-train", None)
    by_claim = {v.claim: v for v in verdicts}
    assert by_claim["SAFIN has the fewest artifacts in the user study"].verdict == INCONCLUSIVE
    assert "no user-study responses" in by_claim["Users prefer SAFIN's stylization"].evidence
    assert len(verdicts) >= 8


def test_bootstrap_ci_brackets_the_mean():
    mean, lo, hi = bootstrap_ci(np.arange(40.0))
    assert lo < mean < hi and mean == 19.5
    assert bootstrap_ci([3.0, 3.0]) == (3.0, 3.0, 3.0)


def test_pair_metrics_of_an_identical_image(real_cache):
    import torch

    torch.manual_seed(0)
    img = torch.rand(3, 64, 64)
    m = pair_metrics(img, img, img)
    assert m["content_loss"] == 0 and m["lpips"] < 1e-6 and abs(m["ssim"] - 1) < 1e-6
    assert m["style_loss"] < 1e-6 and m["hist_chi2"] == 0
    style = torch.rand(3, 64, 64) * 0.3
    other = pair_metrics(img, img, style)
    assert other["style_loss"] > 0.01 and other["hist_chi2"] > 0.1
    with pytest.raises(ValueError, match="differ in size"):
        pair_metrics(img, img[:, :32], img)
    from evaluation.metrics import features

    cached = pair_metrics(img, img, style, content_features=features(img), style_features=features(style))
    assert cached == other  # the evaluate stage computes each pair's input features once for all methods


def test_hist_chi2_bounds():
    import torch

    black, white = torch.zeros(3, 8, 8), torch.ones(3, 8, 8)
    assert hist_chi2(black, black) == 0 and abs(hist_chi2(black, white) - 1.0) < 1e-12


def _per_pair_with(tmp_path, methods, shift):
    rng = np.random.default_rng(1)
    path = tmp_path / "per_pair.csv"
    base = {m: rng.uniform(1, 2, 40) for m in DIRECTION}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "pair", *DIRECTION])
        for method in methods:
            for i in range(40):
                w.writerow([method, i, *[base[m][i] * (1 + shift.get((method, m), 0.0)) for m in DIRECTION]])
    return path


def test_beyond_the_paper_holds_safin_against_adaattn_and_stytr2_with_the_same_rules(tmp_path):
    """Our claims, not the paper's: SAFIN against each rival the run measured, on LPIPS to content, CFSD and the
    style loss, with the paper's claims' verdicts; a degenerate rival is never judged; none without SAFIN."""
    from evaluation.claims import DOES_NOT_HOLD, HOLDS, OURS, beyond_paper_claims

    path = _per_pair_with(tmp_path, ("safin", "adaattn", "stytr2"),
                          {("adaattn", "lpips"): 0.2, ("stytr2", "style_loss"): -0.2})
    got = {c.claim: c for c in beyond_paper_claims(path, degenerate={})}
    assert len(got) == 6 and all(c.source == OURS for c in got.values())
    assert got["SAFIN preserves content better than AdaAttN (LPIPS to content)"].verdict == HOLDS
    assert got["SAFIN transfers style better than StyTr² (style loss)"].verdict == DOES_NOT_HOLD
    assert got["SAFIN keeps the content's self-similarity better than AdaAttN (CFSD)"].verdict == INCONCLUSIVE
    flagged = beyond_paper_claims(path, degenerate={"stytr2": "flat outputs"})
    assert [c.verdict for c in flagged if "StyTr²" in c.claim] == ["not evaluated: degenerate outputs of stytr2"] * 3
    only_one = _per_pair_with(tmp_path / "one", ("safin", "adaattn"), {}) if (tmp_path / "one").mkdir() is None else None
    assert [c.claim.rsplit(" than ", 1)[1].split(" (")[0] for c in beyond_paper_claims(only_one, {})] == ["AdaAttN"] * 3
    (tmp_path / "none").mkdir()
    assert beyond_paper_claims(_per_pair_with(tmp_path / "none", ("adaattn", "stytr2"), {}), {}) == []
