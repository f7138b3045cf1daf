"""``safin verify-release`` end to end against a 127.0.0.1 stand-in for raw.githubusercontent.com: "the authors'
outputs" are made by the restated reference forward pass (tests/test_release_forward.py) on synthetic release
files, written as their scripts wrote them (save_image's 2 px border, 8 bits, JPEG quality 75). Our import of
the same files passes; a release with two same-shaped layers swapped fails."""
from __future__ import annotations

import dataclasses
import hashlib
import io

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline import verify_release as vr

from . import test_release_forward as ref
from .release_files import write_release
from .test_release_forward import _swap_layers

#: content sizes (H, W). SANet's 57 rows: their ceil-mode pooling runs it bare (relu4_1 8 rows, output 64 rows),
#: ours pads to 64 and crops back to 57: shown, not judged
SIZES = {"sanet": [(64, 64), (57, 64)], "wct": [(64, 48), (64, 64)]}


def reference_wct_samples(folder, content, style, levels=(4, 3, 2, 1)):
    """PytorchWCT's WCT.py at 1c04769 (which wrote samples/): level 4 encodes the content (level 5's image is
    discarded), then 3, 2, 1 each encode the previous level's image; restated with the forward test's pieces."""
    enc = {k: ref.t7_getter(folder / f"vgg_normalised_conv{k}_1.t7") for k in range(1, 6)}
    dec = {k: ref.t7_getter(folder / f"feature_invertor_conv{k}_1.t7") for k in range(1, 6)}
    image = content
    for k in levels:
        sf = ref.run_sequential(ref.VGG, {}, style, stop=ref.WCT_ENCODER_END[k], ceil_mode=False, get=enc[k])[0]
        cf = ref.run_sequential(ref.VGG, {}, image, stop=ref.WCT_ENCODER_END[k], ceil_mode=False, get=enc[k])[0]
        csf = ref.whiten_and_color(cf.reshape(cf.shape[0], -1), sf.reshape(sf.shape[0], -1)).reshape(cf.shape)
        image = ref.run_sequential(ref.WCT_DECODERS[k], {}, csf[None], get=dec[k])
    return image


def written_as_theirs(img: torch.Tensor, truncate: bool) -> bytes:
    """save_image of one image to .jpg: a 2 px black border, 8 bits, PIL's JPEG defaults."""
    x = img.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255
    arr = (np.floor(x) if truncate else np.floor(x + 0.5)).astype(np.uint8)
    arr = np.pad(arr, ((2, 2), (2, 2), (0, 0)))
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG")
    return buf.getvalue()


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def stand_in(method: str, release: dict, folder, server, tmp_path) -> vr.Evidence:
    """Inputs and the restated reference's outputs served at raw.githubusercontent.com paths, pinned."""
    real = vr.EVIDENCE[method]
    rng = np.random.default_rng(1)
    files, cases = {}, []
    for i, (h, w) in enumerate(SIZES[method]):
        c = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        s = (rng.random((56, 72, 3)) * 255).astype(np.uint8)
        names = (f"in/c{i}.png", f"in/s{i}.png", f"out/o{i}.jpg")
        ct, st = (torch.from_numpy(a).permute(2, 0, 1)[None].double() / 255 for a in (c, s))
        with torch.no_grad():
            out = (ref.reference_sanet(release, ct, st) if method == "sanet" else reference_wct_samples(folder, ct, st))
        data = {names[0]: png(c), names[1]: png(s), names[2]: written_as_theirs(out.float(), method == "wct")}
        for path, blob in data.items():
            server.files[f"raw.githubusercontent.com/{real.repo}/{real.commit}/{path}"] = blob
            files[path] = hashlib.sha256(blob).hexdigest()
        cases.append(vr.Case(*names))
    return dataclasses.replace(real, files=files, cases=tuple(cases), resize="none")


@pytest.fixture
def served(http_server, tmp_path, monkeypatch):
    monkeypatch.setenv("SAFIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SAFIN_URL_MIRROR", http_server.url("").rstrip("/"))
    return http_server


@pytest.mark.parametrize("method, broken", [("sanet", ("decoder_iter_500000.pth", 5, 8)),
                                            ("wct", ("feature_invertor_conv4_1.t7", 5, 8))])
