"""The paper's Fig. 7 redrawn from a tally: grouped bars with cluster-bootstrap 95% CIs and the chance
line, a 100 % stacked variant (the paper's look), and a per-set heat map."""
from __future__ import annotations

from pathlib import Path

import numpy as np

QUESTION_LABELS = {"best_stylization": "Best stylization", "fewest_artifacts": "Fewest artifacts"}


def _label(doc: dict, key: str) -> str:
    """A method's label as the tally recorded it (``doc["labels"]``: from the method's class), or a
    question's; else the key itself."""
    return doc.get("labels", {}).get(key) or QUESTION_LABELS.get(key) or key


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _suffix(doc: dict) -> str:
    return " — SIMULATED responses" if doc.get("simulated") else ""


def grouped_bars(doc: dict, out: Path) -> Path:
    plt = _plt()
    methods, questions = doc["methods"], [q for q in doc["questions"] if q in doc["shares"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(methods)
    x = np.arange(len(questions))
    for i, m in enumerate(methods):
        shares = [doc["shares"][q][m]["share"] for q in questions]
        lo = [doc["shares"][q][m]["share"] - doc["shares"][q][m]["ci95"][0] for q in questions]
        hi = [doc["shares"][q][m]["ci95"][1] - doc["shares"][q][m]["share"] for q in questions]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, shares, width, yerr=[lo, hi], capsize=3,
               label=_label(doc, m), color=f"C{i}")
    ax.axhline(1 / len(methods), color="gray", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(x, [_label(doc, q) for q in questions])
    ax.set_ylabel("vote share")
    n = doc["participants"]["kept"]
    sets = doc["shares"][questions[0]]["_n"]["sets"] if questions else 0
    ax.set_title(f"User study: {n} participants × {sets} sets (95% two-way cluster bootstrap){_suffix(doc)}",
                 fontsize=9)
    ax.legend(fontsize=8, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    fig.tight_layout()
    return _save(fig, out, plt)


def stacked_bars(doc: dict, out: Path) -> Path:
    plt = _plt()
    methods, questions = doc["methods"], [q for q in doc["questions"] if q in doc["shares"]]
    fig, ax = plt.subplots(figsize=(6, 3))
    for j, q in enumerate(questions):
        left = 0.0
        for i, m in enumerate(methods):
            s = doc["shares"][q][m]["share"]
            ax.barh(j, s * 100, left=left, color=f"C{i}", label=_label(doc, m) if j == 0 else None)
            if s > 0.06:
                ax.text(left + s * 50, j, f"{s:.0%}", ha="center", va="center", fontsize=8, color="white")
            left += s * 100
    ax.set_yticks(range(len(questions)), [_label(doc, q) for q in questions])
    ax.set_xlabel("% of votes")
    ax.set_xlim(0, 100)
    ax.set_title(f"Vote shares (paper-style){_suffix(doc)}", fontsize=9)
    ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.3))
    fig.tight_layout()
    return _save(fig, out, plt)


def heat_map(doc: dict, question: str, out: Path) -> Path:
    plt = _plt()
    per_set = doc["per_set"][question]
    sets = sorted(per_set, key=int)
    methods = doc["methods"]
    data = np.array([[per_set[s][m] for m in methods] for s in sets]).T
    fig, ax = plt.subplots(figsize=(max(6, len(sets) * 0.22), 2.4))
    im = ax.imshow(data, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set_yticks(range(len(methods)), [_label(doc, m) for m in methods])
    ax.set_xticks(range(len(sets)), sets, fontsize=6)
    ax.set_xlabel("set")
    ax.set_title(f"Per-set vote share — {_label(doc, question)}{_suffix(doc)}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    return _save(fig, out, plt)


def _save(fig, out: Path, plt) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
