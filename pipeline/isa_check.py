"""``safin isa-check``: the regression gate's computation under each instruction set this CPU can emulate.

The gate compares the ``ci`` profile's numbers with a reference frozen on one machine; CI runs on
others (AVX-512 or AVX2, Intel or AMD, with or without bf16). For each setting of
:data:`safin.runtime.cpu_isa.SETTINGS` the CPU can run, a fresh process with that setting's variables (they
cap ATen, oneDNN and MKL before ``import torch``) runs the gated computation with the active
``params.yaml``: the training of every method (the whole ``ci`` recipe) and the stylization and
metrics of the first ``pairs`` evaluation pairs, through the same functions as the pipeline's stages.
Its training-loss trajectories and per-pair metrics are then held against the reference with the
gate's own tolerances, and the largest relative deviation of each is reported.
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from safin.runtime import cpu_isa

from .params import load_params


def _worker(params_path: str, setting: str, out: Path, pairs: int, methods: list[str] | None = None) -> None:
    """Runs in the capped process: train every method (or ``methods``), stylize and evaluate ``pairs`` pairs
    into ``out``."""
    import baselines  # noqa: F401

    from .evaluate import evaluate
    from .stylize import stylize_pairs
    from .train import config_from_params
    from safin.training import train

    from safin.io.weights import ensure_encoder_weights

    ensure_encoder_weights("normalised")
    if cpu_isa.active_isa() != setting:
        raise SystemExit(f"isa-check: asked for {setting}, but PyTorch runs {cpu_isa.active_isa()} kernels")
    params = copy.deepcopy(load_params(params_path))
    params["train"]["out"] = str(out / "train")
    params["stylize"]["out"] = str(out / "stylized")
    params["evaluate"]["out"] = str(out / "metrics")
    with open(params["data"]["pairs"], newline="") as f:
        rows = list(csv.reader(f))
    subset = out / "pairs.csv"
    subset.parent.mkdir(parents=True, exist_ok=True)
    with open(subset, "w", newline="") as f:
        csv.writer(f).writerows(rows[: pairs + 1])  # the header and the first `pairs` pairs
    params["data"]["pairs"] = str(subset)
    if methods:
        params["train"]["methods"] = [m for m in params["train"]["methods"] if m in methods]
        params["stylize"]["methods"] = [m for m in params["stylize"]["methods"] if m in methods]
    for method in params["train"]["methods"]:
        # no decoding processes and no progress bar: neither changes what is computed (the data order
        # is a function of the sample position)
        train(config_from_params(params, method, num_workers=0, progress=False))
    stylize_pairs(params)
    evaluate(params)
    (out / "cpu.json").write_text(json.dumps({"setting": setting, "cpu": cpu_isa.describe()}))


def run_setting(setting: str, out: Path, pairs: int, params_path: str = "params.yaml", timeout: float = 900,
                methods: list[str] | None = None) -> None:
    """The gated computation in a new process under ``setting``; raises with its output's tail on failure."""
    env = cpu_isa.env_for(setting)
    env["TQDM_DISABLE"] = "1"
    res = subprocess.run([sys.executable, "-m", "pipeline.isa_check", "--worker", setting, "--out", str(out),
                          "--pairs", str(pairs), "--params", params_path,
                          *(["--methods", ",".join(methods)] if methods else [])],
                         env=env, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"isa-check {setting}: the gated computation failed (exit {res.returncode}):\n"
                           f"{(res.stdout + res.stderr)[-3000:]}")


