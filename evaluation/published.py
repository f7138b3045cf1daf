"""Published tables kept as data (``evaluation/published/*.json``: the numbers, where they were printed, the protocol
and the evaluation set that produced them), and the comparison of a run's measurements with them.

A comparison is drawn only when the run used the table's protocol (``evaluate.protocol``) on the table's evaluation
set (``data.evaluation.set``), all of its pairs, and, for CFSD, torchvision's VGG-19; otherwise the report lists the published rows
and says plainly why no difference is computed.
"""
from __future__ import annotations

import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "published"
#: the published metrics, in the run's names (``summary.json``: ``metrics[method][name]``)
NAMES = {"artfid": "ArtFID ↓", "fid": "FID ↓", "lpips": "LPIPS ↓", "cfsd": "CFSD ↓"}


def tables() -> dict[str, dict]:
    """Every published table, by file stem."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(FOLDER.glob("*.json"))}


def run_set(summary: dict) -> str:
    return str((summary.get("evaluation_set") or {}).get("name") or "")


def why_not_comparable(table: dict, summary: dict) -> str | None:
    """Why this run's numbers cannot be put against ``table`` (protocol, set), or None when they can."""
    protocol = (summary.get("protocol") or {}).get("name")
    reasons = []
    if protocol != table["protocol"]:
        reasons.append(f"this run's protocol is {protocol or 'not recorded'!s}, the table's {table['protocol']}")
    if run_set(summary) != table["set"]:
        reasons.append(f"this run's evaluation set is {(summary.get('evaluation_set') or {}).get('description', 'not recorded')}, "
                       f"the table's {table['set_description']}")
    elif summary.get("n_pairs") != table["n_pairs"]:  # FID_N, so ArtFID, moves with N
        reasons.append(f"this run measured {summary.get('n_pairs')} pairs of the set, the table {table['n_pairs']} "
                       f"(FID and ArtFID depend on the number of images)")
    return "; ".join(reasons) or None


def comparison(table: dict, summary: dict) -> tuple[str, list[str], list[list[str]]]:
    """(paragraph, header, rows) of one published table beside this run: for each published method, the published
    value, and when comparable the measured one and the difference (measured − published)."""
    why = why_not_comparable(table, summary)
    measured = summary.get("metrics") or {}
    cfsd_ok = (summary.get("cfsd_network") or {}).get("comparable", False)
    header = ["method"] + [f"{NAMES[m]} published" + ("" if why else " / measured / difference") for m in table["metrics"]]
    rows = []
    for method, pub in table["rows"].items():
        cells = [f"{pub['label']} ({method})"]
        for m in table["metrics"]:
            if why:
                cells.append(f"{pub[m]:.3f}")
                continue
            got = (measured.get(method) or {}).get(m)
            if got is None:
                cells.append(f"{pub[m]:.3f} / not measured in this run")
            elif m == "cfsd" and not cfsd_ok:
                cells.append(f"{pub[m]:.3f} / {got['mean']:.3f} (not comparable: offline VGG-19) / —")
            else:
                cells.append(f"{pub[m]:.3f} / {got['mean']:.3f} / {got['mean'] - pub[m]:+.3f}")
        rows.append(cells)
    text = f"{table['title']}; {table['source']}. Protocol {table['protocol']}, set: {table['set_description']}. "
    text += (f"Not compared with this run: {why}." if why else
             "This run used the same protocol and set: published / measured / difference (measured − published). "
             "FID here is FID_N of this run's pairs, which is what StyleID's FID∞ mode computes below 5000 images.")
    return text, header, rows
