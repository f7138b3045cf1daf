"""Published tables beside a run's numbers: kept as data with their source, protocol and set; compared only when
the run used the same protocol and set."""
import pytest

from evaluation import published

TABLE = "styleid_cvpr2024_table1"


def summary(protocol="styleid", set_name="styleid", cfsd_comparable=True, **metrics):
    return {"n_pairs": 800, "protocol": {"name": protocol}, "evaluation_set": {"name": set_name, "description": f"{set_name} pairs"},
            "cfsd_network": {"comparable": cfsd_comparable},
            "metrics": {"adain": {k: {"mean": v} for k, v in metrics.items()}}}


def test_styleids_table_is_kept_with_its_source_protocol_and_set():
    t = published.tables()[TABLE]
    assert t["protocol"] == "styleid" and t["set"] == "styleid" and t["n_pairs"] == 800 and "scheduled_style_injection" in t["source"]
    assert t["rows"]["adain"] == {"label": "AdaIN", "artfid": 30.933, "fid": 18.242, "lpips": 0.608, "cfsd": 0.315}
    assert t["rows"]["styleid"]["cfsd"] == 0.228 and t["rows"]["stytr2"]["artfid"] == 30.72
    assert set(t["rows"]) == {"adain", "stytr2", "aespanet", "styleid"}


def test_the_same_protocol_and_set_give_published_measured_and_the_difference():
    t = published.tables()[TABLE]
    text, header, rows = published.comparison(t, summary(artfid=31.5, fid=18.0, lpips=0.6, cfsd=0.3))
    assert "published / measured / difference" in text and "Not compared" not in text
    adain = rows[0]
    assert adain[0] == "AdaIN (adain)"
    assert adain[1:] == ["30.933 / 31.500 / +0.567", "18.242 / 18.000 / -0.242", "0.608 / 0.600 / -0.008",
                         "0.315 / 0.300 / -0.015"]
    assert rows[1][1] == "30.720 / not measured in this run"  # StyTr² has a published row, no measurement here
    _, _, rows = published.comparison(t, summary(cfsd_comparable=False, artfid=31.5, fid=18.0, lpips=0.6, cfsd=9.9))
    assert rows[0][4] == "0.315 / 9.900 (not comparable: offline VGG-19) / —"


@pytest.mark.parametrize("protocol,set_name,said", [
    ("art-fid", "styleid", "this run's protocol is art-fid, the table's styleid"),
    ("styleid", "suite", "this run's evaluation set is suite pairs, the table's StyleID's 800 pairs"),
])
def test_another_protocol_or_set_draws_no_comparison_and_says_why(protocol, set_name, said):
    t = published.tables()[TABLE]
    text, header, rows = published.comparison(t, summary(protocol, set_name, artfid=31.5, fid=18.0, lpips=0.6,
                                                         cfsd=0.3))
    assert f"Not compared with this run: {said}" in text
    assert rows[0][1:] == ["30.933", "18.242", "0.608", "0.315"] and not any("/" in c for r in rows for c in r[1:])


def test_part_of_the_set_draws_no_comparison():
    doc = {**summary(artfid=31.5, fid=18.0, lpips=0.6, cfsd=0.3), "n_pairs": 12}
    text, _, rows = published.comparison(published.tables()[TABLE], doc)
    assert "Not compared with this run: this run measured 12 pairs of the set, the table 800" in text
    assert rows[0][1] == "30.933"


def test_the_report_names_the_protocol_and_puts_the_published_rows_beside_ours(tmp_path):
    import json

    from evaluation.report import build_report

    m = {"mean": 1.0, "ci95": [0.9, 1.1]}
    metrics = {k: dict(m) for k in ("content_loss", "style_loss", "lpips", "lpips_gray", "ssim", "cfsd")}
    metrics["lpips"] = {"mean": 0.61, "ci95": [0.6, 0.62]}
    doc = {"n_pairs": 800, "metrics": {"adain": {**metrics, "artfid": {"mean": 31.0, "ci95": [30, 32], "n": 800},
                                                 "fid": {"mean": 18.3, "ci95": [18, 19], "n": 800}}},
           "skipped": {}, "protocol": {"name": "styleid", "source": "jiwoogit/StyleID evaluation/ at d4ea655",
                                       "description": "StyleID's evaluation code"},
           "evaluation_set": {"name": "styleid", "description": "the named set 'styleid' (800 pairs)"},
           "cfsd_network": {"network": "offline VGG-19", "comparable": False,
                            "note": "not comparable with published CFSD: SAFIN_OFFLINE=1"}}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(doc))
    params = {"profile": "pretrained", "train": {"seed": 0, "seeds": [], "methods": ["adain"]},
              "stylize": {"seed": 0}, "evaluate": {"seed": 0}}
    md, html = build_report(params=params, summary_path=path, claims=[], figures=[], train_dir=tmp_path,
                            out_dir=tmp_path / "reports", inputs={})
    text = md.read_text()
    assert "Protocol styleid: StyleID's evaluation code (jiwoogit/StyleID evaluation/ at d4ea655)." in text
    assert "not comparable with published CFSD: SAFIN_OFFLINE=1" in text
    assert "cfsd ↓ (not comparable with published CFSD)" in text and "lpips_gray ↓" in text
    assert "## Published numbers beside ours" in text
    assert ("| AdaIN (adain) | 30.933 / 31.000 / +0.067 | 18.242 / 18.300 / +0.058 | 0.608 / 0.610 / +0.002 | "
            "0.315 / 1.000 (not comparable: offline VGG-19) / — |") in text
    assert "<h2>Published numbers beside ours</h2>" in html.read_text() and "+0.067" in html.read_text()
