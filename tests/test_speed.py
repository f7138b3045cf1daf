from evaluation.speed import ratios, run_one, table


def test_one_measurement_in_a_fresh_process():
    r = run_one("adain", 48, "fast", runs=1, warmup=0)
    assert r["median_s"] > 0 and r["peak_mib"] > 50 and r["device"] == "cpu" and r["size"] == 48


def test_a_failing_measurement_reports_its_reason():
    r = run_one("no_such_method", 48, "fast", runs=1, warmup=0)
    assert "error" in r and "no_such_method" in r["error"]
    assert "FAILED" in table({"results": [r]})


def test_ratios_are_naive_over_fast():
    res = [{"method": "safin", "size": 256, "path": "fast", "mode": "infer", "median_s": 1.0},
           {"method": "safin", "size": 256, "path": "naive", "mode": "infer", "median_s": 3.0},
           {"method": "wct", "size": 256, "path": "naive", "mode": "infer", "error": "out of memory"}]
    assert ratios(res) == {"safin": {"256": 3.0}}


def test_fast_path_reports_its_precision_and_where_time_goes():
    r = run_one("sanet", 64, "fast", runs=1, warmup=0)
    assert r["dtype"] in ("float32", "bfloat16") and r["channels_last"] is True
    parts = r["parts_s"]
    assert set(parts) == {"encoder", "decoder", "transform and rest"}
    assert parts["encoder"] > 0 and parts["decoder"] > 0
    naive = run_one("sanet", 64, "naive", runs=1, warmup=0)
    assert naive["dtype"] == "float32" and naive["channels_last"] is False and "parts_s" not in naive


def test_part_times_counts_encoder_and_decoder_layers():
    import torch

    import baselines
    from evaluation.speed import part_times

    m = baselines.build("adain", encoder_weights="random").eval()
    with torch.inference_mode(), part_times(m, "cpu") as parts:
        m(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))
    assert parts["encoder"] > 0 and parts["decoder"] > 0
    assert not any(mod._forward_hooks for mod in m.modules())  # hooks removed afterwards


def test_wct_transform_alone_matches_the_float64_svd_path():
    from evaluation.speed import wct_transform

    w = wct_transform(64, runs=1, device="cpu")
    assert set(w["relative_error_per_level"]) == {"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"}
    assert w["max_relative_error"] < 1e-3
    assert w["naive_s"] > 0 and w["fast_s"] > 0 and w["speedup"] == w["naive_s"] / w["fast_s"]


def test_training_flops_scale_with_batch_and_area_and_skip_frozen_weight_gradients():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import baselines
    from evaluation.speed import train_flops

    one = train_flops("adain", 1, 64)
    assert train_flops("adain", 2, 64) == 2 * one
    assert abs(train_flops("adain", 1, 128) / one - 4) < 0.05
    # forward-only count of the same pieces: backward through the frozen encoder computes input
    # gradients only, so a training step costs well under 3x its forward pass (3x = all weight grads too)
    m = baselines.build("adain", encoder_weights="random")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        m.losses(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))
    forward = counter.get_total_flops()
    assert 1.5 * forward < one < 2.9 * forward


def test_peak_lookup_knows_the_lent_gpus_and_nothing_else():
    from evaluation.speed import peak_tflops

    assert peak_tflops("NVIDIA H100 80GB HBM3", "bfloat16") == 989.4
    assert peak_tflops("NVIDIA H100 PCIe", "bfloat16") == 756.0
    assert peak_tflops("NVIDIA H200", "float32") == 66.9
    assert peak_tflops("NVIDIA H100 80GB HBM3", "float32", tf32=True) == 494.7  # cuDNN's default for convs
    assert peak_tflops("AMD EPYC 9B45", "bfloat16") is None


def test_training_measurement_reports_flops_rate_and_paper_recipe_time():
    r = run_one("adain", 32, "fast", mode="train", runs=1, warmup=0, batch=2)
    assert r["images_per_s"] > 0 and r["train_gflop_per_image"] > 1
    assert abs(r["achieved_tflops"] - r["train_gflop_per_image"] * r["images_per_s"] / 1e3) < 1e-9
    assert abs(r["paper_recipe_hours"] - 160_000 * 8 / r["images_per_s"] / 3600) < 1e-6
    assert "fraction_of_peak" not in r  # no datasheet peak for a CPU
    assert "GFLOP/img" in table({"results": [r]})


def test_loader_throughput_counts_the_pairs_it_delivers(tmp_path):
    from PIL import Image

    from evaluation.speed import loader_throughput

    for role in ("content", "style"):
        (tmp_path / role).mkdir()
        for i in range(3):
            Image.new("RGB", (80, 60), (i * 40, 90, 200)).save(tmp_path / role / f"{i}.jpg")
    r = loader_throughput(str(tmp_path / "content"), str(tmp_path / "style"), crop=32, batch=4, workers=0,
                          batches=5)
    assert r["pairs"] == 5 * 4 and r["pairs_per_s"] == r["pairs"] / r["seconds"] > 0
    assert "4, 0 worker(s)" in table({"results": [], "loader": [r]})


def test_benchmark_passes_training_warmup_and_compile_to_each_measurement(monkeypatch):
    from evaluation import speed

    calls = []
    monkeypatch.setattr(speed, "run_one", lambda *a, **kw: calls.append((a, kw)) or {
        "method": a[0], "size": a[1], "path": a[2], "mode": kw.get("mode", "infer"), "error": "stub"})
    doc = speed.benchmark(["adain"], [], runs=3, warmup=1, train_batch=2, train_size=32, train_runs=4,
                          train_warmup=5, compile=True, progress=lambda line: None)
    (args, kw), = calls
    assert args == ("adain", 32, "fast") and kw["mode"] == "train" and kw["warmup"] == 5 and kw["compile"] is True
    assert doc["settings"]["train_warmup"] == 5 and doc["settings"]["compile"] is True
