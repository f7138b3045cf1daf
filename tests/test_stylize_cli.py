"""``safin stylize`` as a user runs it: real sample images, odd sizes, folders, globs, bad input."""
import numpy as np
import pytest
from PIL import Image

from .conftest import REPO, safin

SAMPLE = REPO / "data" / "sample"


def stylize(*args, expect=0):
    res = safin("stylize", *args, env={"SAFIN_OFFLINE": "1"})
    assert res.returncode == expect, res.stderr[-3000:]
    return res


@pytest.mark.parametrize("method", ["safin", "safin_fin", "sanet", "sanet_safin", "adain", "wct"])
def test_every_method_stylizes_a_real_image_of_odd_size(tmp_path, method, real_cache):
    """171 x 125: neither side a multiple of 2, so every method pads to its own multiple and crops back
    (491 x 500 before: the same path at 11x the pixels)."""
    content = tmp_path / "odd.png"
    Image.open(SAMPLE / "content/chelsea.jpg").convert("RGB").resize((171, 125)).save(content)
    out = tmp_path / "out.png"
    res = stylize("--method", method, "--content", str(content), "--style", str(SAMPLE / "style/Gogh4.jpg"),
                  "--content-size", "0", "--style-size", "128", "--output", str(out))
    assert "UNTRAINED" in res.stderr  # no weights given: the user is told
    assert Image.open(out).size == (171, 125)


def test_folder_and_glob_inputs_write_one_file_per_pair(tmp_path):
    res = stylize("--method", "adain", "--encoder-weights", "random", "--content", str(SAMPLE / "content/c*.jpg"),
                  "--style", str(SAMPLE / "style/Gogh4.jpg"), "--content-size", "64", "--style-size", "64",
                  "--output", str(tmp_path / "o"))
    written = sorted((tmp_path / "o").glob("*.png"))
    expected = sorted(SAMPLE.glob("content/c*.jpg"))
    assert len(written) == len(expected) and all("_stylized_Gogh4" in p.name for p in written)
    assert len(res.stdout.splitlines()) == len(expected)


