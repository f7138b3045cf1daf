"""Image files in and out: every image becomes RGB float in [0, 1], shape (3, H, W).

Handles what real data sets contain: grayscale, bilevel, RGBA / LA / palette with transparency
(composited over white), CMYK, 16-bit grayscale PNG, and EXIF orientation. Anything that is not a
decodable image raises :class:`ImageReadError` naming the file and the problem.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from safin.io.files import atomic_path

log = logging.getLogger(__name__)

#: Paintings in WikiArt can be huge; allow up to 1 gigapixel (Pillow's default stops at ~179 MP).
Image.MAX_IMAGE_PIXELS = 1_000_000_000

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageReadError(ValueError):
    """A file that should be an image could not be read as one."""


def is_image_name(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMAGE_SUFFIXES)


def shown(path: str | os.PathLike) -> str:
    """``path`` printable on any terminal: bytes that are not UTF-8 appear as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """Open ``path`` as an 8-bit RGB :class:`PIL.Image.Image`, orientation applied. Anything that is
    not a readable raster image raises :class:`ImageReadError`: one line naming the file and the problem.
    An animated image gives its first frame (logged)."""
    path = Path(path)
    name = shown(path)
    if path.is_symlink() and not path.exists():
        try:
            path.resolve(strict=True)
            problem = "a broken symbolic link"
        except RuntimeError:
            problem = "a symbolic link loop"
        except OSError as e:
            problem = "a symbolic link loop" if e.errno == 40 else "a broken symbolic link"
        raise ImageReadError(f"{name}: {problem}, not an image")
    if not path.exists():
        raise ImageReadError(f"{name}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{name}: is a directory, not an image")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{name}: empty file (0 bytes), not an image")
    if path.suffix.lower() == ".svg":
        raise ImageReadError(f"{name}: SVG is a vector format; convert it to PNG or JPEG first")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # refuse above the limit, not 2x it
            im = Image.open(path)
        with im:
            if getattr(im, "n_frames", 1) > 1:
                log.warning("%s: animated image (%d frames); using the first frame", name, im.n_frames)
            im.load()
            im = ImageOps.exif_transpose(im)
            return _to_rgb(im)
    except UnidentifiedImageError as e:
        raw = path.read_bytes()[:256] if os.access(path, os.R_OK) else b""
        for magic, kind in ((b"\x89PNG", "PNG"), (b"\xff\xd8", "JPEG"), (b"GIF8", "GIF"), (b"BM", "BMP")):
            if raw.startswith(magic):
                raise ImageReadError(f"{name}: a corrupt {kind} file (its header cannot be decoded)") from e
        head = raw.lstrip().lower()
        what = " (it is HTML/XML text)" if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<svg")) else ""
        raise ImageReadError(f"{name}: not an image file (unrecognised format){what}") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageReadError(f"{name}: refused, a decompression bomb ({e})") from e
    except PermissionError as e:
        raise ImageReadError(f"{name}: unreadable (permission denied)") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{name}: unreadable image ({' '.join(str(e).split())})") from e


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.width == 0 or im.height == 0:
        raise ValueError("zero-size image")
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):  # 16-bit (or 32-bit int) grayscale
        arr = np.asarray(im, dtype=np.float64)
        scale = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(np.round(arr / scale * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        scale = 255.0 if arr.max() > 1.0 else 1.0
        return Image.fromarray(np.clip(np.round(arr / scale * 255), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        return im.convert("RGB")
    return im.convert("RGB")


def pil_to_tensor(im: Image.Image) -> torch.Tensor:
    arr = np.asarray(im, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def load_image(path: str | os.PathLike, max_side: int | None = None, long_side: int | None = None) -> torch.Tensor:
    """Read ``path`` as a (3, H, W) float tensor in [0, 1]; optionally shrink so max(H, W) <= ``max_side``,
    or scale (up or down) so max(H, W) == ``long_side``."""
    im = open_rgb(path)
    target = long_side if long_side else (max_side if max_side and max(im.size) > max_side else None)
    if target and target != max(im.size):
        scale = target / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                       Image.Resampling.BICUBIC)
    return pil_to_tensor(im)


#: test-time resizing (``safin stylize --resize``): ``longer`` = this suite's (the longer side, bicubic);
#: the references' own: ``shorter`` (pytorch-AdaIN and SANet test.py: torchvision ``Resize(size)``, the
#: shorter side to ``size``, the longer truncated, bilinear), ``square`` (SAFIN test.py: ``Resize((size,
#: size))``, aspect not kept, bilinear), ``square-bicubic`` (AdaAttN test_adaattn.sh: ``Resize([size, size],
#: BICUBIC)``, aspect not kept), ``shorter-crop`` (StyTR-2 test.py: ``Resize(size)`` then ``CenterCrop(size)``, a
#: size x size square from the middle), ``content`` (PytorchWCT: the content's longer side to ``size``,
#: truncated, and the style to the content's size, PIL's bicubic)
RESIZE_MODES = ("longer", "shorter", "shorter-crop", "square", "square-bicubic", "content", "none")


def resize_for_test(im: Image.Image, size: int | None, mode: str = "longer",
                    like: tuple[int, int] | None = None) -> Image.Image:
    """``im`` resized as ``mode`` says (:data:`RESIZE_MODES`); ``like``: the (width, height) a style takes in
    mode ``content`` (only when its content was resized: PytorchWCT's Loader). ``size`` 0 or None, or mode
    ``none`` (SANET's Eval.py: ``ToTensor()`` only), keeps the size."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode {mode!r}: expected one of {', '.join(RESIZE_MODES)}")
    if like is not None:
        return im if im.size == tuple(like) else im.resize(tuple(like), Image.Resampling.BICUBIC)
    if not size or mode == "none":
        return im
    w, h = im.size
    if mode == "square":
        target, resample = (size, size), Image.Resampling.BILINEAR
    elif mode == "square-bicubic":
        target, resample = (size, size), Image.Resampling.BICUBIC
    elif mode in ("shorter", "shorter-crop"):  # torchvision: short side = size, long side = int(size * long / short)
        target = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
        resample = Image.Resampling.BILINEAR
    elif mode == "content":  # PytorchWCT: longer side = size, the other int(h * size / w)
        target, resample = ((size, int(h * size / w)) if w > h else (int(w * size / h), size)), Image.Resampling.BICUBIC
    else:
        scale = size / max(w, h)
        target, resample = (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC
    target = (max(1, target[0]), max(1, target[1]))
    im = im if target == im.size else im.resize(target, resample)
    if mode == "shorter-crop" and im.size != (size, size):  # torchvision CenterCrop: offsets round((side - size) / 2)
        left, top = int(round((im.width - size) / 2.0)), int(round((im.height - size) / 2.0))
        im = im.crop((left, top, left + size, top + size))
    return im


def tensor_to_pil(img: torch.Tensor) -> Image.Image:
    if img.dim() == 4:
        if img.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {img.shape[0]}")
        img = img[0]
    arr = (img.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy())
    return Image.fromarray(arr, "RGB")


def save_image(img: torch.Tensor | Image.Image, path: str | os.PathLike, **save_kwargs) -> Path:
    """Write an image atomically (temp file + rename); format from the suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im = img if isinstance(img, Image.Image) else tensor_to_pil(img)
    with atomic_path(path) as tmp:
        im.save(tmp, **save_kwargs)
    return path
