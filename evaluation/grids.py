"""Comparison grids like the paper's figures: rows of (content, style, each method's output), labelled."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

#: figure-specific selections of methods (paper figure -> methods shown after content and style)
FIGURES = {
    "fig2_semantic_awareness": ("safin", "sanet", "wct", "adain"),
    "fig5a_sanet_vs_safin_in_sanet": ("sanet", "sanet_safin"),
    "fig6_fin_vs_safin": ("safin_fin", "safin"),
}



def _fit(im: Image.Image, cell: int) -> Image.Image:
    im = im.convert("RGB")
    im.thumbnail((cell, cell), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (cell, cell), "white")
    canvas.paste(im, ((cell - im.width) // 2, (cell - im.height) // 2))
    return canvas


def draw_grid(rows: Sequence[Sequence[Path]], columns: Sequence[str], out: Path, *, cell: int = 192,
              row_labels: Sequence[str] | None = None, labels: Mapping[str, str] | None = None) -> Path:
    """One row per entry of ``rows`` (a path per column), column titles from ``columns`` (shown as
    ``labels[column]`` where given: the methods' own labels, ``StyleTransfer.label``)."""
    labels = labels or {}
    header, left = 28, 36 if row_labels else 0
    pad = 4
    width = left + len(columns) * (cell + pad) + pad
    height = header + len(rows) * (cell + pad) + pad
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=16)
    for j, name in enumerate(columns):
        x = left + pad + j * (cell + pad)
        draw.text((x + cell // 2, header // 2), labels.get(name, name), fill="black", anchor="mm", font=font)
    for i, paths in enumerate(rows):
        y = header + pad + i * (cell + pad)
        if row_labels:
            draw.text((left // 2, y + cell // 2), row_labels[i], fill="black", anchor="mm", font=font)
        for j, p in enumerate(paths):
            with Image.open(p) as im:
                sheet.paste(_fit(im, cell), (left + pad + j * (cell + pad), y))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def pair_rows(stylized: Path, methods: Sequence[str], pairs: Sequence[int]) -> list[list[Path]]:
    inputs = Path(stylized) / "inputs"
    return [[inputs / f"{i:02d}_content.png", inputs / f"{i:02d}_style.png",
             *[Path(stylized) / m / f"{i:02d}.png" for m in methods]] for i in pairs]


def draw_all(stylized: Path, out_dir: Path, methods: Sequence[str], n_pairs: int, *, per_page: int = 8,
             figure_pairs: Sequence[int] = (0, 1, 2, 3), cell: int = 192,
             labels: Mapping[str, str] | None = None) -> list[Path]:
    """All pairs with all methods, ``per_page`` rows a page, plus the paper's figure-specific grids
    (each drawn when all its methods are in ``methods``)."""
    written = []
    for page, start in enumerate(range(0, n_pairs, per_page)):
        ids = list(range(start, min(start + per_page, n_pairs)))
        written.append(draw_grid(pair_rows(stylized, methods, ids), ["content", "style", *methods],
                                 Path(out_dir) / f"pairs_{page + 1:02d}.png", cell=cell,
                                 row_labels=[f"{i:02d}" for i in ids], labels=labels))
    for name, fig_methods in FIGURES.items():
        shown = [m for m in fig_methods if m in methods]
        if len(shown) == len(fig_methods):
            written.append(draw_grid(pair_rows(stylized, shown, figure_pairs), ["content", "style", *shown],
                                     Path(out_dir) / f"{name}.png", cell=cell,
                                     row_labels=[f"{i:02d}" for i in figure_pairs], labels=labels))
    return written