def compare_setting(reference: dict, out: Path, tolerances: dict) -> dict:
    """Hold one setting's outputs against the reference: rows of the gate's table, and the largest
    relative deviations of the training losses and the per-pair metrics."""
    from evaluation.regression import (Row, compare_training, max_relative_deviation, read_per_pair,
                                       read_trajectories, status, tolerance)

    training = read_trajectories(out / "train", reference["training"])
    rows = compare_training(reference["training"], training, tolerances)
    dev_train = max((max_relative_deviation(ref, training.get(m, {}).get(loss, []))
                     for m, losses in reference["training"].items() for loss, ref in losses.items()), default=0.0)
    now = read_per_pair(out / "metrics" / "per_pair.csv")
    dev_metric = 0.0
    for method, metrics in reference["per_pair"].items():
        for metric, ref_values in metrics.items():
            values = now.get(method, {}).get(metric)
            if not values:
                rows.append(Row(method, metric, ref_values[0], None, 0.0, "missing"))
                continue
            ref_values = ref_values[: len(values)]
            dev_metric = max(dev_metric, max_relative_deviation(ref_values, values))
            worst = max(range(len(values)), key=lambda i: abs(values[i] - ref_values[i]))
            tol = tolerance(metric, ref_values[worst], tolerances)
            rows.append(Row(method, f"{metric} (pair {worst})", ref_values[worst], values[worst], tol,
                            status(metric, ref_values[worst], values[worst], tol)))
    return {"rows": rows, "max_rel_dev_training": dev_train, "max_rel_dev_metrics": dev_metric,
            "cpu": json.loads((out / "cpu.json").read_text())["cpu"]}


def isa_check(settings: list[str], *, pairs: int = 4, params_path: str = "params.yaml",
              out_path: Path | None = None, methods: list[str] | None = None, progress=print) -> int:
    """Run and compare every setting; print one table per setting and a summary; 0 when all pass.
    ``methods``: only these methods' training and pairs (default: every method of the reference)."""
    from evaluation.regression import failed, table

    params = load_params(params_path)
    r = params["regression"]
    ref_path = Path(r["reference"])
    reference = json.loads(ref_path.read_text())
    if params.get("profile") != reference.get("profile"):
        progress(f"isa-check: the active profile is {params.get('profile')!r} but {ref_path} is of "
                 f"{reference.get('profile')!r}; run `safin profile {reference.get('profile')}` first")
        return 2
    if not reference.get("training") or not reference.get("per_pair"):
        progress(f"isa-check: {ref_path} has no training trajectories or per-pair metrics; "
                 f"refresh it with `safin regression --update`")
        return 2
    if methods:
        unknown = sorted(set(methods) - set(reference["training"]))
        if unknown:
            progress(f"isa-check: {', '.join(unknown)} not in {ref_path} (it has {', '.join(sorted(reference['training']))})")
            return 2
        reference = {**reference, "training": {m: v for m, v in reference["training"].items() if m in methods},
                     "per_pair": {m: v for m, v in reference["per_pair"].items() if m in methods}}
    tolerances = r.get("tolerances", {})
    results, code = {}, 0
    for setting in settings:
        with tempfile.TemporaryDirectory(prefix=f"isa-{setting}-") as tmp:
            run_setting(setting, Path(tmp), pairs, params_path, methods=methods)
            res = compare_setting(reference, Path(tmp), tolerances)
        bad = failed(res["rows"])
        code = code or (1 if bad else 0)
        progress(f"\n== {setting}: {res['cpu']}\n{table(res['rows'])}\n{len(res['rows'])} checks, {len(bad)} failing; "
                 f"largest relative deviation from the reference: training losses {res['max_rel_dev_training']:.2e}, "
                 f"metrics of {pairs} pairs {res['max_rel_dev_metrics']:.2e}")
        results[setting] = {"cpu": res["cpu"], "failing": len(bad), "max_rel_dev_training": res["max_rel_dev_training"],
                            "max_rel_dev_metrics": res["max_rel_dev_metrics"]}
    doc = {"reference": str(ref_path), "reference_cpu": reference.get("provenance", {}).get("cpu"), "pairs": pairs,
           "methods": sorted(reference["training"]), "settings": results}
    if out_path:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_text(json.dumps(doc, indent=2) + "\n")
    progress("\n" + "\n".join(f"{s}: {v['failing']} failing, training {v['max_rel_dev_training']:.1e}, "
                              f"metrics {v['max_rel_dev_metrics']:.1e}  ({v['cpu']})" for s, v in results.items()))
    return code


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.isa_check")
    ap.add_argument("--worker", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--methods", default="")
    a = ap.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    _worker(a.params, a.worker, Path(a.out), a.pairs, [m for m in a.methods.split(",") if m] or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
