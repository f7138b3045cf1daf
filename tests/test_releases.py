"""The authors' releases (safin/io/releases.py, pipeline/pretrained.py): fetched from a local server standing
in for their hosts (SAFIN_URL_MIRROR), checksums recorded on first use, the user's own folder, and every wrong
file refused with one line naming it."""
from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from safin.io import releases
from safin.io.releases import RELEASES, ReleaseError, confirm_link, fetch_release
from safin.methods import InputError

from .release_files import write_release

DRIVE_ID = "1M5KBPfqrIUZqrBZf78CIxLrMUT4lD4t9"


def mirror_name(url: str) -> str:
    """The path the test server answers for a canonical URL (SAFIN_URL_MIRROR keeps host, path, query)."""
    return url.split("://", 1)[1]


def wct_zip(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in sorted(folder.glob("*.t7")):
            z.write(p, f"models/{p.name}")
        z.writestr("models/README.txt", "not a model")
    return buf.getvalue()


def drive_confirm_page(uuid: str = "abc-123", file_id: str = DRIVE_ID) -> bytes:
    return (f'<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>'
            f'<form id="download-form" action="https://drive.usercontent.google.com/download" method="get">'
            f'<input type="submit" value="Download anyway"/><input type="hidden" name="id" value="{file_id}">'
            f'<input type="hidden" name="export" value="download"><input type="hidden" name="confirm" value="t">'
            f'<input type="hidden" name="uuid" value="{uuid}"></form></body></html>').encode()


def adaattn_zip(files: dict[str, Path]) -> bytes:
    """AdaAttN_model.zip as the README's ``unzip`` from the repository root leaves it: checkpoints/AdaAttN/."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, path in files.items():
            if name != "vgg_normalised.pth":
                z.write(path, f"checkpoints/AdaAttN/{name}")
    return buf.getvalue()


def serve_drive(server, url: str, data: bytes, confirm: bool = True) -> None:
    """A Google Drive file: ``uc?export=download&id=ID`` answers the virus-scan confirm page, whose form leads to
    drive.usercontent.google.com with the file."""
    file_id = url.rsplit("id=", 1)[1]
    if not confirm:
        server.files[mirror_name(url)] = data
        return
    server.files[mirror_name(url)] = drive_confirm_page(f"u-{file_id[:6]}", file_id)
    server.files[f"drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t&uuid=u-{file_id[:6]}"] = data


def serve_adaattn(server, files: dict[str, Path], confirm: bool = True) -> None:
    """AdaAttN's README links: the zip and vgg_normalised.pth, two Drive files (both large: confirm pages)."""
    rel = RELEASES["adaattn"]
    serve_drive(server, rel.archive_url, adaattn_zip(files), confirm)
    serve_drive(server, rel.files[-1].url, files["vgg_normalised.pth"].read_bytes(), confirm)


def serve_stytr2(server, files: dict[str, Path], confirm: bool = True) -> None:
    """StyTR-2's README links: four Drive files, each behind the confirm page of a file too large to scan."""
    for f in RELEASES["stytr2"].files:
        serve_drive(server, f.url, files[f.name].read_bytes(), confirm)


def bundle_zip(folder: Path, top: str = "SANET-1.0") -> bytes:
    """A release bundle as SANET's README describes it: weights, code and examples in one archive."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in sorted(folder.iterdir()):
            z.write(p, f"{top}/{p.name}")
        z.writestr(f"{top}/Eval.py", "# the code\n")
        z.writestr(f"{top}/output/chicago_stylized_1.jpg", b"\xff\xd8 an example")
    return buf.getvalue()


def serve_sanet_yandex(server, files: dict[str, Path]) -> None:
    """Yandex.Disk as its public API serves a share link: JSON with an ``href`` on downloader.disk.yandex.ru,
    which answers 302 to a storage node that sends the bytes."""
    import urllib.parse

    for f in RELEASES["sanet"].files:
        api = releases.YANDEX_API.format(key=urllib.parse.quote(f.yandex, safe=""))
        token = f.yandex.rsplit("/", 1)[1]
        href = f"https://downloader.disk.yandex.ru/disk/{token}?uid=0&filename={f.name}&disposition=attachment"
        server.files[mirror_name(api)] = json.dumps({"href": href, "method": "GET", "templated": False}).encode()
        server.redirects[mirror_name(href)] = server.url(f"s123vla.storage.yandex.net/rdisk/{token}")
        server.files[f"s123vla.storage.yandex.net/rdisk/{token}"] = files[f.name].read_bytes()


def serve_sanet_bundle(server, src: Path) -> None:
    """GitHub's API for the latest release, with the bundle attached as its one asset."""
    api = releases.GITHUB_API.format(repo="GlebSBrykin/SANET")
    asset = "https://github.com/GlebSBrykin/SANET/releases/download/v1.0/SANET.zip"
    server.files[mirror_name(api)] = json.dumps({
        "tag_name": "v1.0", "zipball_url": "https://api.github.com/repos/GlebSBrykin/SANET/zipball/v1.0",
        "assets": [{"name": "SANET.zip", "size": 1, "content_type": "application/x-zip-compressed",
                    "browser_download_url": asset}]}).encode()
    server.files[mirror_name(asset)] = bundle_zip(src)


def serve_release(server, method: str, tmp: Path, *, confirm: bool = True, seed: int = 0,
                  sanet: str = "bundle") -> dict[str, Path]:
    """Put ``method``'s synthetic release on ``server`` in the form its host serves it (WCT: Google Drive's archive,
    behind a confirm page when ``confirm``; SANet: the latest GitHub release's bundle, or with ``sanet="yandex"``
    no release and the three Yandex.Disk links); returns the files written."""
    files = write_release(method, tmp / f"src_{method}", seed)
    rel = RELEASES[method]
    if method == "adaattn":
        serve_adaattn(server, files, confirm=confirm)
    elif method == "stytr2":
        serve_stytr2(server, files, confirm=confirm)
    elif rel.archive_url:
        data = wct_zip(tmp / f"src_{method}")
        if confirm:
            server.files[mirror_name(rel.archive_url)] = drive_confirm_page()
            server.files[f"drive.usercontent.google.com/download?id={DRIVE_ID}&export=download&confirm=t&uuid=abc-123"] = data
        else:
            server.files[mirror_name(rel.archive_url)] = data
    elif method == "sanet":
        if sanet == "bundle":
            serve_sanet_bundle(server, tmp / f"src_{method}")
        serve_sanet_yandex(server, files)
    else:
        for f in rel.files:
            server.files[mirror_name(f.url)] = files[f.name].read_bytes()
    return files


@pytest.fixture
def mirror(http_server, tmp_path, monkeypatch):
    monkeypatch.setenv("SAFIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SAFIN_URL_MIRROR", http_server.url("").rstrip("/"))
    return http_server


def test_every_release_names_its_files_and_where_to_get_them():
    assert set(RELEASES) == {"adain", "sanet", "safin", "wct", "adaattn", "stytr2"}
    for rel in RELEASES.values():
        assert rel.page and rel.what and rel.files
        assert all(f.url or f.yandex or rel.archive_url for f in rel.files)
        assert rel.load_order()[-1].startswith("vgg_normalised") or rel.method == "wct"  # the encoder last
    assert len(RELEASES["wct"].files) == 10
    with pytest.raises(ReleaseError, match="safin_fin: no released weights"):
        releases.release("safin_fin")


@pytest.mark.parametrize("method", ["adain", "sanet", "safin", "wct"])
def test_a_release_downloads_is_recorded_after_loading_and_checked_from_then_on(mirror, tmp_path, method):
    from pipeline.pretrained import load_release

    written = serve_release(mirror, method, tmp_path)
    got = fetch_release(method)
    assert list(got) == RELEASES[method].load_order()
    for name, f in got.items():
        assert f["path"].read_bytes() == written[name].read_bytes()
        assert f["checksum"].startswith("not recorded yet") and f["pending"]
    assert not (tmp_path / "cache" / "recorded_sha256.json").exists()  # fetched, not loaded: nothing recorded
    _, got = load_release(method, None)
    assert all(f["checksum"] == "recorded now (first use), after the method loaded it" for f in got.values())
    table = json.loads((tmp_path / "cache" / "recorded_sha256.json").read_text())
    assert {k for k in table if k.startswith(f"release/{method}/")} == {f"release/{method}/{n}" for n in got}
    n_requests = len(mirror.requests)
    again = fetch_release(method)  # from the cache, checked against the record: no request
    assert len(mirror.requests) == n_requests
    assert all(f["checksum"].startswith("matches the one recorded") for f in again.values())
    # a cached file that changed afterwards is refused, naming it and the recorded checksum
    victim = next(iter(again.values()))["path"]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(ReleaseError, match=rf"{victim.name}: sha256 .* was recorded on first use"):
        fetch_release(method)


def test_sanet_comes_from_the_latest_releases_bundle_first(mirror, tmp_path):
    written = serve_release(mirror, "sanet", tmp_path)
    got = fetch_release("sanet")
    assert all(f["path"].read_bytes() == written[n].read_bytes() for n, f in got.items())
    assert all(f["from"] == "the latest GitHub release of GlebSBrykin/SANET" for f in got.values())
    asked = [name for name, _ in mirror.requests]
    assert asked == ["api.github.com/repos/GlebSBrykin/SANET/releases/latest",
                     "github.com/GlebSBrykin/SANET/releases/download/v1.0/SANET.zip"]  # no Yandex request


def test_sanet_falls_back_to_yandex_disks_public_api(mirror, tmp_path):
    """No GitHub release (the API answers 404): each file from its share link, through Yandex's public API and the
    download host's redirect to a storage node."""
    written = serve_release(mirror, "sanet", tmp_path, sanet="yandex")
    got = fetch_release("sanet")
    assert all(f["path"].read_bytes() == written[n].read_bytes() for n, f in got.items())
    assert got["decoder_iter_500000.pth"]["from"] == "https://yadi.sk/d/xsZ7j6FhK1dmfQ (Yandex.Disk)"
    asked = [name for name, _ in mirror.requests]
    assert asked[0] == "api.github.com/repos/GlebSBrykin/SANET/releases/latest"
    assert asked[1].startswith("cloud-api.yandex.net/v1/disk/public/resources/download?public_key=https%3A%2F%2Fyadi.sk")
    assert asked[2].startswith("downloader.disk.yandex.ru/disk/xsZ7j6FhK1dmfQ")
    assert asked[3] == "s123vla.storage.yandex.net/rdisk/xsZ7j6FhK1dmfQ"
    # a release whose one asset is an archive the suite cannot unpack: the same fallback, and a line saying so
    for k in list(mirror.files):
        mirror.files.pop(k) if k.startswith("api.github.com") else None
    shutil.rmtree(tmp_path / "cache")
    mirror.files[mirror_name(releases.GITHUB_API.format(repo="GlebSBrykin/SANET"))] = json.dumps(
        {"tag_name": "v1", "assets": [{"name": "SANET.rar", "browser_download_url": "https://x.example/SANET.rar"}]}).encode()
    got = fetch_release("sanet")
    assert all(f["path"].read_bytes() == written[n].read_bytes() for n, f in got.items())


def test_google_drive_confirm_page_is_followed():
    page = Path(__file__).parent / "_tmp_confirm.html"
    try:
        page.write_bytes(drive_confirm_page("u-1"))
        link = confirm_link(page, "https://drive.google.com/uc?export=download&id=x")
    finally:
        page.unlink()
    assert link == f"https://drive.usercontent.google.com/download?id={DRIVE_ID}&export=download&confirm=t&uuid=u-1"


def test_an_html_page_under_a_weight_file_name_is_refused_and_not_kept(mirror, tmp_path):
    serve_release(mirror, "adain", tmp_path)
    mirror.files[mirror_name(RELEASES["adain"].files[0].url)] = b"<!DOCTYPE html><html><body>Sign in</body></html>"
    with pytest.raises(ReleaseError, match=r"decoder.pth: an HTML page saved under the file's name.*by hand from "
                                           r"https://github.com/naoto0804"):
        fetch_release("adain")
    assert not (tmp_path / "cache" / "releases" / "adain" / "decoder.pth").exists()  # the next run downloads again
    # an archive host answering a page with no download link
    serve_release(mirror, "wct", tmp_path)
    mirror.files[mirror_name(RELEASES["wct"].archive_url)] = b"<html><body>quota exceeded</body></html>"
    with pytest.raises(ReleaseError, match="HTML page with no download link; download models.zip by hand"):
        fetch_release("wct")


def test_a_missing_file_says_where_to_put_it(mirror, tmp_path, monkeypatch):
    with pytest.raises(ReleaseError, match=r"adain: decoder.pth: .*HTTP 404.*Download it by hand: put decoder.pth in "
                                           r".*/mine/ \(from https://github.com/naoto0804"):
        fetch_release("adain", folder=tmp_path / "mine")
    monkeypatch.setenv("SAFIN_OFFLINE", "1")
    n = len(mirror.requests)
    with pytest.raises(ReleaseError, match=r"sanet: decoder_iter_500000.pth, .* not at hand and SAFIN_OFFLINE=1"):
        fetch_release("sanet", folder=tmp_path / "mine")
    assert len(mirror.requests) == n


def test_your_own_folder_comes_first_and_is_recorded_too(mirror, tmp_path):
    from pipeline.pretrained import load_release

    mine = tmp_path / "mine"
    written = write_release("safin", mine, seed=3)
    _, got = load_release("safin", mine)
    assert not mirror.requests  # nothing downloaded
    assert all(f["from"] == f"your folder {mine}" and f["path"] == written[n] for n, f in got.items())
    # replacing a file by another one afterwards is caught
    write_release("safin", mine, seed=4)
    with pytest.raises(ReleaseError, match="decoder.pth.tar: sha256 .* was recorded on first use"):
        fetch_release("safin", folder=mine)


@pytest.mark.parametrize("names", [("decoder.pth.tar", "vgg_normalised.pth"), ("decoder.pth", "vgg_normalized.pth"),
                                   ("models/decoder.pth", "models/vgg_normalised.pth")])
def test_safins_files_are_found_under_the_names_users_really_have(mirror, tmp_path, names):
    """The Dropbox link saves decoder.pth.tar; test.py wants models/decoder.pth; the README spells vgg_normalized."""
    src = write_release("safin", tmp_path / "src", seed=2)
    mine = tmp_path / "mine"
    for release_name, name in zip(("decoder.pth.tar", "vgg_normalised.pth"), names):
        (mine / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src[release_name], mine / name)
    got = fetch_release("safin", folder=mine)
    assert not mirror.requests
    assert [f["path"] for f in got.values()] == [mine / n for n in names]


def test_adaattn_zip_and_vgg_come_through_drives_confirm_pages_and_load(mirror, tmp_path):
    """AdaAttN: the three networks from AdaAttN_model.zip, the VGG from its own Drive link, each behind Drive's
    confirm page; the checksums recorded only once the method loaded them; a second fetch from the cache."""
    from pipeline.pretrained import load_release

    files = serve_release(mirror, "adaattn", tmp_path)
    model, got = load_release("adaattn", None)
    assert list(got) == ["latest_net_decoder.pth", "latest_net_transformer.pth", "latest_net_adaattn_3.pth",
                         "vgg_normalised.pth"]
    assert all(f["path"].read_bytes() == files[n].read_bytes() for n, f in got.items())
    assert got["latest_net_decoder.pth"]["from"].endswith("(AdaAttN_model.zip)")
    assert got["vgg_normalised.pth"]["from"] == RELEASES["adaattn"].files[-1].url
    assert sum("confirm=t" in name for name, _ in mirror.requests) == 2  # each file past its confirm page
    state = torch.load(files["latest_net_transformer.pth"], weights_only=True)
    assert torch.equal(model.transform.merge_conv.weight, state["merge_conv.weight"])
    assert all("recorded" in f["checksum"] for f in got.values())
    n = len(mirror.requests)
    again = fetch_release("adaattn")
    assert len(mirror.requests) == n and all(f["from"].startswith("cache") for f in again.values())


def test_stytr2s_four_drive_files_come_through_their_confirm_pages_and_load(mirror, tmp_path):
    """StyTr²: the README's four Drive links, each past its confirm page, under the names its test.py reads; loaded
    into the model; a second fetch from the cache, a hand download in experiments/ used without a request."""
    from pipeline.pretrained import load_release

    files = serve_release(mirror, "stytr2", tmp_path)
    model, got = load_release("stytr2", None)
    assert list(got) == ["decoder_iter_160000.pth", "transformer_iter_160000.pth", "embedding_iter_160000.pth",
                         "vgg_normalised.pth"]
    assert all(f["path"].read_bytes() == files[n].read_bytes() for n, f in got.items())
    assert [got[f.name]["from"] for f in RELEASES["stytr2"].files] == [f.url for f in RELEASES["stytr2"].files]
    assert sum("confirm=t" in name for name, _ in mirror.requests) == 4
    state = torch.load(files["transformer_iter_160000.pth"], weights_only=True)
    assert torch.equal(model.transformer.decoder.layers[2].multihead_attn.in_proj_weight,
                       state["decoder.layers.2.multihead_attn.in_proj_weight"])
    assert all("recorded" in f["checksum"] for f in got.values())
    n = len(mirror.requests)
    assert all(f["from"].startswith("cache") for f in fetch_release("stytr2").values()) and len(mirror.requests) == n
    mine = tmp_path / "StyTR-2"
    (mine / "experiments").mkdir(parents=True)
    for name, path in files.items():
        shutil.copy(path, mine / "experiments" / name)
    assert [f["path"] for f in fetch_release("stytr2", folder=mine).values()] == [
        mine / "experiments" / f.name for f in RELEASES["stytr2"].files]
    assert len(mirror.requests) == n


def test_adaattn_zip_without_a_network_is_refused_by_name(mirror, tmp_path):
    files = serve_release(mirror, "adaattn", tmp_path, confirm=False)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.write(files["latest_net_decoder.pth"], "checkpoints/AdaAttN/latest_net_decoder.pth")
    mirror.files[mirror_name(RELEASES["adaattn"].archive_url)] = buf.getvalue()
    with pytest.raises(ReleaseError, match=r"AdaAttN_model.zip: lacks latest_net_transformer.pth, "
                                           r"latest_net_adaattn_3.pth; not AdaAttN"):
        fetch_release("adaattn")


@pytest.mark.parametrize("where", ["archive", "models"])
def test_wcts_archive_or_its_models_folder_in_your_folder_is_used(mirror, tmp_path, where):
    """PytorchWCT: "download and uncompress them under models/": the archive as downloaded, or unpacked there."""
    src = tmp_path / "src"
    write_release("wct", src, seed=1)
    mine = tmp_path / "mine"
    mine.mkdir()
    if where == "archive":
        (mine / "models.zip").write_bytes(wct_zip(src))
    else:
        shutil.copytree(src, mine / "models")
    got = fetch_release("wct", folder=mine)
    assert not mirror.requests
    assert all(f["path"].read_bytes() == (src / n).read_bytes() for n, f in got.items())
    assert all(f["from"] == (f"your archive {mine / 'models.zip'}" if where == "archive" else f"your folder {mine}")
               for f in got.values())
    assert not (mine / "feature_invertor_conv1_1.t7").exists()  # your folder is never written


def test_offline_the_message_names_the_folder_and_the_archive(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("SAFIN_OFFLINE", "1")
    with pytest.raises(ReleaseError, match=r"wct: feature_invertor_conv1_1.t7, .* not at hand and SAFIN_OFFLINE=1: put "
                                           r".*, or the archive models.zip as downloaded, in .*/mine/ \(from "):
        fetch_release("wct", folder=tmp_path / "mine")
    with pytest.raises(ReleaseError, match=r"put decoder.pth.tar \(or decoder.pth\), vgg_normalised.pth \(or "
                                           r"vgg_normalized.pth\) in .*/mine/"):
        fetch_release("safin", folder=tmp_path / "mine")


def test_a_wrong_file_is_not_recorded_so_the_right_one_is_accepted_after(mirror, tmp_path):
    """AdaIN and SAFIN both ship a decoder and a vgg_normalised.pth: AdaIN's decoder in SAFIN's folder fails to load
    and must leave no checksum behind, or SAFIN's own file would be refused from then on."""
    from pipeline.pretrained import load_release

    mine = tmp_path / "mine"
    right = write_release("safin", mine, seed=1)
    keep = tmp_path / "right_decoder"
    shutil.copy(right["decoder.pth.tar"], keep)
    shutil.copy(write_release("adain", tmp_path / "adain")["decoder.pth"], mine / "decoder.pth.tar")
    with pytest.raises(InputError, match=r"decoder.pth.tar: no 'decoder_state_dict'"):
        load_release("safin", mine)
    recorded = tmp_path / "cache" / "recorded_sha256.json"
    assert not recorded.exists() or not any(k.startswith("release/safin/") for k in json.loads(recorded.read_text()))
    shutil.copy(keep, mine / "decoder.pth.tar")
    _, got = load_release("safin", mine)
    assert got["decoder.pth.tar"]["checksum"].startswith("recorded now")


def _pretrained_params(tmp_path, methods, folder=None):
    return {"train": {"out": str(tmp_path / "train"), "methods": list(methods)},
            "stylize": {"methods": list(methods)},
            "pretrained": {"methods": list(methods), "folder": str(folder or tmp_path / "none"), "folders": {}}}


@pytest.mark.parametrize("method", ["adain", "sanet", "safin", "wct"])
def test_import_writes_weights_that_stylize_exactly_as_the_release(mirror, tmp_path, method):
    from baselines import build
    from pipeline.pretrained import import_release
    from pipeline.stylize import build_model

    written = serve_release(mirror, method, tmp_path, seed=5)
    params = _pretrained_params(tmp_path, [method])
    summary = import_release(params, method)
    assert summary["origin"] == "authors' release" and summary["encoder"]["name"] == "authors"
    weights = tmp_path / "train" / method / "weights.pt"
    saved = torch.load(weights, weights_only=True)
    assert any(k.startswith("encoder.") for k in saved["state_dict"])  # their encoder travels with their decoder
    assert saved["meta"]["files"].keys() == written.keys()
    ours = build_model(method, checkpoint=str(weights), encoder_weights="random", precision="fp32")
    ref = build(method, encoder_weights="random").load_reference(*[written[n] for n in RELEASES[method].load_order()])
    ref.eval().set_compute("fp32")
    x, s = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0)), torch.rand(1, 3, 48, 48)
    with torch.inference_mode():
        a, b = ours(x, s, clamp=False), ref(x, s, clamp=False)
    assert torch.isfinite(a).all() and a.std() > 0 and torch.equal(a, b)
    assert ours.reference_encoder.startswith("the authors'")
    assert json.loads((tmp_path / "train" / method / "summary.json").read_text())["release"] == RELEASES[method].what


