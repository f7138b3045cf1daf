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
