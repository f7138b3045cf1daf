"""``safin profile styleid && dvc repro`` end to end, in a throw-away copy of this repository, with a server
on 127.0.0.1 standing in for the authors' hosts (GitHub releases, Dropbox, Google Drive behind its confirm page),
for StyleID's set on raw.githubusercontent.com and for the art Inception on Hugging Face, through
``SAFIN_URL_MIRROR``: synthetic files with exactly the released keys, shapes and containers, and 3 + 2 sample photos
in the set's place (one run a session, started in the background: ``conftest.py``). The styleid profile is the
pretrained profile on StyleID's set with StyleID's protocol (``tests/test_params.py`` holds the two profiles to
that), so this run proves the import of the releases, the named set, the protocol and the published table."""
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from safin.io.benchmark_sets import STYLEID_COMMIT

from .conftest import RELEASED, STANDIN_CONTENTS, STANDIN_STYLES, stages_run
from .test_dvc_pipeline import test_every_verdict_follows_from_the_per_pair_numbers as _verdicts_follow

N_PAIRS = STANDIN_CONTENTS * STANDIN_STYLES

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]  # the first test waits for the run (3-5 min)


def test_the_pretrained_profile_runs_on_the_authors_files(pretrained_run):
    repo, out, server, cache = (pretrained_run[k] for k in ("repo", "out", "server", "cache"))
    print(out[-3000:])
    ran = stages_run(out)
    for stage in ["fetch_weights", *(f"train@{m}" for m in RELEASED), *(f"stylize@{m}" for m in RELEASED),
                  "evaluate", "grids", "report", "survey_study", "survey_tally"]:
        assert stage in ran, (stage, ran)
    assert not [s for s in ran if s in ("train@safin_fin", "train@sanet_safin")]  # no release: left out
    # every file came from the (mirrored) canonical URL, WCT's through Google Drive's confirm page
    asked = {name for name, _ in server.requests}
    assert any(n.startswith("drive.google.com/uc?export=download&id=") for n in asked)
    assert any(n.startswith("drive.usercontent.google.com/download?id=") for n in asked)
    recorded = json.loads((cache / "recorded_sha256.json").read_text())
    assert len([k for k in recorded if k.startswith("release/")]) == 2 + 3 + 2 + 10 + 4 + 4
    assert "vgg19_normalised/url/vgg_normalised.pth" in recorded  # the encoder asset from bethgelab's file
    for m in RELEASED:
        summary = json.loads((repo / f"outputs/train/{m}/summary.json").read_text())
        assert summary["origin"] == "authors' release" and summary["encoder"]["source"].startswith("the authors'")
        assert len(list((repo / f"outputs/stylized/{m}").glob("*.png"))) == N_PAIRS
    assert {f"raw.githubusercontent.com/jiwoogit/StyleID/{STYLEID_COMMIT}/data/{d}/{i:02d}.png"
            for d, n in (("cnt", STANDIN_CONTENTS), ("sty", STANDIN_STYLES)) for i in range(n)} <= asked
    metrics = json.loads((repo / "metrics/summary.json").read_text())
    assert metrics["profile"] == "styleid" and set(metrics["metrics"]) == set(RELEASED)
    assert metrics["encoder"]["source"].startswith("url https://github.com/naoto0804/pytorch-AdaIN")
    assert metrics["protocol"]["name"] == "styleid" and metrics["evaluation_set"]["name"] == "styleid"
    assert metrics["n_pairs"] == N_PAIRS and metrics["artfid"]["n"] == N_PAIRS and "Resize(512)" in metrics["artfid"]["preprocessing"]
    # torchvision's VGG-19 (a stand-in named by its sha256, conftest.standin_vgg19) downloaded, checked and used
    net = metrics["cfsd_network"]
    assert net["comparable"] and net["network"].startswith("torchvision VGG-19"), net
    assert re.fullmatch(r"https://download\.pytorch\.org/models/vgg19-[0-9a-f]{8}\.pth", net["from"]), net
    adain = metrics["metrics"]["adain"]
    assert {"lpips", "lpips_gray", "cfsd", "hist_hellinger", "artfid", "fid"} <= set(adain)
    report = (repo / "reports/report.md").read_text()
    assert "styleid profile: the authors' released models on StyleID's 800 pairs" in report
    assert "Protocol styleid: StyleID's evaluation code" in report
    # StyleID's published rows beside ours, with the difference: the stand-in table is the published one for as many
    # pairs as the stand-in set has (conftest.STANDIN_SET_HOOK), and CFSD ran on "torchvision's" VGG-19
    from evaluation.published import tables

    table = tables()["styleid_cvpr2024_table1"]
    assert "## Published numbers beside ours" in report and "Not compared with this run" not in report
    assert "This run used the same protocol and set: published / measured / difference" in report
    pub = table["rows"]["adain"]
    cells = [f"{pub[m]:.3f} / {adain[m]['mean']:.3f} / {adain[m]['mean'] - pub[m]:+.3f}" for m in table["metrics"]]
    assert f"| AdaIN (adain) | {' | '.join(cells)} |" in report, [line for line in report.splitlines() if "AdaIN" in line]
    assert pub["artfid"] == 30.933 and pub["cfsd"] == 0.315  # the published numbers themselves, as printed
    st, pub = metrics["metrics"]["stytr2"], table["rows"]["stytr2"]  # StyTr²'s row: its release measured beside it
    cells = [f"{pub[m]:.3f} / {st[m]['mean']:.3f} / {st[m]['mean'] - pub[m]:+.3f}" for m in table["metrics"]]
    assert f"| StyTR² (stytr2) | {' | '.join(cells)} |" in report
    for m in RELEASED:
        assert f"| {m} | the authors' release: " in report
    for m in ("safin_fin", "sanet_safin"):
        assert f"| {m} | left out: no released weights of the authors" in report
    assert "Models: adain: the authors' release" in report  # the claims say which models they are about
    # SAFIN against AdaAttN and StyTr², our claims with the paper's machinery (the random stand-in weights give
    # degenerate outputs: not evaluated, as any collapsed model)
    beyond = report.split("## Beyond the paper", 1)[1].split("\n## ", 1)[0]
    assert "Measured here: AdaAttN (Liu et al., ICCV 2021), StyTr² (Deng et al., CVPR 2022)." in beyond
    for name in ("AdaAttN", "StyTr²"):
        rows = [line for line in beyond.splitlines() if line.startswith(f"| SAFIN ") and f"than {name} (" in line]
        assert len(rows) == 3 and all("| ours, not the paper's |" in r for r in rows), rows
    claims = json.loads((repo / "reports/claims.json").read_text())
    assert sum(c["source"] == "ours, not the paper's" for c in claims) == 6
    page = (repo / "reports/report.html").read_text()
    assert "data:image/jpeg;base64," in page and 'src="http' not in page and "src='http" not in page
    receipt = json.loads((repo / "outputs/survey_study.json").read_text())
    assert receipt["methods"] == ["safin", "sanet", "wct", "adain"] and receipt["images"] > N_PAIRS * 4
    assert (repo / "data/survey/study/plan.json").exists()
    # a second run downloads nothing and re-runs nothing but the method check
    assert pretrained_run["again"] == {}
    assert len(server.requests) == pretrained_run["requests_before_again"]


