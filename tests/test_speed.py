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
