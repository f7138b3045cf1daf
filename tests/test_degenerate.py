"""A collapsed model is detected and never judged (issue 30): a constant-output model and a noise-output model run
through the evaluate stage beside a working one; summary.json flags them, every claim involving them says "not
evaluated", the report marks them in the metrics and the grids' caption, and the gate fails them."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from evaluation import degenerate as dg
from safin.io.images import load_image, save_image

from .conftest import REPO

SAMPLE = REPO / "data" / "sample"
N_PAIRS = 10  # the least a verdict needs (evaluation.claims.MIN_PAIRS): the working pair of methods gets one


def _pairs(size=128):  # LPIPS' AlexNet needs about 64 px on the shorter side
    contents = sorted((SAMPLE / "content").glob("*.jpg"))[:N_PAIRS]
    styles = sorted((SAMPLE / "style").glob("*.jpg"))[:N_PAIRS]
    return [(load_image(c, long_side=size), load_image(s, long_side=size)) for c, s in zip(contents, styles)]


class Constant(torch.nn.Module):
    """A decoder that died: one colour whatever the input (the demo's WCT of the issue)."""

    def forward(self, content, style):
        return torch.full_like(content, 0.4)


class Noise(torch.nn.Module):
    """A model whose output has nothing to do with its content."""

    def forward(self, content, style):
        return torch.rand(content.shape, generator=torch.Generator().manual_seed(content.shape[-1]))


class Working(torch.nn.Module):
    """A crude but real stylization: the content's structure in the style's colours."""

    def forward(self, content, style):
        grey = content.mean(0, keepdim=True)
        return (0.5 * grey + 0.5 * style.mean((1, 2), keepdim=True)).clamp(0, 1).expand_as(content)


def test_the_measures_separate_flat_noise_and_structure():
    pairs = _pairs()
    rows = []
    for name, model in (("flat", Constant()), ("noise", Noise()), ("working", Working())):
        for c, s in pairs:
            rows.append({"method": name, **dg.output_measures(model(c, s), c)})
    by = {m: [r for r in rows if r["method"] == m] for m in ("flat", "noise", "working")}
    assert all(r["output_std"] == 0 and r["edge_corr"] == 0 for r in by["flat"])
    noise = [r["edge_corr"] for r in by["noise"]]
    assert max(abs(v) for v in noise) <= 0.05  # measured: |edge_corr| <= 0.024 (printed below)
    assert min(r["edge_corr"] for r in by["working"]) > 0.9
    print("noise edge_corr", np.round(noise, 3), "working", np.round([r["edge_corr"] for r in by["working"]], 3))
    verdicts = dg.judge(rows, {"working": []})
    assert set(verdicts) == {"flat", "noise"}
    assert verdicts["flat"].startswith(f"{N_PAIRS} of {N_PAIRS} outputs are flat")
    assert verdicts["noise"].startswith("outputs unrelated to their content (mean edge correlation")
    # a method whose outputs held NaN somewhere: degenerate whatever the rest looks like
    assert dg.judge([r for r in rows if r["method"] == "working"], {"working": [3]}) == {
        "working": f"1 of {N_PAIRS} outputs held non-finite values (NaN or inf)"}


def test_a_model_at_its_initialisation_is_flagged_as_flat():
    """AdaIN with the real encoder and its decoder as initialised (iteration 0 of training): measured pixel SD 0.011
    on every pair, edge correlation -0.03..0.18: it shows nothing, and is called so."""
    import baselines

    torch.manual_seed(0)
    m = baselines.build("adain").eval()
    with torch.inference_mode():
        rows = [{"method": "adain", **dg.output_measures(m(c[None], s[None])[0], c)} for c, s in _pairs()]
    assert all(r["output_std"] < dg.FLAT_STD for r in rows)
    assert dg.judge(rows)["adain"].startswith(f"{N_PAIRS} of {N_PAIRS} outputs are flat")


@pytest.fixture(scope="module")
def collapsed_run(tmp_path_factory, real_cache):
    """The evaluate stage on a run folder whose ``wct`` is the constant model and ``sanet`` the noise one; ``safin``
    and ``adain`` work."""
    import yaml

    from pipeline.evaluate import evaluate

    tmp = tmp_path_factory.mktemp("collapsed")
    stylized = tmp / "stylized"
    models = {"safin": Working(), "adain": lambda c, s: Working()(c, s).mul(0.9), "wct": Constant(), "sanet": Noise()}
    for i, (c, s) in enumerate(_pairs(96)):  # 96 px: LPIPS' AlexNet still fits; 128 px cost 7 s more (Xeon)
        save_image(c, stylized / "inputs" / f"{i:02d}_content.png")
        save_image(s, stylized / "inputs" / f"{i:02d}_style.png")
        for name, model in models.items():
            save_image(model(c, s), stylized / name / f"{i:02d}.png")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["stylize"].update(out=str(stylized), methods=list(models))
    params["evaluate"].update(out=str(tmp / "metrics"), bootstrap=200, protocol="suite", encoder_weights="derived",
                              cfsd={"weights": None, "sha256": None, "download": False})
    params["train"].update(out=str(tmp / "train"), seeds=[])
    doc = evaluate(params)
    return tmp, params, doc


def test_evaluate_flags_the_constant_and_the_noise_model(collapsed_run):
    tmp, _, doc = collapsed_run
    assert set(doc["degenerate"]) == {"wct", "sanet"}
    assert "outputs are flat" in doc["degenerate"]["wct"]
    assert "unrelated to their content" in doc["degenerate"]["sanet"]
    assert doc["health"]["safin"]["flat_outputs"] == 0 and doc["health"]["safin"]["mean_edge_corr"] > 0.9
    assert doc["metrics"]["safin"]["edge_corr"]["mean"] > 0.9  # the structure measure, beside the other metrics
    header = (tmp / "metrics" / "per_pair.csv").read_text().splitlines()[0]
    assert "edge_corr" in header and "output_std" in header


def test_claims_involving_a_collapsed_model_are_not_evaluated(collapsed_run):
    from evaluation.claims import check_claims

    tmp, _, _ = collapsed_run
    verdicts = {v.claim: v for v in check_claims(tmp / "metrics" / "per_pair.csv", tmp / "train")}
    wct = verdicts["… and better than WCT (SSIM to content)"]
    assert wct.verdict == "not evaluated: degenerate outputs of wct" and "outputs are flat" in wct.evidence
    sanet = verdicts["The wavelet base network with SAFIN preserves content better than SANet (LPIPS to content)"]
    assert sanet.verdict == "not evaluated: degenerate outputs of sanet"
    assert verdicts["SAFIN in SANet's base network gives lower content loss than SANet's module"].verdict.startswith(
        "not evaluated: degenerate outputs of sanet")
    adain = verdicts["… and better than AdaIN (LPIPS to content)"]  # both work: a verdict from the numbers
    assert not adain.verdict.startswith("not evaluated") and "lpips:" in adain.evidence


def test_the_report_marks_it_and_the_gate_fails_it(collapsed_run, tmp_path):
    from evaluation.claims import check_claims
    from evaluation.regression import gate
    from evaluation.report import build_report

    tmp, params, doc = collapsed_run
    grids = tmp_path / "grids"
    grids.mkdir()
    Image.new("RGB", (8, 8)).save(grids / "pairs_1.png")
    params = json.loads(json.dumps(params))
    params["stylize"]["grids"] = str(grids)
    claims = check_claims(tmp / "metrics" / "per_pair.csv", tmp / "train")
    md, _ = build_report(params=params, summary_path=tmp / "metrics" / "summary.json", claims=claims,
                         figures=[grids / "pairs_1.png"], train_dir=tmp / "train", out_dir=tmp_path / "report",
                         inputs={})
    text = md.read_text()
    assert "| wct — DEGENERATE, not judged |" in text and "| sanet — DEGENERATE, not judged |" in text
    assert "| safin |" in text
    assert "DEGENERATE outputs, never judged (its claims say 'not evaluated'): wct:" in text
    assert text.count("not evaluated: degenerate outputs of wct") >= 1
    caption = [line for line in text.splitlines() if "Evaluation pairs, page 1" in line]
    assert caption and "DEGENERATE outputs" in caption[0]
    # the gate: a reference where they worked, the same numbers now with their outputs collapsed: they fail
    healthy = json.loads((tmp / "metrics" / "summary.json").read_text())
    healthy["degenerate"] = {}
    (tmp_path / "reference.json").write_text(json.dumps(healthy))
    code, out = gate(tmp_path / "reference.json", tmp / "metrics" / "summary.json", {})
    assert code == 1 and "FAILED wct: degenerate outputs" in out and "FAILED sanet: degenerate outputs" in out
    # against a reference that already recorded them degenerate (the ci profile's barely trained models): said, and
    # the numbers still gated
    code, out = gate(tmp / "metrics" / "summary.json", tmp / "metrics" / "summary.json", {})
    assert code == 0 and "FAILED" not in out and "degenerate as in the reference (numbers gated, never judged): wct" in out
    # a method the reference has no numbers for (added since): not gated, so not failed either
    del healthy["metrics"]["wct"]
    (tmp_path / "reference.json").write_text(json.dumps(healthy))
    code, out = gate(tmp_path / "reference.json", tmp / "metrics" / "summary.json", {})
    assert "FAILED wct" not in out and "degenerate, and not in the reference (not gated): wct" in out


def test_training_notices_a_decoder_gone_flat(caplog):
    """The end-of-run probe: WCT's level-5 decoder made dead (its last layer zeroed, as a dead ReLU stack leaves it:
    one colour) is named flat in the log and the summary's health, and so is the whole cascade's output after it;
    level 1 (one convolution of relu1_1) is not."""
    import logging

    import baselines
    from safin.training import health

    torch.manual_seed(0)
    m = baselines.build("wct", encoder_weights="random")
    last5 = [mod for mod in m.decoders["5"] if isinstance(mod, torch.nn.Conv2d)][-1]
    torch.nn.init.zeros_(last5.weight)
    gen = torch.Generator().manual_seed(1)
    c, s = torch.rand(2, 3, 64, 64, generator=gen), torch.rand(2, 3, 64, 64, generator=gen)
    with caplog.at_level(logging.WARNING):
        h = health.probe(m.train(), c, s)
    assert m.training  # its mode is given back
    assert h["outputs"]["decoder5"] == 0.0 and {"decoder5", "output"} <= set(h["flat"])
    assert h["outputs"]["decoder1"] >= health.FLAT_STD and "decoder1" not in h["flat"]
    assert "WCT: decoder5 is flat" in caplog.text


def test_a_collapsed_replicate_seed_flags_its_method(tmp_path):
    """The claims bootstrap over every seed: seed 2 of a method flat while seed 1 works flags the method, naming
    the seed; a non-finite output recorded in a seed's precision.json too."""
    from pipeline.evaluate import judge_every_seed
    from pipeline.seeds import seed_folder

    good = [{"method": "sanet", "seed": 1, "pair": i, "output_std": 0.2, "edge_corr": 0.5} for i in range(10)]
    flat = [{"method": "sanet", "seed": 2, "pair": i, "output_std": 0.0, "edge_corr": 0.0} for i in range(10)]
    assert judge_every_seed(tmp_path, ["sanet"], good, 1, {"sanet": []}) == {}
    why = judge_every_seed(tmp_path, ["sanet"], good + flat, 1, {"sanet": [2]})
    assert why["sanet"].startswith("seed 2: 10 of 10 outputs are flat")
    again = [dict(r, seed=2) for r in good]
    folder = seed_folder(tmp_path, "sanet", 2)
    folder.mkdir(parents=True)
    (folder / "precision.json").write_text(json.dumps({"nonfinite_pairs": [4]}))
    assert judge_every_seed(tmp_path, ["sanet"], good + again, 1, {"sanet": [2]})["sanet"] == (
        "seed 2: 1 of 10 outputs held non-finite values (NaN or inf)")