def test_verify_release_passes_on_the_authors_arithmetic_and_fails_on_a_swapped_layer(served, tmp_path, monkeypatch,
                                                                                    method, broken):
    from .conftest import safin

    release = write_release(method, tmp_path / "mine" / method, seed=7)
    ev = stand_in(method, release, tmp_path / "mine" / method, served, tmp_path)
    monkeypatch.setitem(vr.EVIDENCE, method, ev)
    params = tmp_path / "params.yaml"
    params.write_text(f"pretrained: {{methods: [{method}], folder: {tmp_path / 'mine'}, folders: {{}}}}\n")
    res = safin("verify-release", "--method", method, "--params", str(params), "--out", str(tmp_path / "v.json"))
    assert res.returncode == 0, res.stdout + res.stderr
    doc = __import__("json").loads((tmp_path / "v.json").read_text())
    assert doc["passed"] and doc["precision"] == "float32"
    judged = [r for r in doc["images"] if r["judged"]]
    assert len(judged) == (1 if method == "sanet" else 2)  # SANet's 57 x 64 content: padded by ours, shown only
    assert all(float(r["psnr_jpeg_db"]) >= 40 for r in judged), judged  # "inf": identical, as JSON writes it
    assert f"{method}: PASS" in res.stdout
    # the same release with two same-shaped layers exchanged: the outputs move far below the line
    bad = tmp_path / "bad" / method
    write_release(method, bad, seed=7)
    _swap_layers(method, bad / broken[0], broken[1], broken[2])
    params.write_text(f"pretrained: {{methods: [{method}], folder: {tmp_path / 'bad'}, folders: {{}}}}\n")
    monkeypatch.setenv("SAFIN_CACHE", str(tmp_path / "cache2"))  # the swapped files are another release: own record
    res = safin("verify-release", "--method", method, "--params", str(params), "--out", str(tmp_path / "bad.json"))
    assert res.returncode == 1 and f"{method}: FAIL" in res.stdout, res.stdout + res.stderr
    worst = __import__("json").loads((tmp_path / "bad.json").read_text())["worst_psnr_jpeg_db"]
    assert float(worst) < vr.PASS_PSNR_DB, worst
    print(method, "right:", [r["psnr_jpeg_db"] for r in judged], "swapped:", worst)


def test_methods_without_committed_outputs_and_offline_get_one_line(tmp_path, monkeypatch):
    from .conftest import safin

    monkeypatch.setenv("SAFIN_CACHE", str(tmp_path / "cache"))
    params = tmp_path / "params.yaml"
    params.write_text("pretrained: {methods: [], folder: none, folders: {}}\n")
    res = safin("verify-release", "--method", "adain", "--params", str(params))
    assert res.returncode == 2 and "results.png, a grid" in res.stderr
    monkeypatch.setenv("SAFIN_OFFLINE", "1")
    res = safin("verify-release", "--method", "sanet", "--params", str(params))
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "needs 35 file(s) of GlebSBrykin/SANET at 2dfec14" in res.stderr and "SAFIN_OFFLINE=1" in res.stderr


