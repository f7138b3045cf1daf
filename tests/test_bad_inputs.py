"""A corpus of bad inputs (tests/bad_inputs.py) through image reading, `safin prepare-images`, the
training data loader, `safin stylize` and `safin evaluate`, plus wrong companions and broken
configuration: each gives one clear line naming the file and the problem, batches go on and list what
they skipped, and nothing already written is lost."""
import logging
import os

import pytest
import torch
from PIL import Image

import baselines
from safin.io.datasets import prepare_images, read_pairs
from safin.io.images import ImageReadError, open_rgb, shown
from safin.methods import InputError, load_weights, save_weights
from safin.training.data import PairStream

from .bad_inputs import BAD_KINDS_MIN, make_corpus
from .conftest import REPO, safin

IS_ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return folder, make_corpus(folder)


def _permission_denied_for_root(monkeypatch, path):
    """root reads a file of mode 000 anyway: there the permission error is simulated at open."""
    if not IS_ROOT:
        return
    import PIL.Image

    real = PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda fp, *a, **k: (_ for _ in ()).throw(
        PermissionError(13, "Permission denied")) if str(fp) == str(path) else real(fp, *a, **k))


def test_the_corpus_has_every_kind_the_issue_names(corpus):
    _, expected = corpus
    bad = {n for n, e in expected.items() if e} - {"loop_b.jpg"}
    assert len(bad) >= BAD_KINDS_MIN and len(expected) >= 20


def test_each_bad_image_is_one_line_naming_the_file_and_the_problem(corpus, monkeypatch, caplog):
    folder, expected = corpus
    _permission_denied_for_root(monkeypatch, folder / "locked.jpg")
    for name, phrase in expected.items():
        if phrase is None:
            with caplog.at_level(logging.WARNING):
                im = open_rgb(folder / name)
            assert im.mode == "RGB" and min(im.size) >= 1
            continue
        with pytest.raises(ImageReadError) as e:
            open_rgb(folder / name)
        msg = str(e.value)
        assert msg.startswith(shown(folder / name)) and phrase in msg and "\n" not in msg, (name, msg)
    assert "animated image (3 frames); using the first frame" in caplog.text


def test_prepare_images_goes_on_counts_and_lists_what_it_skipped(corpus, tmp_path):
    folder, expected = corpus
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "good.jpg").write_bytes(b"prepared before")  # already written: must be reused, not lost
    report = prepare_images(str(folder), out, cache=tmp_path / "cache", size=64, progress=False)
    failing = {n for n, e in expected.items() if e and not (IS_ROOT and n == "locked.jpg")}
    skipped = {os.path.basename(r["file"]) for r in report.unreadable}
    assert skipped == failing, skipped ^ failing
    loading = {n for n, e in expected.items() if e is None} | ({"locked.jpg"} if IS_ROOT else set())
    assert report.prepared + report.reused == len(loading) and report.reused == 1
    assert (out / "good.jpg").read_bytes() == b"prepared before"
    assert (out / "unreadable.csv").read_text().count("\n") == len(failing) + 1
    assert not [p for p in out.iterdir() if ".tmp" in p.name]  # no half-written file left
    summary = report.summary()
    summary.encode("utf-8")  # printable even with a file name that is not UTF-8
    assert f"{len(failing)} unreadable" in summary


def test_the_training_loader_reports_each_bad_file_once_and_goes_on(corpus, caplog):
    folder, expected = corpus
    files = sorted(folder / n for n, e in expected.items() if e and n != "locked.jpg") + [folder / "good.jpg"]
    stream = PairStream(files, [folder / "good.jpg"], crop=32, seed=0)
    with caplog.at_level(logging.WARNING):
        batch = [stream[p] for p in range(3 * len(files))]
    assert all(c.shape == (3, 32, 32) for c, _ in batch)
    lines = [r.getMessage() for r in caplog.records if "skipping unreadable training image" in r.getMessage()]
    assert len(lines) == len(files) - 1 and len(set(lines)) == len(lines)  # each once


