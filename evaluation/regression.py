"""The CI metric-regression gate: current metrics vs a frozen reference, per-metric tolerances.

Two checks, both against ``metrics/reference/ci.json`` (written by ``safin regression --update``):

- **metrics** of the 40 pairs: a metric *regresses* when it moves in its worse direction (see
  ``evaluation.metrics.DIRECTION``) by more than its tolerance, ``max(abs, rel · |reference|)``. A move
  beyond tolerance in the better direction is reported as ``improved`` (and fails only with
  ``strict``).
- **training**: every logged loss of every method at every iteration of the ``ci`` recipe (the
  dvclive logs). Any move beyond the ``training`` tolerance fails as ``changed``, in either direction:
  the trajectory has no better side, and it is where a changed recipe (a loss weight, the data order)
  shows first.

The ``ci`` profile computes in float64, so these numbers do not depend on the CPU's instruction set
(``safin isa-check`` measures that); the tolerances in ``params.yaml`` are set from that measured
spread (docs/evaluation.md, "CI metric-regression gate"). Update the reference with ``safin regression --update``
after an intended change.
"""
from __future__ import annotations

import csv
import json
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
            rows.append(Row(method, metric, ref_v, now_v, tol, status(metric, ref_v, now_v, tol, strict)))
    return rows


def status(metric: str, reference: float, now: float, tol: float, strict: bool = False) -> str:
    """``ok`` within ``tol``; beyond it ``regressed`` on the metric's worse side, else ``improved``
    (``changed`` with ``strict``)."""
    if abs(now - reference) <= tol:
        return "ok"
    if (now - reference) * -DIRECTION.get(metric, -1) > 0:  # > 0 when it got worse
        return "regressed"
    return "changed" if strict else "improved"


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


# --------------------------------------------------------------------------------------------------
# Training-loss trajectories


def read_trajectories(train_dir: Path, methods) -> dict[str, dict[str, list[float]]]:
    """``{method: {loss: [value at step 0, 1, ...]}}`` from the dvclive logs under ``train_dir/METHOD/live``."""
    out: dict[str, dict[str, list[float]]] = {}
    for method in methods:
        folder = Path(train_dir) / method / "live" / "plots" / "metrics" / "loss"
        losses = {}
        for tsv in sorted(folder.glob("*.tsv")):
            with open(tsv, newline="") as f:
                rows = sorted((int(r["step"]), float(r[tsv.stem])) for r in csv.DictReader(f, delimiter="\t"))
            losses[tsv.stem] = [v for _, v in rows]
        if losses:
            out[method] = losses
    return out


def compare_training(reference: dict, current: dict, tolerances: dict) -> list[Row]:
    """One row per (method, loss): the final value, and ``changed`` when any step moved beyond the
    ``training`` tolerance (or the number of steps differs)."""
    spec = tolerances.get("training", {})
    rel, abs_ = float(spec.get("rel", 0.0)), float(spec.get("abs", 0.0))
    rows = []
    for method, losses in reference.items():
        for loss, ref in losses.items():
            now = current.get(method, {}).get(loss)
            tol = max(abs_, rel * max(abs(v) for v in ref))
            if now is None:
                rows.append(Row(method, f"train/{loss}", ref[-1], None, tol, "missing"))
                continue
            bad = len(now) != len(ref) or any(abs(a - b) > max(abs_, rel * abs(a)) for a, b in zip(ref, now))
            rows.append(Row(method, f"train/{loss}", ref[-1], now[-1], tol, "changed" if bad else "ok"))
    return rows


def max_relative_deviation(reference: list[float], current: list[float]) -> float:
    return max((abs(b - a) / abs(a) if a else abs(b) for a, b in zip(reference, current)), default=0.0)


# --------------------------------------------------------------------------------------------------
# The gate