def test_pytorchwcts_2017_loader_resizes_as_it_did():
    """Loader.py at 1c04769: the content's longer side to 512 (int arithmetic), the style to the content's new
    size, PIL's NEAREST (its default before Pillow 7); a content already at 512 leaves both as they are."""
    ev = vr.EVIDENCE["wct"]
    rng = np.random.default_rng(0)
    tmp = {}
    for name, shape in (("c", (300, 420, 3)), ("s", (100, 90, 3)), ("c512", (512, 400, 3))):
        tmp[name] = Image.fromarray((rng.random(shape) * 255).astype(np.uint8))
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        paths = {k: Path(d) / f"{k}.png" for k in tmp}
        for k, im in tmp.items():
            im.save(paths[k])
        c, s = vr.inputs(ev, paths["c"], paths["s"])
        assert c.shape[-2:] == s.shape[-2:] == (300 * 512 // 420, 512)
        want = np.asarray(tmp["s"].resize((512, 300 * 512 // 420), Image.Resampling.NEAREST))
        assert np.array_equal((s[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), want)
        c, s = vr.inputs(ev, paths["c512"], paths["s"])
        assert c.shape[-2:] == (512, 400) and s.shape[-2:] == (100, 90)


def test_the_import_records_the_check_and_the_report_shows_it(tmp_path, monkeypatch):
    """train@METHOD of the pretrained profile keeps the check's result (or why it did not run) in summary.json, and
    the report's section says PASS, FAIL or why not, per imported release."""
    import json

    from evaluation.report import verify_rows
    from pipeline import pretrained

    monkeypatch.setenv("SAFIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SAFIN_OFFLINE", "1")
    assert pretrained.verify_summary("adain", None) == {"ran": False, "why": "verify-release adain: "
                                                        + vr.NO_EVIDENCE["adain"]}
    off = pretrained.verify_summary("wct", None)
    assert not off["ran"] and "SAFIN_OFFLINE=1" in off["why"]
    good = {"ran": True, "passed": True, "judged": 11, "worst_psnr_jpeg_db": 47.3, "threshold_db": 40.0,
            "repo": "GlebSBrykin/SANET", "commit": "2dfec142", "written_by": "Eval.py", "images": [{}] * 22}
    bad = dict(good, passed=False, worst_psnr_jpeg_db=21.0)
    for m, v in (("sanet", good), ("wct", bad), ("adain", off), ("safin", None)):
        (tmp_path / "train" / m).mkdir(parents=True)
        doc = {"origin": "authors' release", **({"verify_release": v} if v else {})}
        (tmp_path / "train" / m / "summary.json").write_text(json.dumps(doc))
    (tmp_path / "train" / "safin_fin").mkdir()
    (tmp_path / "train" / "safin_fin" / "summary.json").write_text(json.dumps({"iterations": 10}))
    rows = {r[0]: r for r in verify_rows(tmp_path / "train", ["sanet", "wct", "adain", "safin", "safin_fin"])}
    assert set(rows) == {"sanet", "wct", "adain", "safin"}  # trained here: nothing to check against
    assert rows["sanet"][2].startswith("PASS") and rows["sanet"][3:] == ["47.3 dB", "11 of 22"]
    assert rows["wct"][2].startswith("FAIL: below 40.0 dB")
    assert rows["adain"][2].startswith("not run: verify-release wct: needs") and "SAFIN_OFFLINE=1" in rows["adain"][2]
    assert rows["safin"][2] == "not run (pretrained.verify: false)"


def test_a_decoder_that_loads_but_is_not_the_release_is_never_recorded(served, tmp_path, monkeypatch):
    """SANet's decoder has AdaIN's keys: AdaIN's decoder.pth saved as decoder_iter_500000.pth loads. The import's
    verify-release fails on it, and its checksum is not recorded, so SANet's own file is accepted afterwards."""
    import json
    import shutil

    from pipeline.pretrained import import_release

    release = write_release("sanet", tmp_path / "mine" / "sanet", seed=7)
    ev = stand_in("sanet", release, tmp_path / "mine" / "sanet", served, tmp_path)
    monkeypatch.setitem(vr.EVIDENCE, "sanet", ev)
    shutil.copy(release["decoder_iter_500000.pth"], tmp_path / "right.pth")
    shutil.copy(write_release("adain", tmp_path / "adain", seed=1)["decoder.pth"], release["decoder_iter_500000.pth"])
    params = {"train": {"out": str(tmp_path / "train"), "methods": ["sanet"]},
              "pretrained": {"methods": ["sanet"], "folder": str(tmp_path / "mine"), "folders": {}, "verify": True}}
    summary = import_release(params, "sanet")
    assert summary["verify_release"]["passed"] is False
    assert summary["files"]["decoder_iter_500000.pth"]["checksum"] == "not recorded: verify-release failed on it"
    table = tmp_path / "cache" / "recorded_sha256.json"
    assert not table.exists() or not any(k.startswith("release/sanet/") for k in json.loads(table.read_text()))
    shutil.copy(tmp_path / "right.pth", release["decoder_iter_500000.pth"])
    summary = import_release(params, "sanet")
    assert summary["verify_release"]["passed"] is True
    assert summary["files"]["decoder_iter_500000.pth"]["checksum"].startswith("recorded now")


def test_nothing_judgeable_is_no_verdict_and_exit_2(served, tmp_path, monkeypatch):
    from .conftest import safin

    release = write_release("sanet", tmp_path / "mine" / "sanet", seed=7)
    ev = stand_in("sanet", release, tmp_path / "mine" / "sanet", served, tmp_path)
    monkeypatch.setitem(vr.EVIDENCE, "sanet", dataclasses.replace(ev, cases=ev.cases[1:]))  # only the padded 57 rows
    params = tmp_path / "params.yaml"
    params.write_text(f"pretrained: {{methods: [sanet], folder: {tmp_path / 'mine'}, folders: {{}}}}\n")
    res = safin("verify-release", "--method", "sanet", "--params", str(params), "--out", str(tmp_path / "v.json"))
    assert res.returncode == 2 and "sanet: NOT JUDGED" in res.stdout, res.stdout + res.stderr
    doc = __import__("json").loads((tmp_path / "v.json").read_text())
    assert doc["passed"] is None and doc["worst_psnr_jpeg_db"] is None
