"""Training seeds (pipeline/seeds.py) and the claims' seed-aware statistics (evaluation/claims.py): replicate
seeds train, stylize and are measured beside the main run; the hierarchical bootstrap takes seed-to-seed
variance into the CI and recovers a known effect; Fig. 5b gets its CI from the seeds."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from evaluation.claims import (DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, VERDICTS, better, check_claims, curves_claim,
                               hierarchical_ci, read_per_pair)
from pipeline.seeds import replicate_seeds, seed_folder

from .conftest import REPO


def test_replicate_seeds_are_the_other_seeds_once_and_none_for_a_release():
    params = {"train": {"seed": 777, "seeds": [1, 777, 2, 1]}, "pretrained": {"methods": ["adain"]}}
    assert replicate_seeds(params) == [1, 2] and replicate_seeds(params, "safin") == [1, 2]
    assert replicate_seeds(params, "adain") == []  # the authors' release is one seed
    assert replicate_seeds({"train": {"seed": 3, "seeds": []}}) == []
    assert seed_folder(Path("outputs/train"), "safin", 2) == Path("outputs/train/safin/seeds/seed-2")
    for k in ("ci", "demo"):  # the profiles the issue keeps at one seed; the paper takes three
        assert yaml.safe_load((REPO / f"profiles/{k}.yaml").read_text())["train"]["seeds"] == []
    assert len(yaml.safe_load((REPO / "profiles/paper.yaml").read_text())["train"]["seeds"]) == 2


def simulate(effect, seed_sd, pair_sd, seeds, pairs=40, rng=None):
    """Per (seed, pair) values of two methods: b ~ 1 + pair effect; a = b·(1 + effect) + seed offsets."""
    rng = rng or np.random.default_rng(0)
    pair = rng.normal(0, pair_sd, pairs)
    b = 1 + pair + rng.normal(0, seed_sd, (seeds, 1)) + rng.normal(0, 0.01, (seeds, pairs))
    a = (1 + pair) * (1 + effect) + rng.normal(0, seed_sd, (seeds, 1)) + rng.normal(0, 0.01, (seeds, pairs))
    return a, b


def test_the_hierarchical_bootstrap_holds_seed_variance_and_covers_the_true_effect():
    covered, n = 0, 40
    for i in range(n):
        a, b = simulate(-0.05, 0.04, 0.2, seeds=5, rng=np.random.default_rng(i))
        mean, lo, hi = hierarchical_ci(a, b, seed=i, n=1000)
        covered += lo <= -0.05 <= hi
        # resampling the pairs of one seed's runs only: far narrower, it cannot see the seed offsets
        _, plo, phi = hierarchical_ci(a[:1], b[:1], seed=i, n=1000)
        assert hi - lo > 1.5 * (phi - plo)
    assert covered >= 0.8 * n  # a percentile CI from 5 seeds is a little short of 95%


def write_seeded(tmp_path, values: dict[str, np.ndarray], seeds) -> Path:
    path = tmp_path / "per_seed_pair.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seed", "method", "pair", "content_loss", "style_loss"])
        for method, v in values.items():
            for s_i, s in enumerate(seeds):
                for p in range(v.shape[1]):
                    w.writerow([s, method, p, v[s_i, p], v[s_i, p]])
    return path


def test_claims_read_every_seed_and_show_the_seed_spread(tmp_path):
    a, b = simulate(-0.3, 0.02, 0.1, seeds=3)
    write_seeded(tmp_path, {"sanet_safin": a, "sanet": b}, [777, 1, 2])
    (tmp_path / "per_pair.csv").write_text("method,pair,content_loss,style_loss\n")  # the main seed's file
    pp = read_per_pair(tmp_path / "per_seed_pair.csv")
    assert pp["sanet"]["content_loss"].shape == (3, 40)
    verdict, text, numbers = better(pp, "sanet_safin", "sanet", "content_loss")
    assert verdict == "holds over 3 seeds" and numbers["seeds"] == 3 and "per seed" in text and "hierarchical" in text
    assert better(pp, "sanet", "sanet_safin", "content_loss")[0] == "does not hold over 3 seeds"
    claims = check_claims(tmp_path / "per_pair.csv", tmp_path / "train")
    assert claims[0].verdict == "holds over 3 seeds"
    one = {m: {k: v[:1] for k, v in d.items()} for m, d in pp.items()}
    assert better(one, "sanet_safin", "sanet", "content_loss")[0] == HOLDS  # "(1 seed)", never "reproduced"
    assert {HOLDS, DOES_NOT_HOLD, INCONCLUSIVE, "holds over K seeds"} <= set(VERDICTS)
    assert not any("reproduced" == w for w in VERDICTS)


def write_live(folder: Path, values) -> None:
    d = folder / "live" / "plots" / "metrics" / "loss"
    d.mkdir(parents=True, exist_ok=True)
    (d / "content.tsv").write_text("step\tcontent\n" + "".join(f"{i}\t{v}\n" for i, v in enumerate(values)))


def test_the_training_curve_claim_takes_its_ci_from_the_seeds(tmp_path):
    rng = np.random.default_rng(0)
    write_live(tmp_path / "sanet", 2.0 + rng.normal(0, 0.01, 50))
    write_live(tmp_path / "sanet_safin", 1.9 + rng.normal(0, 0.01, 50))
    verdict, text, _ = curves_claim(tmp_path)
    assert verdict == INCONCLUSIVE and "1 seed: no CI" in text  # -5%, yet one seed decides nothing
    for s, shift in ((1, 0.0), (2, 0.02)):
        write_live(seed_folder(tmp_path, "sanet", s), 2.0 + shift + rng.normal(0, 0.01, 50))
        write_live(seed_folder(tmp_path, "sanet_safin", s), 1.9 + shift + rng.normal(0, 0.01, 50))
    verdict, text, numbers = curves_claim(tmp_path)
    assert verdict == "holds over 3 seeds" and "t interval over 3 seeds" in text
    lo, hi = numbers["ci95"]
    assert lo < numbers["mean"] < hi < 0 and len(numbers["relative_per_seed"]) == 3
    # the seeds the params name, not whatever folders are left from an earlier setting
    assert curves_claim(tmp_path, replicates={"sanet": [], "sanet_safin": []})[0] == INCONCLUSIVE
    write_live(seed_folder(tmp_path, "sanet_safin", 3), 2.5 + rng.normal(0, 0.01, 50))  # no sanet seed 3: unpaired
    assert curves_claim(tmp_path)[2]["seeds"] == 3


@pytest.mark.slow
def test_replicate_seeds_train_stylize_and_are_measured(tmp_path, monkeypatch, real_cache):
    """pipeline.train.run with train.seeds = [5]: the main run and the replicate train (different weights),
    stylize@M writes the replicate's outputs beside the main ones, evaluate measures both."""
    import torch

    from pipeline.evaluate import evaluate
    from pipeline.params import load_params
    from pipeline.stylize import stylize_method, write_pair_inputs
    from pipeline.train import run

    params = load_params(REPO / "params.yaml")
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for kind in ("content", "style"):
        (data / kind).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(data / kind / f"{i}.png")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("".join(open(REPO / "data/sample/pairs.csv").readlines()[:4]))  # the header and 3 pairs
    params["data"].update(out=str(data), pairs=str(pairs), sample_dir=str(REPO / "data/sample"))
    params["train"].update(out=str(tmp_path / "train"), methods=["adain"], max_iter=2, batch_size=2, crop=32,
                           seeds=[5], precision="fp32", encoder_weights="derived", checkpoint_every=2, num_workers=0)
    params["train"]["method_overrides"]["adain"] = {}   # the active profile's per-method iterations (demo: 1000) off
    params["stylize"].update(out=str(tmp_path / "stylized"), methods=["adain"], size=96)
    params["evaluate"].update(out=str(tmp_path / "metrics"), bootstrap=20, encoder_weights="derived")
    params["evaluate"]["artfid"].update(download=False)
    monkeypatch.setenv("SAFIN_CACHE", str(real_cache))
    main, rep = tmp_path / "train/adain/weights.pt", seed_folder(tmp_path / "train", "adain", 5) / "weights.pt"
    with pytest.raises(ValueError, match="--seed 6: not train.seed \\(777\\) nor one of train.seeds \\[5\\]"):
        run(params, "adain", only_seed=6)
    run(params, "adain", only_seed=5)  # `safin train --seed 5`: that replicate alone (seeds in parallel)
    assert rep.exists() and not main.exists()
    run(params, "adain")  # the stage: trains the main run, finds the replicate trained
    assert main.exists() and rep.exists()
    assert json.loads((rep.parent / "summary.json").read_text())["resumed_from"] == 2  # not trained again
    assert json.loads((rep.parent / "summary.json").read_text())["seed"] == 5
    def tensors(path):
        flat, todo = {}, [("", torch.load(path, weights_only=True))]
        while todo:
            prefix, d = todo.pop()
            for k, v in d.items():
                if isinstance(v, dict):
                    todo.append((f"{prefix}{k}.", v))
                elif torch.is_tensor(v):
                    flat[prefix + k] = v
        return flat

    wa, wb = tensors(main), tensors(rep)
    assert wa.keys() == wb.keys() and any(not torch.equal(wa[k], wb[k]) for k in wa)  # another seed, another model
    write_pair_inputs(params)
    stylize_method(params, "adain")
    assert sorted(p.name for p in seed_folder(tmp_path / "stylized", "adain", 5).glob("*.png")) == ["00.png", "01.png", "02.png"]
    doc = evaluate(params)
    rows = list(csv.DictReader(open(tmp_path / "metrics/per_seed_pair.csv")))
    assert [(r["seed"], r["pair"]) for r in rows] == [("777", "0"), ("777", "1"), ("777", "2"), ("5", "0"), ("5", "1"), ("5", "2")]
    assert doc["seeds"]["adain"]["seeds"] == [777, 5] and len(doc["seeds"]["adain"]["per_seed_mean"]["lpips"]) == 2
    assert len(list(csv.DictReader(open(tmp_path / "metrics/per_pair.csv")))) == 3  # the main seed's, as before