def test_safin_stylize_skips_and_lists_bad_inputs_and_writes_the_rest(corpus, tmp_path):
    folder, expected = corpus
    out = tmp_path / "out"
    res = safin("stylize", "--method", "adain", "--encoder-weights", "random", "--content", str(folder), "--style",
                str(folder / "good.jpg"), "--output", str(out), "--content-size", "64", "--style-size", "64")
    assert res.returncode == 1, res.stderr  # some inputs failed
    bad = {n for n, e in expected.items() if e and not (IS_ROOT and n == "locked.jpg")}
    for name in bad:  # one line each as it happens, then once more in the closing list
        assert res.stderr.count(f"ERROR pipeline.stylize: skipped: {shown(folder / name)}: {expected[name]}") == 1 \
            or expected[name] in res.stderr.split(f"skipped: {shown(folder / name)}: ", 1)[1].split("\n")[0], name
    good = [n for n, e in expected.items() if e is None] + (["locked.jpg"] if IS_ROOT else [])
    assert f"{len(bad)} of {len(bad) + len(good)} job(s) skipped, {len(good)} written" in res.stderr
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == len(good) and "good_stylized_good.png" in written


def test_wrong_companions_are_refused_with_the_file_named(tmp_path):
    model = baselines.build("adain", encoder_weights="random")
    other = baselines.build("safin", encoder_weights="random")
    save_weights(other, tmp_path / "safin.pt")
    with pytest.raises(InputError, match="safin.pt: holds weights of method 'safin', not 'adain'"):
        load_weights(model, tmp_path / "safin.pt")
    save_weights(model, tmp_path / "nan.pt")
    ckpt = torch.load(tmp_path / "nan.pt", weights_only=True)
    next(iter(ckpt["state_dict"].values())).fill_(float("nan"))
    torch.save(ckpt, tmp_path / "nan.pt")
    with pytest.raises(InputError, match="nan.pt: 1 tensor\\(s\\) hold NaN or infinite values"):
        load_weights(model, tmp_path / "nan.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pt: not a loadable checkpoint"):
        load_weights(model, tmp_path / "junk.pt")
    from pipeline.stylize import load_mask

    Image.new("L", (10, 10)).save(tmp_path / "mask.png")
    Image.new("RGB", (20, 16)).save(tmp_path / "content.png")
    with pytest.raises(InputError, match="mask.png is 10x10 px but content .*content.png is 20x16 px"):
        load_mask(tmp_path / "mask.png", (16, 20), tmp_path / "content.png")


def test_broken_configuration_names_the_file_and_the_line_or_key(tmp_path):
    (tmp_path / "content").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "content/a.jpg")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("content,style\ncontent/a.jpg,style/missing.jpg\n")
    with pytest.raises(ValueError, match="pairs.csv:2: style 'style/missing.jpg' does not exist"):
        read_pairs(pairs)
    elsewhere = tmp_path / "subset" / "pairs.csv"  # a pairs file outside the sample folder it names
    elsewhere.parent.mkdir()
    elsewhere.write_text("content,style\ncontent/a.jpg,content/a.jpg\n")
    assert read_pairs(elsewhere, tmp_path) == [("content/a.jpg", "content/a.jpg")]
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text().replace("  max_iter:", "  max_iters:", 1))
    res = safin("train", "--method", "adain", "--params", str(params))
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1] == (f"safin train: error: {params}: train.max_iter is missing "
                                                   f"(found train.max_iters: misspelt?)")


def test_evaluate_names_a_broken_output_and_writes_nothing(tmp_path):
    from pipeline.evaluate import evaluate

    stylized = tmp_path / "stylized"
    (stylized / "inputs").mkdir(parents=True)
    (stylized / "adain").mkdir()
    for kind in ("content", "style"):
        Image.new("RGB", (64, 64), (90, 120, 150)).save(stylized / f"inputs/00_{kind}.png")
    (stylized / "adain/00.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    params = {"evaluate": {"out": str(tmp_path / "metrics"), "bootstrap": 10, "seed": 0},
              "stylize": {"out": str(stylized), "methods": ["adain"]}}
    with pytest.raises(ImageReadError, match="adain/00.png: unreadable image"):
        evaluate(params)
    assert not (tmp_path / "metrics").exists()
