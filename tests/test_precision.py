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
