"""A corpus of bad (and odd but valid) inputs, generated into a folder: every kind the reliability issue
names, and more. ``make_corpus(folder)`` returns ``{name: expected}``; ``expected`` is a phrase the
one-line error must contain, or ``None`` for inputs that must load."""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 40_000, height: int = 40_000) -> bytes:
    """A valid PNG header announcing 1.6 gigapixels, with a token of data: PIL refuses it on open."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _png_chunk(b"IEND", b""))


def _jpeg(size=(64, 48), mode="RGB", **kw) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128 if mode != "RGB" else (200, 120, 40)).save(buf, "JPEG", **kw)
    return buf.getvalue()


def _png(size=(64, 48), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


def make_corpus(folder: Path) -> dict[str, str | None]:
    folder.mkdir(parents=True, exist_ok=True)
    w = lambda name, data: (folder / name).write_bytes(data)  # noqa: E731
    expected: dict[str, str | None] = {}

    w("truncated.jpg", _jpeg((256, 256))[:600]); expected["truncated.jpg"] = "unreadable image"
    w("truncated.png", _png((256, 256))[:80]); expected["truncated.png"] = "unreadable image"
    w("empty.jpg", b""); expected["empty.jpg"] = "empty file (0 bytes)"
    w("page.jpg", b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n")
    expected["page.jpg"] = "it is HTML/XML text"
    w("bomb.png", bomb_png()); expected["bomb.png"] = "decompression bomb"
    w("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>')
    expected["drawing.svg"] = "SVG is a vector format"
    w("text.png", b"just some text, not an image\n" * 3); expected["text.png"] = "not an image file"
    bad_crc = bytearray(_png((32, 32))); bad_crc[29] ^= 0xFF  # the IHDR CRC
    w("bad_crc.png", bytes(bad_crc)); expected["bad_crc.png"] = "a corrupt PNG file"
    (folder / "folder.jpg").mkdir(exist_ok=True); expected["folder.jpg"] = "is a directory"
    os.symlink(folder / "loop_b.jpg", folder / "loop_a.jpg")
    os.symlink(folder / "loop_a.jpg", folder / "loop_b.jpg")
    expected["loop_a.jpg"] = "symbolic link loop"
    expected["loop_b.jpg"] = "symbolic link loop"
    os.symlink(folder / "gone.jpg", folder / "dangling.jpg"); expected["dangling.jpg"] = "broken symbolic link"
    w("locked.jpg", _jpeg()); os.chmod(folder / "locked.jpg", 0); expected["locked.jpg"] = "permission denied"
    # odd but valid: these must load
    frames = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO(); frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    w("animated.gif", buf.getvalue()); expected["animated.gif"] = None
    w("tiny.png", _png((1, 1))); expected["tiny.png"] = None
    w("cmyk.jpg", _jpeg(mode="CMYK")); expected["cmyk.jpg"] = None
    w("gray16.png", _png(mode="I;16")); expected["gray16.png"] = None
    w("jpeg_named.png", _jpeg()); expected["jpeg_named.png"] = None
    rgba = io.BytesIO(); Image.new("RGBA", (48, 48), (10, 20, 30, 0)).save(rgba, "PNG")
    w("transparent.png", rgba.getvalue()); expected["transparent.png"] = None
    name = os.fsdecode(b"caf\xe9.jpg")  # not UTF-8: a Latin-1 file name
    (folder / name).write_bytes(_jpeg()); expected[name] = None
    w("good.jpg", _jpeg((96, 80))); expected["good.jpg"] = None
    return expected


BAD_KINDS_MIN = 12  # failing files above, the two links of the loop counted once
