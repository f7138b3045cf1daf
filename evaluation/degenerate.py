"""Degenerate outputs: a model that collapsed (one flat colour, noise, NaN) is flagged and never judged.

Two measures per output, against its content (:func:`output_measures`, called per pair by ``evaluate``):

- ``output_std``: the standard deviation of the output's pixel values over the image (0..1; the largest of the
  three channels': an image of one colour has 0, whatever the colour). An output is *flat*
  below :data:`FLAT_STD` = 0.02 (about 5/255): what the eye sees as one colour; a photograph or a painting has
  0.1–0.3, and the collapsed WCT of the issue that asked for this had 0.
- ``edge_corr`` (higher is better, a metric column): the Pearson correlation of the Sobel gradient magnitudes of
  the grey output and the grey content (ITU-R 601 luma, ``scipy.ndimage.sobel``), i.e. whether the output's edges
  sit where the content's are. 0 when either image has no gradient at all (a flat image has no structure).

A method is **degenerate** (:func:`judge`) when any of its outputs held non-finite values (the stylize stage's
record), when at least half of its outputs are flat, or when its mean ``edge_corr`` is below :data:`EDGE_MIN` =
0.05: outputs unrelated to their content. Measured (``tests/test_degenerate.py``, 10 sample pairs at 128 px):
uniform noise in place of the output gives |edge_corr| ≤ 0.024, the content's grey in the style's colours
0.985 or more, and AdaIN with its decoder as initialised (iteration 0) is flat (pixel SD 0.011 on every pair). On the
demo's trained models the issue measured 0.09 for the weakest method that still showed its content (SANet's
soft blobs, AMD Zen 4) and 0.20–0.54 for the others. A degenerate method's numbers stay in the tables, marked; every claim that involves it says
"not evaluated: degenerate outputs of METHOD"; the regression gate fails it.
"""
from __future__ import annotations

import numpy as np

import torch

from safin.blocks.statistics import FLAT_STD, spatial_sd  # one definition of "flat", in training and here

EDGE_MIN = 0.05
FLAT_SHARE = 0.5
LUMA = (0.299, 0.587, 0.114)


def _grey(img) -> np.ndarray:
    """(3, H, W) tensor or array in 0..1 -> (H, W) float64 luma."""
    a = np.asarray(img.detach().cpu().double() if hasattr(img, "detach") else img, dtype=np.float64)
    return np.tensordot(np.asarray(LUMA), a, axes=(0, 0))


def edge_magnitude(grey: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return np.hypot(ndimage.sobel(grey, axis=0, mode="reflect"), ndimage.sobel(grey, axis=1, mode="reflect"))


def edge_correlation(output, content) -> float:
    """Pearson correlation of the Sobel magnitudes of the grey output and content (same size); 0 when either has
    no gradient anywhere."""
    eo, ec = edge_magnitude(_grey(output)).ravel(), edge_magnitude(_grey(content)).ravel()
    if eo.std() == 0 or ec.std() == 0 or not (np.isfinite(eo).all() and np.isfinite(ec).all()):
        return 0.0
    return float(np.corrcoef(eo, ec)[0, 1])


def output_measures(output, content) -> dict[str, float]:
    out = output if hasattr(output, "detach") else torch.as_tensor(np.asarray(output, dtype=np.float64))
    return {"edge_corr": edge_correlation(output, content), "output_std": float(spatial_sd(out)[0])}


def judge(rows: list[dict], nonfinite: dict[str, list[int]] | None = None) -> dict[str, str]:
    """``{method: why}`` for every degenerate method, from the per-pair rows (``method``, ``output_std``,
    ``edge_corr``) and each method's pairs whose output held non-finite values."""
    out: dict[str, str] = {}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        bad = (nonfinite or {}).get(m) or []
        flat = [r for r in mine if r["output_std"] < FLAT_STD]
        edge = float(np.mean([r["edge_corr"] for r in mine]))
        if bad:
            out[m] = f"{len(bad)} of {len(mine)} outputs held non-finite values (NaN or inf)"
        elif len(flat) >= FLAT_SHARE * len(mine):
            out[m] = (f"{len(flat)} of {len(mine)} outputs are flat (pixel SD below {FLAT_STD}; largest "
                      f"{max(r['output_std'] for r in mine):.3g})")
        elif edge < EDGE_MIN:
            out[m] = (f"outputs unrelated to their content (mean edge correlation {edge:.3f}, below {EDGE_MIN})")
    return out


def health(rows: list[dict], nonfinite: dict[str, list[int]] | None = None) -> dict[str, dict]:
    """Per method: the measures behind :func:`judge` (for summary.json)."""
    out = {}
    for m in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == m]
        out[m] = {"flat_outputs": sum(r["output_std"] < FLAT_STD for r in mine), "outputs": len(mine),
                  "median_output_std": round(float(np.median([r["output_std"] for r in mine])), 6),
                  "mean_edge_corr": round(float(np.mean([r["edge_corr"] for r in mine])), 6),
                  "nonfinite_pairs": list((nonfinite or {}).get(m) or [])}
    return out


def not_evaluated(method: str) -> str:
    return f"not evaluated: degenerate outputs of {method}"
