"""The CI metric-regression gate: current metrics vs a frozen reference, per-metric tolerances.

A metric *regresses* when it moves in its worse direction (see ``evaluation.metrics.DIRECTION``) by
more than its tolerance, ``max(abs, rel · |reference|)``. A move beyond tolerance in the better
direction is reported as ``improved`` (and fails only with ``strict``: on the deterministic ``ci``
profile any change means behaviour changed). Update the reference with
``safin regression --update`` after an intended change.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from .metrics import DIRECTION


@dataclass
class Row:
    method: str
    metric: str
    reference: float
    now: float | None
    tolerance: float
    status: str

    @property
    def change(self) -> float | None:
        return None if self.now is None else self.now - self.reference


def tolerance(metric: str, reference: float, tolerances: dict) -> float:
    spec = {**tolerances.get("default", {}), **tolerances.get(metric, {})}
    return max(float(spec.get("abs", 0.0)), float(spec.get("rel", 0.0)) * abs(reference))


def compare(reference: dict, current: dict, tolerances: dict, strict: bool = False) -> list[Row]:
    rows = []
    for method, metrics in reference["metrics"].items():
        for metric, ref in metrics.items():
            ref_v = float(ref["mean"])
            now = current.get("metrics", {}).get(method, {}).get(metric)
            tol = tolerance(metric, ref_v, tolerances)
            if now is None:
                rows.append(Row(method, metric, ref_v, None, tol, "missing"))
                continue
            now_v = float(now["mean"])
            worse = (now_v - ref_v) * -DIRECTION.get(metric, -1)  # > 0 when it got worse
            if abs(now_v - ref_v) <= tol:
                status = "ok"
            elif worse > 0:
                status = "regressed"
            else:
                status = "changed" if strict else "improved"
            rows.append(Row(method, metric, ref_v, now_v, tol, status))
    return rows


def table(rows: list[Row]) -> str:
    lines = [f"{'method':<12} {'metric':<20} {'reference':>12} {'now':>12} {'change':>11} {'tolerance':>10}  status",
             "-" * 92]
    for r in rows:
        now = "—" if r.now is None else f"{r.now:12.6g}"
        change = "—" if r.change is None else f"{r.change:+11.4g}"
        lines.append(f"{r.method:<12} {r.metric:<20} {r.reference:12.6g} {now:>12} {change:>11} {r.tolerance:10.3g}  "
                     f"{r.status.upper() if r.status != 'ok' else 'ok'}")
    return "\n".join(lines)


def failed(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.status in ("regressed", "missing", "changed")]


def gate(reference_path: Path, current_path: Path, tolerances: dict, *, strict: bool = False) -> tuple[int, str]:
    """(exit code, printed table)."""
    for p in (reference_path, current_path):
        if not Path(p).exists():
            return 2, f"{p}: no such metrics file"
    reference, current = json.loads(Path(reference_path).read_text()), json.loads(Path(current_path).read_text())
    if reference.get("profile") != current.get("profile"):
        return 2, (f"profile mismatch: reference {reference_path} is {reference.get('profile')!r}, current "
                   f"{current_path} is {current.get('profile')!r}")
    rows = compare(reference, current, tolerances, strict)
    bad = failed(rows)
    text = table(rows) + f"\n\n{len(rows)} metrics, {len(bad)} failing"
    return (1 if bad else 0), text


def update(reference_path: Path, current_path: Path) -> None:
    Path(reference_path).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(current_path, reference_path)