def test_the_report_shows_the_seeds_and_artfid_with_its_n_and_bias_note(tmp_path):
    from evaluation.report import artfid_section, build_report

    m = {"mean": 1.0, "ci95": [0.9, 1.1]}
    metrics = {k: dict(m) for k in ("content_loss", "content_loss_euclid", "style_loss", "gram_loss", "lpips", "ssim",
                                    "hist_chi2", "cfsd", "hist_hellinger")}
    summary = {"n_pairs": 40, "metrics": {"safin": {**metrics, "artfid": {"mean": 31.5, "ci95": [29.0, 35.0], "n": 40},
                                                    "fid": {"mean": 14.75, "ci95": [13.5, 16.5], "n": 40}}},
               "skipped": {}, "artfid": {"n": 40, "mode": "FID_N", "style_set": "each pair's style image",
                                         "preprocessing": "own size", "weights": {"from": "your file", "sha256": "ab" * 32,
                                                                                  "checksum": "pinned"},
                                         "note": "N = 40 images a set: FID_N is dominated by its bias at this N"},
               "seeds": {"safin": {"seeds": [777, 1], "per_seed_mean": {k: [1.0, 1.2] for k in metrics},
                                   "sd_over_seeds": {k: 0.141421 for k in metrics}}}}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    params = {"profile": "paper", "train": {"seed": 777, "seeds": [1], "methods": ["safin"]},
              "stylize": {"seed": 0}, "evaluate": {"seed": 0}}
    md, html = build_report(params=params, summary_path=path, claims=[], figures=[], train_dir=tmp_path,
                            out_dir=tmp_path / "reports", inputs={})
    text = md.read_text()
    assert "| safin | 31.5 [29, 35] | 14.75 [13.5, 16.5] | 1 | 40 |" in text and "dominated by its bias" in text
    assert "| safin | 777, 1 | 1, 1.2 (0.1414) |" in text and "train 777 (replicates: 1)" in text
    assert "<h2>Seeds (each seed's mean over the pairs)</h2>" in html.read_text()
    skipped = {"n_pairs": 40, "metrics": {}, "skipped": {"ArtFID": "skipped, no number computed: SAFIN_OFFLINE=1"}}
    assert artfid_section(skipped) == ("ArtFID: skipped, no number computed: SAFIN_OFFLINE=1.", [])


