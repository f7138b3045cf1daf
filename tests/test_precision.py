"""bf16 autocast and channels_last: what runs in which precision, and how far bf16 moves the output."""
import pytest
import torch

import baselines
from safin.blocks.attention import attention
from safin.blocks.statistics import calc_mean_std
from safin.runtime.precision import autocast, full_precision, resolve_channels_last, resolve_precision


def test_resolve_precision():
    assert resolve_precision("fp32", "cpu") == torch.float32
    assert resolve_precision("bf16", "cpu") == torch.bfloat16
    assert resolve_precision("auto", "cpu") in (torch.float32, torch.bfloat16)
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp16x", "cpu")
    assert resolve_channels_last("auto", "cpu") is True
    assert resolve_channels_last(False, "cpu") is False
    with pytest.raises(ValueError, match="channels_last"):
        resolve_channels_last("sometimes", "cpu")


def test_full_precision_runs_float32_under_autocast():
    seen = {}

    @full_precision
    def probe(x, *, y):
        seen["x"], seen["y"] = x.dtype, y.dtype
        seen["mm"] = (x @ x.T).dtype  # autocast would make this bf16
        return x

    with autocast("cpu", torch.bfloat16):
        probe(torch.ones(4, 4, dtype=torch.bfloat16), y=torch.ones(2))
    assert seen == {"x": torch.float32, "y": torch.float32, "mm": torch.float32}
    x = torch.ones(3, 3)
    assert probe(x, y=x) is x  # no autocast, no low-precision input: untouched, no copy


def test_statistics_and_attention_stay_float32_under_bf16():
    torch.manual_seed(0)
    x = torch.randn(1, 8, 5, 5) * 100 + 1000  # large mean: bf16 statistics would be off by ~4
    with autocast("cpu", torch.bfloat16):
        mean, std = calc_mean_std(x.bfloat16())
        q, k, v = (torch.randn(1, 50, 32) * 4 for _ in range(3))
        out = attention(q, k, v)
    assert mean.dtype == std.dtype == out.dtype == torch.float32
    ref_mean, _ = calc_mean_std(x.bfloat16().float())
    assert torch.allclose(mean, ref_mean)
    assert torch.allclose(out, attention(q, k, v), atol=1e-5)


@pytest.mark.parametrize("method", ["adain", "sanet", "safin", "wct"])
def test_channels_last_gives_the_float32_output(method):
    torch.manual_seed(0)
    m = baselines.build(method, encoder_weights="random").eval()
    c, s = torch.rand(1, 3, 64, 48), torch.rand(1, 3, 48, 64)
    with torch.inference_mode():
        ref = m(c, s)
        out = m.set_compute("fp32", channels_last=True)(c, s)
    assert m.channels_last and out.is_contiguous() and out.dtype == torch.float32
    assert torch.allclose(out, ref, atol=1e-4)


@pytest.mark.parametrize("method", ["adain", "sanet", "safin"])
def test_bf16_output_is_close_to_float32(method):
    torch.manual_seed(0)
    m = baselines.build(method, encoder_weights="normalised").eval()
    c, s = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        ref = m.set_compute("fp32", channels_last=False)(c, s, clamp=False)
        out = m.set_compute("bf16")(c, s, clamp=False)
    assert m.compute_dtype == torch.bfloat16 and out.dtype == torch.float32
    rel = (out - ref).norm() / ref.norm()
    assert 0 < rel < 0.02, rel  # bf16 ran (the output moved), and only by rounding