def gate(reference_path: Path, current_path: Path, tolerances: dict, *, strict: bool = False,
         train_dir: Path | None = None) -> tuple[int, str]:
    """(exit code, printed table). ``train_dir``: where the current run's dvclive logs are (checked
    when the reference holds training trajectories)."""
    for p in (reference_path, current_path):
        if not Path(p).exists():
            return 2, f"{p}: no such metrics file"
    reference, current = json.loads(Path(reference_path).read_text()), json.loads(Path(current_path).read_text())
    if reference.get("profile") != current.get("profile"):
        return 2, (f"profile mismatch: reference {reference_path} is {reference.get('profile')!r}, current "
                   f"{current_path} is {current.get('profile')!r}")
    for what, key in (("protocol", lambda d: (d.get("protocol") or {}).get("name")),
                      ("CFSD network", lambda d: (d.get("cfsd_network") or {}).get("network"))):
        if key(reference) != key(current):  # different definitions: no number of one can judge the other
            return 2, (f"{what} mismatch: reference {reference_path} has {key(reference)!r}, current {current_path} "
                       f"has {key(current)!r}; compare runs of one {what}, or update the reference")
    rows = compare(reference, current, tolerances, strict)
    if reference.get("training") and train_dir is not None:
        rows += compare_training(reference["training"], read_trajectories(train_dir, reference["training"]), tolerances)
    bad = failed(rows)
    # a method whose outputs collapsed since the reference fails, whatever its numbers (evaluation/degenerate.py); one
    # the reference already recorded as degenerate (the ci profile's 4-step models) is said, its numbers still gated
    known = reference.get("degenerate") or {}
    now = current.get("degenerate") or {}
    collapsed = {m: why for m, why in now.items() if m not in known and m in reference.get("metrics", {})}
    text = table(rows) + f"\n\n{len(rows)} checks, {len(bad) + len(collapsed)} failing"
    text += "".join(f"\nFAILED {m}: degenerate outputs ({why})" for m, why in collapsed.items())
    text += "".join(f"\ndegenerate as in the reference (numbers gated, never judged): {m}: {why}"
                    for m, why in now.items() if m in known)
    text += "".join(f"\ndegenerate, and not in the reference (not gated): {m}: {why}"
                    for m, why in now.items() if m not in known and m not in reference.get("metrics", {}))
    ungated = not_gated(reference, current)
    if ungated:
        text += (f"\nnot gated: {', '.join(ungated)} (no reference in {reference_path}; "
                 "`safin regression --update` on a trusted run adds them)")
    return (1 if bad or collapsed else 0), text


def not_gated(reference: dict, current: dict) -> list[str]:
    """Methods the current run measured and the reference does not hold (a plugin, a new method), and
    ``method.metric`` for a metric it lacks: the gate cannot judge them, and says so instead of failing or
    passing them silently."""
    ref = reference.get("metrics", {})
    methods = [m for m in current.get("metrics", {}) if m not in ref]
    metrics = [f"{m}.{k}" for m, vals in current.get("metrics", {}).items() if m in ref
               for k in vals if k not in ref[m]]  # e.g. ArtFID computed here, skipped where the reference was frozen
    return methods + metrics


def read_per_pair(path: Path) -> dict[str, dict[str, list[float]]]:
    """``{method: {metric: [value of pair 0, 1, ...]}}`` from ``per_pair.csv``."""
    out: dict[str, dict[str, list[float]]] = {}
    with open(path, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: (r["method"], int(r["pair"])))
    for r in rows:
        for metric in DIRECTION:
            if metric in r:  # the columns of its protocol (evaluation/protocols.py)
                out.setdefault(r["method"], {}).setdefault(metric, []).append(float(r[metric]))
    return out


def update(reference_path: Path, current_path: Path, *, per_pair_path: Path | None = None,
           train_dir: Path | None = None, provenance: dict | None = None) -> dict:
    """Make the current run the reference: its summary, per-pair metrics, training trajectories and
    where it was computed."""
    doc = json.loads(Path(current_path).read_text())
    if per_pair_path is not None and Path(per_pair_path).exists():
        doc["per_pair"] = read_per_pair(per_pair_path)
    if train_dir is not None:
        doc["training"] = read_trajectories(train_dir, doc["metrics"])
    if provenance:
        doc["provenance"] = provenance
    Path(reference_path).parent.mkdir(parents=True, exist_ok=True)
    Path(reference_path).write_text(json.dumps(doc, indent=1) + "\n")
    return doc
