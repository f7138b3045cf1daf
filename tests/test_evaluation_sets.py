"""Larger evaluation sets (data.evaluation): every content image of a folder × every style image of another,
in place of the 40 embedded pairs, through the pairs stage's code."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.stylize import _pairs, write_pair_inputs
from safin.io.datasets import folder_pairs


def folders(tmp_path, n_content=2, n_style=3):
    rng = np.random.default_rng(0)
    for role, n in (("cnt", n_content), ("sty", n_style)):
        (tmp_path / role).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(tmp_path / role / f"{role}{i}.png")
        (tmp_path / role / "notes.txt").write_text("not an image")
    return tmp_path / "cnt", tmp_path / "sty"


def test_every_content_meets_every_style(tmp_path):
    cnt, sty = folders(tmp_path)
    pairs = folder_pairs(cnt, sty)
    assert len(pairs) == 6 and pairs[0] == (str(cnt.resolve() / "cnt0.png"), str(sty.resolve() / "sty0.png"))
    assert pairs[-1] == (str(cnt.resolve() / "cnt1.png"), str(sty.resolve() / "sty2.png"))
    with pytest.raises(ValueError, match=f"{tmp_path / 'nowhere'}: no such folder \\(data.evaluation.style\\)"):
        folder_pairs(cnt, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no images \\(data.evaluation.content\\)"):
        folder_pairs(tmp_path / "empty", sty)


def test_the_pairs_stage_takes_the_folders_instead_of_the_embedded_pairs(tmp_path):
    cnt, sty = folders(tmp_path)
    params = {"data": {"sample_dir": "data/sample", "pairs": "data/sample/pairs.csv",
                       "evaluation": {"content": str(cnt), "style": str(sty)}},
              "stylize": {"out": str(tmp_path / "stylized"), "size": 32}}
    written = write_pair_inputs(params)
    assert len(written) == 12 and (tmp_path / "stylized/inputs/05_style.png").exists()
    assert Image.open(tmp_path / "stylized/inputs/00_content.png").size == (32, 23)  # longer side = stylize.size
    params["data"]["evaluation"] = {"content": str(cnt), "style": None}
    with pytest.raises(ValueError, match="name both a content and a style folder"):
        _pairs(params)
    params["data"]["evaluation"] = {"content": None, "style": None}
    assert len(_pairs(params)[1]) == 40  # the default: the embedded pairs


def test_a_named_set_is_fetched_once_checked_and_refused_offline(tmp_path, http_server, monkeypatch):
    import hashlib

    from safin.io import benchmark_sets as bs
    from tests.test_releases import mirror_name

    monkeypatch.setenv("SAFIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SAFIN_URL_MIRROR", http_server.url("").rstrip("/"))
    monkeypatch.delenv("SAFIN_OFFLINE", raising=False)
    cnt, sty = folders(tmp_path, 2, 2)
    files = []
    for p in sorted(cnt.glob("*.png")) + sorted(sty.glob("*.png")):
        rel = f"{p.parent.name}/{p.name}"
        data = p.read_bytes()
        files.append((rel, hashlib.sha256(data).hexdigest(), len(data)))
        http_server.files[mirror_name("https://example.org/set/" + rel)] = data
    monkeypatch.setitem(bs.SETS, "tiny", bs.BenchmarkSet("tiny", "a test set", "https://example.org/set/", "cnt", "sty",
                                                         tuple(files)))
    params = {"data": {"sample_dir": "data/sample", "pairs": "data/sample/pairs.csv", "evaluation": {"set": "tiny"}}}
    root, pairs = _pairs(params)
    assert len(pairs) == 4 and all(str(tmp_path / "cache/sets/tiny") in c for c, _ in pairs)
    n = len(http_server.requests)
    _pairs(params)
    assert len(http_server.requests) == n  # cached and checked: nothing fetched again
    (tmp_path / "cache/sets/tiny/sty/sty1.png").write_bytes(b"damaged")
    monkeypatch.setenv("SAFIN_OFFLINE", "1")
    with pytest.raises(bs.BenchmarkError, match="tiny: 1 of 4 files not in .* and SAFIN_OFFLINE=1"):
        _pairs(params)
    monkeypatch.delenv("SAFIN_OFFLINE")
    assert len(_pairs(params)[1]) == 4 and len(http_server.requests) == n + 1  # only the damaged one again
    # the real StyleID set: 60 pinned files; bytes that are not StyleID's are refused, naming the file
    assert len(bs.SETS["styleid"].files) == 60 and bs.SETS["styleid"].base_url.endswith(bs.STYLEID_COMMIT + "/")
    http_server.files[mirror_name(bs.SETS["styleid"].base_url + "data/cnt/00.png")] = b"not the image"
    with pytest.raises(bs.BenchmarkError, match="styleid: data/cnt/00.png: .*size 13 B, expected 379421 B"):
        bs.fetch_set("styleid")
    with pytest.raises(bs.BenchmarkError, match="unknown set 'nope'"):
        bs.fetch_set("nope")