def test_auto_keeps_wct_in_float32_and_sanet_encoder_in_float32():
    wct = baselines.build("wct", encoder_weights="random").eval().set_compute("auto")
    assert wct.compute_dtype == torch.float32  # whitening amplifies bf16 rounding
    assert baselines.build("wct", encoder_weights="random").set_compute("bf16").compute_dtype == torch.bfloat16
    sanet = baselines.build("sanet", encoder_weights="random").eval().set_compute("bf16")
    x = torch.rand(1, 3, 32, 32)
    with autocast("cpu", torch.bfloat16):
        assert sanet.encoder(x, ["relu4_1"])["relu4_1"].dtype == torch.float32
    sanet.set_compute("fp32")
    assert "forward" not in sanet.encoder.__dict__  # the float32 wrapper is undone
    adain = baselines.build("adain", encoder_weights="random").eval().set_compute("bf16")
    with autocast("cpu", torch.bfloat16):
        assert adain.encoder(x, ["relu4_1"])["relu4_1"].dtype == torch.bfloat16


def test_precision_check_cli(tmp_path):
    from evaluation.precision_check import check
    from safin.methods import save_weights

    m = baselines.build("adain")
    save_weights(m, tmp_path / "adain" / "weights.pt")
    pairs = tmp_path / "pairs.csv"
    import shutil
    from pathlib import Path
    sample = Path(__file__).resolve().parents[1] / "data/sample"
    (tmp_path / "content").mkdir(), (tmp_path / "style").mkdir()
    shutil.copy(sample / "content/chelsea.jpg", tmp_path / "content/c.jpg")
    shutil.copy(sample / "style/VincentVanGoghBridge.jpg", tmp_path / "style/s.jpg")
    pairs.write_text("pair,content,style\n00,content/c.jpg,style/s.jpg\n")
    doc = check(tmp_path, pairs, size=64, methods=["adain"])
    r = doc["methods"]["adain"]
    assert doc["pairs"] == 1 and r["max_abs_255"] >= r["mean_abs_255"] >= 0
    assert r["auto_dtype"] in ("float32", "bfloat16")


@pytest.mark.parametrize("method", ["adain", "wct", "sanet", "sanet_safin", "safin", "safin_fin"])
def test_fp64_runs_in_float64_and_matches_float32(method):
    torch.manual_seed(0)
    m = baselines.build(method, encoder_weights="random").eval()
    c, s = torch.rand(1, 3, 64, 48), torch.rand(1, 3, 48, 64)
    with torch.inference_mode():
        ref = m.set_compute("fp32")(c, s, clamp=False)
        out = m.set_compute("fp64")(c, s, clamp=False)
    assert m.compute_dtype == torch.float64 and not m.channels_last
    assert all(p.dtype == torch.float64 for p in m.parameters())
    assert out.dtype == torch.float32  # the caller's dtype
    assert ((out - ref).norm() / ref.norm()) < 1e-3
    m.set_compute("fp32")
    assert all(p.dtype == torch.float32 for p in m.parameters())  # back to float32 weights


def test_fp64_resolves():
    assert resolve_precision("fp64", "cpu") == torch.float64
    assert resolve_channels_last("auto", "cpu", torch.float64) is False  # oneDNN has no float64 kernels
    assert resolve_channels_last(True, "cpu", torch.float64) is True


