import numpy as np
import pytest
import torch
from PIL import Image

from safin.io.images import ImageReadError, load_image, save_image


def _save(im: Image.Image, path, **kw):
    im.save(path, **kw)
    return path


def test_rgb_jpeg_is_float_in_unit_range(tmp_path):
    p = _save(Image.new("RGB", (7, 5), (255, 0, 128)), tmp_path / "a.png")
    x = load_image(p)
    assert x.shape == (3, 5, 7) and x.dtype == torch.float32
    assert torch.allclose(x[:, 0, 0], torch.tensor([1.0, 0.0, 128 / 255]))


def test_grayscale_becomes_three_equal_channels(tmp_path):
    p = _save(Image.new("L", (4, 3), 100), tmp_path / "g.png")
    x = load_image(p)
    assert x.shape == (3, 3, 4) and torch.all(x == 100 / 255)


def test_rgba_is_composited_over_white(tmp_path):
    arr = np.zeros((2, 2, 4), np.uint8)
    arr[0, 0] = (255, 0, 0, 255)  # opaque red
    arr[1, 1] = (0, 0, 0, 0)      # fully transparent black -> white
    x = load_image(_save(Image.fromarray(arr, "RGBA"), tmp_path / "a.png"))
    assert torch.allclose(x[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(x[:, 1, 1], torch.ones(3))


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (3, 3), 0)
    im.putpalette([0, 0, 255] + [0, 0, 0] * 255)
    im.info["transparency"] = 1
    im.putpixel((1, 1), 1)
    x = load_image(_save(im, tmp_path / "p.png", transparency=1))
    assert torch.allclose(x[:, 0, 0], torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(x[:, 1, 1], torch.ones(3))


def test_cmyk(tmp_path):
    p = _save(Image.new("CMYK", (2, 2), (0, 255, 255, 0)), tmp_path / "c.jpg", quality=100)
    x = load_image(p)
    assert x.shape == (3, 2, 2)
    assert x[0].mean() > 0.9 and x[1].mean() < 0.1 and x[2].mean() < 0.1  # red


def test_16bit_grayscale_png_keeps_full_range(tmp_path):
    arr = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(arr).save(p)
    x = load_image(p)
    assert x[0, 0, 0] == 0 and x[0, 0, 1] == 1.0
    assert abs(float(x[0, 1, 0]) - 128 / 255) < 1 / 255


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (6, 2), (0, 0, 0))
    im.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    p = tmp_path / "r.jpg"
    im.save(p, exif=exif, quality=100)
    x = load_image(p)
    assert x.shape == (3, 6, 2)  # displayed upright: portrait


def test_non_image_names_the_file(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a picture")
    with pytest.raises(ImageReadError, match=r"notes\.jpg.*not an image"):
        load_image(p)


def test_empty_file_names_the_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.png.*0 bytes"):
        load_image(p)


def test_truncated_jpeg_is_reported(tmp_path):
    p = tmp_path / "t.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(p)
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(ImageReadError, match=r"t\.jpg"):
        load_image(p)


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        load_image(tmp_path / "nope.png")


def test_max_side_and_save_roundtrip(tmp_path):
    x = torch.rand(3, 40, 100)
    out = save_image(x, tmp_path / "sub" / "o.png")
    y = load_image(out)
    assert torch.allclose(x, y, atol=1 / 255)
    assert load_image(out, max_side=50).shape == (3, 20, 50)


def test_load_image_long_side_scales_up_and_down(tmp_path):
    from PIL import Image

    from safin.io.images import load_image

    Image.new("RGB", (40, 20), (10, 20, 30)).save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png", long_side=80).shape == (3, 40, 80)
    assert load_image(tmp_path / "a.png", long_side=10).shape == (3, 5, 10)
    assert load_image(tmp_path / "a.png", max_side=80).shape == (3, 20, 40)  # max_side never enlarges