def test_two_styles_with_masks(tmp_path):
    content = SAMPLE / "content/coffee.jpg"
    w, h = Image.open(content).size
    left = np.zeros((h, w), np.uint8)
    left[:, : w // 2] = 255
    Image.fromarray(left).save(tmp_path / "left.png")
    Image.fromarray(255 - left).save(tmp_path / "right.png")
    stylize("--method", "safin", "--encoder-weights", "random", "--content", str(content),
            "--style", str(SAMPLE / "style/Gogh4.jpg"), "--style", str(SAMPLE / "style/Albrecht_D_rer_Lion_1494.jpg"),
            "--mask", str(tmp_path / "left.png"), "--mask", str(tmp_path / "right.png"),
            "--content-size", "96", "--style-size", "64", "--output", str(tmp_path / "o"))
    assert len(list((tmp_path / "o").glob("coffee_interpolation_*.png"))) == 1


def test_mismatched_mask_is_a_clear_error(tmp_path):
    Image.new("L", (10, 10), 255).save(tmp_path / "m.png")
    res = stylize("--method", "adain", "--encoder-weights", "random", "--content", str(SAMPLE / "content/coffee.jpg"),
                  "--style", str(SAMPLE / "style/Gogh4.jpg"), "--mask", str(tmp_path / "m.png"),
                  "--output", str(tmp_path / "o"), expect=1)
    assert "mask" in res.stderr and "10x10" in res.stderr and "must match" in res.stderr


def test_non_image_and_empty_files_are_reported_and_the_rest_written(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.open(SAMPLE / "content/coffee.jpg").save(src / "good.jpg")
    (src / "notes.jpg").write_text("hello")
    (src / "empty.png").write_bytes(b"")
    res = stylize("--method", "adain", "--encoder-weights", "random", "--content", str(src),
                  "--style", str(SAMPLE / "style/Gogh4.jpg"), "--content-size", "64", "--style-size", "64",
                  "--output", str(tmp_path / "o"), expect=1)
    assert "notes.jpg" in res.stderr and "not an image" in res.stderr
    assert "empty.png" in res.stderr and "0 bytes" in res.stderr
    assert [p.name for p in (tmp_path / "o").glob("*.png")] == ["good_stylized_Gogh4.png"]


def test_missing_input_is_a_clear_error(tmp_path):
    res = stylize("--method", "adain", "--content", str(tmp_path / "nope*.jpg"), "--style",
                  str(SAMPLE / "style/Gogh4.jpg"), expect=1)
    assert "no such file, or no image files match" in res.stderr


def test_resize_modes_are_the_reference_scripts_transforms():
    """--resize reference follows each method's own test script: restated with torchvision's Resize (what
    pytorch-AdaIN, SANet and SAFIN call) and PytorchWCT's arithmetic, pixel for pixel."""
    from torchvision import transforms

    from safin.io.images import resize_for_test

    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (90, 161, 3), dtype=np.uint8))  # 161 x 90, landscape
    tall = Image.fromarray(rng.integers(0, 256, (161, 90, 3), dtype=np.uint8))
    for pic in (im, tall):
        assert np.array_equal(np.asarray(resize_for_test(pic, 64, "shorter")), np.asarray(transforms.Resize(64)(pic)))
        assert np.array_equal(np.asarray(resize_for_test(pic, 64, "square")), np.asarray(transforms.Resize((64, 64))(pic)))
        # AdaAttN's test_adaattn.sh: transforms.Resize([512, 512], Image.BICUBIC)
        bicubic = transforms.Resize([64, 64], transforms.InterpolationMode.BICUBIC)(pic)
        assert np.array_equal(np.asarray(resize_for_test(pic, 64, "square-bicubic")), np.asarray(bicubic))
        assert not np.array_equal(np.asarray(resize_for_test(pic, 64, "square")), np.asarray(bicubic))
        # StyTR-2's test.py: Resize(512) then CenterCrop(512); also at an odd excess (161 -> 114 at 64: 25 a side)
        for size in (64, 63):
            cropped = transforms.CenterCrop(size)(transforms.Resize(size)(pic))
            assert np.array_equal(np.asarray(resize_for_test(pic, size, "shorter-crop")), np.asarray(cropped))
    # PytorchWCT (util.py): the longer side to fineSize, the other int(side * fineSize / longer); the style to
    # the content's new size; PIL's default filter
    content = resize_for_test(im, 100, "content")
    assert content.size == (100, int(90 * 100 / 161))
    assert resize_for_test(tall, 100, "content").size == (int(90 * 100 / 161), 100)
    style = Image.fromarray(rng.integers(0, 256, (70, 50, 3), dtype=np.uint8))
    assert np.array_equal(np.asarray(resize_for_test(style, 512, "content", like=content.size)),
                          np.asarray(style.resize(content.size, Image.Resampling.BICUBIC)))
    assert resize_for_test(im, 64, "longer").size == (64, 36)  # this suite's: longer side, aspect kept
    assert resize_for_test(im, 64, "none") is im  # SANET's Eval.py: ToTensor() only
    assert resize_for_test(im, 0, "square").size == im.size  # 0 keeps the size
    with pytest.raises(ValueError, match="resize mode 'wide'"):
        resize_for_test(im, 64, "wide")


def test_wcts_style_follows_the_content_only_when_the_content_was_resized(tmp_path, monkeypatch):
    """PytorchWCT's Loader resizes the style to the content's new size inside ``if w != fineSize``: a content
    already at fineSize leaves both images as they are."""
    import pipeline.stylize as st

    seen = []
    real = st.load_for_test
    monkeypatch.setattr(st, "load_for_test", lambda *a, **k: seen.append(tuple(real(*a, **k).shape[-2:])) or real(*a, **k))
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    Image.open(SAMPLE / "content/chelsea.jpg").convert("RGB").resize((64, 48)).save(content)
    Image.open(SAMPLE / "style/Gogh4.jpg").convert("RGB").resize((40, 56)).save(style)
    for size, want in ((64, [(48, 64), (56, 40)]), (96, [(72, 96), (72, 96)])):
        seen.clear()
        stylize("--method", "wct", "--encoder-weights", "random", "--content", str(content), "--style", str(style),
                "--content-size", str(size), "--style-size", str(size), "--output", str(tmp_path / f"o{size}.png"))
        assert seen == want


@pytest.mark.parametrize("method, reference_size", [("safin", (64, 64)), ("adain", (96, 64)), ("wct", (64, 42)),
                                                    ("sanet", (96, 64))])
def test_stylize_resizes_as_each_methods_reference_by_default(tmp_path, method, reference_size):
    content = tmp_path / "wide.png"
    Image.open(SAMPLE / "content/chelsea.jpg").convert("RGB").resize((96, 64)).save(content)
    common = ["--method", method, "--encoder-weights", "random", "--content", str(content),
              "--style", str(SAMPLE / "style/Gogh4.jpg"), "--content-size", "64", "--style-size", "64"]
    stylize(*common, "--output", str(tmp_path / "ref.png"))
    assert Image.open(tmp_path / "ref.png").size == reference_size
    stylize(*common, "--resize", "longer", "--output", str(tmp_path / "longer.png"))
    assert Image.open(tmp_path / "longer.png").size == (64, 43)