def test_out_dir_holds_the_main_run_and_its_replicates_under_seeds(monkeypatch, tmp_path):
    """``safin train --seed S --out-dir X``: the replicate trains into X/seeds/seed-S, never into train.out (which
    the main pipeline's runs occupy)."""
    import pipeline.train as pt
    from pipeline.params import load_params

    params = load_params(REPO / "params.yaml")
    params["train"].update(seeds=[5, 6], out=str(tmp_path / "train"))
    params["pretrained"]["methods"] = []
    seen = []
    monkeypatch.setattr(pt, "ensure_encoder_weights", lambda *a: None)
    monkeypatch.setattr(pt, "train", lambda cfg: seen.append((cfg.seed, cfg.out_dir)) or {})
    pt.run(params, "adain", only_seed=5, out_dir=str(tmp_path / "x"))
    assert seen == [(5, str(tmp_path / "x/seeds/seed-5"))]
    seen.clear()
    pt.run(params, "adain", out_dir=str(tmp_path / "x"))
    assert seen == [(params["train"]["seed"], str(tmp_path / "x")), (5, str(tmp_path / "x/seeds/seed-5")),
                    (6, str(tmp_path / "x/seeds/seed-6"))]
    seen.clear()
    pt.run(params, "adain", only_seed=6)
    assert seen == [(6, str(seed_folder(tmp_path / "train", "adain", 6)))]