def test_the_wrong_files_in_your_folder_get_one_clear_line(mirror, tmp_path):
    from pipeline.pretrained import import_release

    mine = tmp_path / "mine"
    # SANet's decoder saved as SAFIN's decoder.pth: the wrong method's checkpoint
    write_release("sanet", tmp_path / "sanet_files")
    write_release("safin", mine / "safin")
    shutil.copy(tmp_path / "sanet_files" / "decoder_iter_500000.pth", mine / "safin" / "decoder.pth.tar")
    with pytest.raises(InputError, match=r"decoder.pth.tar: no 'decoder_state_dict'"):
        import_release(_pretrained_params(tmp_path, ["safin"], mine), "safin")
    # a truncated download
    write_release("adain", mine / "adain")
    data = (mine / "adain" / "decoder.pth").read_bytes()
    (mine / "adain" / "decoder.pth").write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match=r"decoder.pth: not a loadable checkpoint"):
        import_release(_pretrained_params(tmp_path, ["adain"], mine), "adain")
    assert not (tmp_path / "train" / "adain" / "weights.pt").exists()  # nothing half-written


def test_bethgelab_vgg_is_the_first_source_and_derived_the_offline_fallback(mirror, tmp_path, real_cache, monkeypatch):
    from safin.io import weights

    vgg = write_release("adain", tmp_path / "src")["vgg_normalised.pth"]
    src = weights.REGISTRY["vgg19_normalised"].sources[0]
    mirror.files[mirror_name(src.url)] = vgg.read_bytes()
    got = weights.fetch("vgg19_normalised")
    assert got.source == f"url {src.url}"
    ident = weights.weights_identity("normalised")
    assert ident["source"] == got.source and ident["tensor_sha256"] == got.tensor_sha256
    assert ident["tensor_sha256"] != weights.REGISTRY["vgg19_normalised"].tensor_sha256  # not our derived one
    assert weights.fetch("vgg19_normalised").cached  # accepted from the cache: its checksum was recorded
    # offline, with an empty cache: the derived encoder, pinned
    monkeypatch.setenv("SAFIN_CACHE", str(tmp_path / "offline"))
    monkeypatch.setenv("SAFIN_OFFLINE", "1")
    (tmp_path / "offline" / "weights").mkdir(parents=True)
    for suffix in (".pth", ".json"):  # the derived asset as the real cache holds it (derivation is tested elsewhere)
        shutil.copy(real_cache / "weights" / f"vgg19_normalised{suffix}",
                    tmp_path / "offline" / "weights" / f"vgg19_normalised_derived{suffix}")
    got = weights.fetch("vgg19_normalised")
    assert got.source.startswith("derived: this suite's normalised VGG-19")
    assert got.tensor_sha256 == weights.REGISTRY["vgg19_normalised_derived"].tensor_sha256
    assert weights.weights_identity("derived")["tensor_sha256"] == got.tensor_sha256


