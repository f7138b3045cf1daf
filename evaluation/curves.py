"""Training-loss curves from the dvclive logs: the paper's Fig. 5b (SANet vs SAFIN in SANet's network).

The paper claims SAFIN in SANet's base network gives a lower content loss than SANet's own module,
with similar style loss. Both are trained by the same trainer with the same seed, data order and
recipe, so their curves are directly comparable. Each panel shows the raw per-iteration loss (thin)
and an exponential moving average (thick).
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def read_loss(live_dir: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of ``loss/NAME`` from a dvclive folder."""
    path = Path(live_dir) / "plots" / "metrics" / "loss" / f"{name}.tsv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no '{name}' loss log (train the method first)")
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return np.array([int(r["step"]) for r in rows]), np.array([float(r[name]) for r in rows])


def ema(values: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average with bias correction (as TensorBoard's smoothing)."""
    out, acc = np.empty_like(values, dtype=float), 0.0
    for i, v in enumerate(values):
        acc = alpha * acc + (1 - alpha) * v
        out[i] = acc / (1 - alpha ** (i + 1))
    return out


def plot_loss_curves(train_dir: Path, out: Path, methods: Sequence[str] = ("sanet", "sanet_safin"),
                     losses: Sequence[str] = ("content", "style"), smoothing: float = 0.9) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"sanet": "SANet module", "sanet_safin": "SAFIN module (SANet base network)"}
    fig, axes = plt.subplots(1, len(losses), figsize=(5.5 * len(losses), 4), squeeze=False)
    if not methods:  # nothing trained here (the pretrained profile): say so rather than draw empty axes
        for ax in axes[0]:
            ax.axis("off")
        axes[0][0].text(0, 0.5, "No training curves: no method of curves.methods was trained in this run\n"
                                "(the authors' released models have no logged losses).", fontsize=11, va="center")
    for ax, loss in zip(axes[0] if methods else [], losses):
        for i, method in enumerate(methods):
            steps, values = read_loss(Path(train_dir) / method / "live", loss)
            colour = f"C{i}"
            ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
            ax.plot(steps, ema(values, smoothing), color=colour, linewidth=2, label=labels.get(method, method))
        ax.set_title(f"{loss} loss")
        ax.set_xlabel("iteration")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"Training losses (raw, and EMA {smoothing})")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