@pytest.mark.parametrize("keep_fp32", [True, False])
def test_bf16_encoder_false_keeps_every_encoder_path_in_float32(keep_fp32):
    """``bf16_encoder = False`` protects the encoder however a method calls it: SafinNet calls its
    blocks (``encoder.block``, ``encoder.relu4_1``) directly, never ``encoder.forward``."""
    from safin.models.safin_net import SafinNet

    cls = type("SafinFp32Encoder", (SafinNet,), {"bf16_encoder": not keep_fp32})
    model = cls(encoder_weights="random").eval().set_compute("bf16", channels_last=False)
    seen = []
    for layer in (model.encoder.conv1_1, model.encoder.conv3_1, model.encoder.conv4_1):
        layer.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with torch.inference_mode():
        model(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    assert seen and set(seen) == ({torch.float32} if keep_fp32 else {torch.bfloat16}), seen
    model.set_compute("fp32")  # and the wrappers are undone
    assert not any("forward" in m.__dict__ for m in model.encoder.modules())


def test_evidence_is_float32_by_default_even_where_bf16_is_native(tmp_path, monkeypatch):
    """Issue 29: on a bf16-capable device (forced here) the stylize stage's default and ``safin stylize --reference``
    give the float32 path's outputs; bf16 stays available and its outputs are labelled with their measured
    deviation from float32."""
    import json

    import numpy as np
    from PIL import Image

    import safin.runtime.precision as prec
    from pipeline.params import load_params
    from pipeline.stylize import build_model, stylize_method
    from .conftest import REPO, safin
    from .release_files import write_release

    monkeypatch.setattr(prec, "bf16_native", lambda device: True)
    assert resolve_precision("auto", "cpu") == torch.bfloat16  # the forced device: auto would be bf16
    files = write_release("adain", tmp_path / "release", seed=1)
    model = baselines.build("adain", encoder_weights="random").load_reference(files["decoder.pth"], files["vgg_normalised.pth"])
    from safin.methods import save_weights

    save_weights(model, tmp_path / "train" / "adain" / "weights.pt", with_encoder=True)
    gen = torch.Generator().manual_seed(0)
    loaded = [(torch.rand(1, 3, 48, 64, generator=gen), torch.rand(1, 3, 64, 48, generator=gen)) for _ in range(2)]
    params = load_params(REPO / "params.yaml")
    assert params["stylize"]["precision"] == "fp32"
    params["train"]["out"], params["stylize"]["out"] = str(tmp_path / "train"), str(tmp_path / "default")
    params["train"]["seeds"] = []
    stylize_method(params, "adain", loaded)
    fp32 = build_model("adain", checkpoint=str(tmp_path / "train" / "adain" / "weights.pt"), precision="fp32")
    for i, (c, s) in enumerate(loaded):
        with torch.inference_mode():
            want = fp32(c, s).clamp(0, 1).mul(255).round().byte()[0].permute(1, 2, 0).numpy()
        assert np.array_equal(np.asarray(Image.open(tmp_path / "default" / "adain" / f"{i:02d}.png")), want)
    rec = json.loads((tmp_path / "default" / "adain" / "precision.json").read_text())
    assert rec["compute_dtype"] == "float32" and rec["authors_precision"] and "deviation_from_float32" not in rec
    # the opt-in fast path: bf16, labelled, its deviation measured on the same pairs
    params["stylize"]["precision"], params["stylize"]["out"] = "bf16", str(tmp_path / "fast")
    stylize_method(params, "adain", loaded)
    rec = json.loads((tmp_path / "fast" / "adain" / "precision.json").read_text())
    assert rec["compute_dtype"] == "bfloat16" and not rec["authors_precision"]
    dev = rec["deviation_from_float32"]
    assert dev["pairs"] == 2 and dev["max_abs_255"] >= 1 and 0 < dev["mean_abs_255"] <= dev["max_abs_255"]
    # safin stylize --reference: float32 unless asked
    for i, (c, s) in enumerate(loaded[:1]):
        Image.fromarray(c.mul(255).round().byte()[0].permute(1, 2, 0).numpy()).save(tmp_path / "c.png")
        Image.fromarray(s.mul(255).round().byte()[0].permute(1, 2, 0).numpy()).save(tmp_path / "s.png")
    common = ["stylize", "--method", "adain", "--reference", str(files["decoder.pth"]), str(files["vgg_normalised.pth"]),
              "--content", str(tmp_path / "c.png"), "--style", str(tmp_path / "s.png"), "--resize", "longer",
              "--content-size", "0", "--style-size", "0"]
    assert safin(*common, "--output", str(tmp_path / "cli.png")).returncode == 0
    assert safin(*common, "--precision", "bf16", "--output", str(tmp_path / "cli_bf16.png")).returncode == 0
    from safin.io.images import load_image

    c, s = load_image(tmp_path / "c.png")[None], load_image(tmp_path / "s.png")[None]
    with torch.inference_mode():
        want = fp32(c, s).clamp(0, 1).mul(255).round().byte()[0].permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "cli.png")), want)
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "cli_bf16.png")), want)