def test_the_reports_built_in_list_is_the_suites():
    import baselines
    from pipeline.method_info import BUILT_IN

    assert tuple(BUILT_IN) == tuple(baselines.METHOD_NAMES)


def test_fetch_release_command_prints_where_each_file_came_from(mirror, tmp_path, capsys):
    from pipeline.cli import main

    serve_release(mirror, "adain", tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text("pretrained: {methods: [], folder: none, folders: {}}\n")
    assert main(["fetch-release", "--method", "adain", "--params", str(params)]) == 0
    out = capsys.readouterr().out
    assert "adain: decoder.pth:" in out and "from https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/decoder.pth" in out
    assert out.count("recorded now (first use), after the method loaded it") == 2


def test_a_file_cached_under_an_earlier_name_is_used_not_fetched_again(mirror, tmp_path, monkeypatch):
    """SAFIN's decoder was cached as decoder.pth before its release name became decoder.pth.tar."""
    src = write_release("safin", tmp_path / "src", seed=2)
    cache = tmp_path / "cache" / "releases" / "safin"
    cache.mkdir(parents=True)
    shutil.copy(src["decoder.pth.tar"], cache / "decoder.pth")
    shutil.copy(src["vgg_normalised.pth"], cache / "vgg_normalised.pth")
    monkeypatch.setenv("SAFIN_OFFLINE", "1")
    got = fetch_release("safin")
    assert got["decoder.pth.tar"]["path"] == cache / "decoder.pth.tar" and not (cache / "decoder.pth").exists()
    assert not mirror.requests
