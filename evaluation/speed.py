"""Speed and memory: ``safin bench`` and stage ``benchmark``.

Inference per method and size, each (method, size, path) in a **fresh process** so peak memory is
honest: median wall time of ``runs`` runs after ``warmup``, peak memory (CPU max RSS, or CUDA max
allocated), device, threads, dtype. Next to our path, the **naive path** that does what the reference
implementations do — the full (HW)² softmax attention map, WCT with float64 ``torch.svd`` on the CPU —
so speed-ups are ratios measured on one machine. A size that fails is reported with the reason
(out of memory, time limit). Training throughput (images/s) per method at a given batch and crop.
Weights are random (speed does not depend on them); content and style are both at the given size.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

WORKER = r"""
import json, resource, statistics, sys, time
import torch
args = json.loads(sys.argv[1])
torch.manual_seed(0)
import baselines
from safin.methods import resolve_device
device = resolve_device(args["device"])
kw = {"encoder_weights": "random"}
m = baselines.build(args["method"], **kw)
naive = args["path"] == "naive"
for mod in m.modules():
    if hasattr(mod, "memory_efficient"):
        mod.memory_efficient = not naive
if hasattr(m, "naive"):
    m.naive = naive
m = m.to(device).eval()
out = {"method": args["method"], "size": args["size"], "path": args["path"], "device": str(device),
       "threads": torch.get_num_threads(), "dtype": "float32"}
if args["mode"] == "train":
    m.train()
    opt = torch.optim.Adam(m.trainable(), lr=1e-4)
    b, s = args["batch"], args["size"]
    c, st = torch.rand(b, 3, s, s, device=device), torch.rand(b, 3, s, s, device=device)
    times = []
    for i in range(args["warmup"] + args["runs"]):
        t = time.perf_counter()
        loss = m.losses(c, st)["total"]
        opt.zero_grad(); loss.backward(); opt.step()
        if device.type == "cuda": torch.cuda.synchronize()
        if i >= args["warmup"]: times.append(time.perf_counter() - t)
    out["median_s"] = statistics.median(times)
    out["images_per_s"] = b / out["median_s"]
else:
    s = args["size"]
    c, st = torch.rand(1, 3, s, s, device=device), torch.rand(1, 3, s, s, device=device)
    times = []
    with torch.inference_mode():
        for i in range(args["warmup"] + args["runs"]):
            t = time.perf_counter()
            m(c, st)
            if device.type == "cuda": torch.cuda.synchronize()
            if i >= args["warmup"]: times.append(time.perf_counter() - t)
    out["median_s"] = statistics.median(times)
out["peak_mib"] = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
                   else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print("RESULT " + json.dumps(out))
"""


def run_one(method: str, size: int, path: str, *, mode: str = "infer", runs: int = 5, warmup: int = 1,
            batch: int = 8, device: str = "auto", timeout: float = 600.0) -> dict:
    """One measurement in a fresh Python process; failures come back with their reason."""
    args = {"method": method, "size": size, "path": path, "mode": mode, "runs": runs, "warmup": warmup,
            "batch": batch, "device": device}
    base = {"method": method, "size": size, "path": path, "mode": mode}
    try:
        proc = subprocess.run([sys.executable, "-c", WORKER, json.dumps(args)], capture_output=True, text=True,
                              timeout=timeout, cwd=Path(__file__).resolve().parents[1])
    except subprocess.TimeoutExpired:
        return {**base, "error": f"time limit {timeout:.0f} s exceeded"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**json.loads(line[7:]), "mode": mode}
    err = proc.stderr.strip().splitlines()
    reason = "out of memory" if proc.returncode in (-9, 137) or "out of memory" in proc.stderr.lower() else (
        err[-1] if err else f"exit code {proc.returncode}")
    return {**base, "error": reason}


def benchmark(methods: list[str], sizes: list[int], *, runs: int, warmup: int, train_batch: int, train_size: int,
              train_runs: int, device: str = "auto", timeout: float = 600.0, naive: bool = True,
              progress=print, warmup_override: int | None = None) -> dict:
    warmup = warmup if warmup_override is None else warmup_override
    results = []
    for method in methods:
        for size in sizes:
            for path in (["fast", "naive"] if naive else ["fast"]):
                r = run_one(method, size, path, runs=runs, warmup=warmup, device=device, timeout=timeout)
                results.append(r)
                progress(_line(r))
        if train_runs:
            r = run_one(method, train_size, "fast", mode="train", runs=train_runs, warmup=1, batch=train_batch,
                        device=device, timeout=timeout)
            results.append(r)
            progress(_line(r))
    import torch

    return {"machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpus": os.cpu_count(), "torch": torch.__version__,
                        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
            "settings": {"runs": runs, "warmup": warmup, "train_batch": train_batch, "train_size": train_size},
            "results": results, "ratios": ratios(results)}


def ratios(results: list[dict]) -> dict:
    """naive time / fast time per method and size (> 1: ours is faster)."""
    out: dict = {}
    fast = {(r["method"], r["size"]): r for r in results if r.get("path") == "fast" and r.get("mode") == "infer"}
    for r in results:
        if r.get("path") == "naive" and r.get("mode") == "infer":
            f = fast.get((r["method"], r["size"]))
            if f and "median_s" in f and "median_s" in r:
                out.setdefault(r["method"], {})[str(r["size"])] = round(r["median_s"] / f["median_s"], 3)
    return out


def _line(r: dict) -> str:
    what = f"{r['method']:<12} {r['mode']:<5} {r['size']:>5}px {r['path']:<5}"
    if "error" in r:
        return f"{what}  FAILED: {r['error']}"
    extra = f"  {r['images_per_s']:.2f} img/s" if "images_per_s" in r else ""
    return f"{what}  {r['median_s']:8.3f} s  peak {r['peak_mib']:8.0f} MiB{extra}"


def table(doc: dict) -> str:
    return "\n".join(_line(r) for r in doc["results"])


def write(doc: dict, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return out