def test_the_verdicts_follow_from_the_numbers_of_the_releases(pretrained_run):
    """The stand-in releases hold random weights: their outputs are mostly noise or flat, flagged degenerate, and
    their claims not evaluated; whatever is evaluated follows from the numbers."""
    _verdicts_follow({"repo": pretrained_run["repo"]}, min_checked=0)


@pytest.mark.parametrize("method", RELEASED)
def test_the_pipelines_outputs_are_the_authors_models_outputs(pretrained_run, method):
    """Pair 00 as the pipeline stylized it equals the model loaded from the released files themselves (their
    own loading path, ``load_reference``) on the inputs the pipeline saved; a model with another seed's weights
    (what a mis-wired import would give) differs by far more."""
    from baselines import build
    from safin.io.releases import RELEASES

    from ..release_files import write_release

    repo, files = pretrained_run["repo"], pretrained_run["released"][method]
    inputs = repo / "outputs/stylized/inputs"
    x, s = (torch.from_numpy(np.asarray(Image.open(inputs / f"00_{r}.png").convert("RGB"), dtype=np.float32) / 255)
            .permute(2, 0, 1)[None] for r in ("content", "style"))
    got = np.asarray(Image.open(repo / f"outputs/stylized/{method}/00.png").convert("RGB"), dtype=np.float32) / 255

    def stylize(paths):
        model = build(method, encoder_weights="random").load_reference(*[paths[n] for n in RELEASES[method].load_order()])
        model.eval().set_compute("fp32")
        with torch.inference_mode():
            return model(x, s).clamp(0, 1)[0].permute(1, 2, 0).numpy()

    ref = stylize(files)
    assert ref.shape == got.shape and got.std() > 0.01
    assert np.abs(ref - got).max() <= 1.01 / 255, np.abs(ref - got).max()  # 8-bit rounding only
    other = stylize(write_release(method, pretrained_run["repo"].parent / f"other_{method}", seed=99))
    assert np.abs(other - got).mean() > 10 * np.abs(ref - got).mean() + 2 / 255


def test_the_profile_checks_each_import_against_the_authors_own_outputs(pretrained_run):
    """pretrained.verify: train@sanet and train@wct ran safin verify-release on the stand-in evidence (inputs and
    "their" outputs from the restated reference forward pass, served as raw.githubusercontent.com files) and
    passed; AdaIN and SAFIN say why they have no check; the report holds the section."""
    repo, server = pretrained_run["repo"], pretrained_run["server"]
    for m in ("sanet", "wct"):
        v = json.loads((repo / f"outputs/train/{m}/summary.json").read_text())["verify_release"]
        assert v["ran"] and v["passed"] and v["judged"] >= 1 and float(v["worst_psnr_jpeg_db"]) >= v["threshold_db"], v
    assert any(n.startswith("raw.githubusercontent.com/GlebSBrykin/SANET/2dfec14") for n, _ in server.requests)
    for m, word in (("adain", "results.png"), ("safin", "results.jpg"), ("adaattn", "picture/picture.png"),
                    ("stytr2", "Figure/")):
        v = json.loads((repo / f"outputs/train/{m}/summary.json").read_text())["verify_release"]
        assert not v["ran"] and word in v["why"]
    report = (repo / "reports/report.md").read_text()
    assert "## The authors' releases against their own outputs" in report
    assert report.count("| PASS (every judged image ≥ 40.0 dB) |") == 2
