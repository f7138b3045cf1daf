"""Speed and memory: ``safin bench`` and stage ``benchmark``.

Inference per method and size, each (method, size, path) in a **fresh process** so peak memory is
honest: median wall time of ``runs`` runs after ``warmup``, peak memory (CPU max RSS, or CUDA max
allocated), device, threads, dtype. Next to our path, the **naive path** that does what the reference
implementations do — the full (HW)² softmax attention map, WCT with float64 ``torch.svd`` on the CPU —
so speed-ups are ratios measured on one machine. The fast path uses the model's compute settings
(``precision`` auto: bf16 convolutions where the CPU/GPU runs bf16 natively; channels_last); the naive
path is float32 NCHW. After the timed runs, one extra untimed run splits the time into encoder (VGG
layers), decoder layers and the rest (the feature transform: statistics, attention, WCT, skips).
A size that fails is reported with the reason (out of memory, time limit). Training throughput
(images/s) per method at a given batch and crop. Weights are random (speed does not depend on them);
content and style are both at the given size.

:func:`wct_transform` times the whitening–colouring transform alone (float64 ``torch.svd``, as
PytorchWCT, vs our float32 ``eigh``) on the relu1_1..relu5_1 features of a real content/style pair.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

@contextlib.contextmanager
def part_times(model, device):
    """Wall time spent in the leaf layers of ``model.encoder`` and of ``model.decoder(s)``, measured
    with forward hooks (synchronising CUDA at each layer, so use it for one untimed breakdown run)."""
    import torch

    parts = {"encoder": 0.0, "decoder": 0.0}
    handles, start = [], {}

    def sync():
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    def pre(mod, inp):
        sync()
        start[id(mod)] = time.perf_counter()

    def post(name):
        def hook(mod, inp, out):
            sync()
            parts[name] += time.perf_counter() - start.pop(id(mod))
        return hook

    for part, attr in (("encoder", "encoder"), ("decoder", "decoder"), ("decoder", "decoders")):
        root = getattr(model, attr, None)
        if root is None:
            continue
        for mod in root.modules():
            if not list(mod.children()):
                handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post(part))]
    try:
        yield parts
    finally:
        for h in handles:
            h.remove()


#: Dense peak throughput in TFLOP/s from the vendors' datasheets (no sparsity), by device-name substring:
#: (bf16 tensor cores, tf32 tensor cores, fp32 without tensor cores). The first match wins.
PEAK_TFLOPS = (
    ("H200", 989.4, 494.7, 66.9),        # H200 SXM
    ("H100 PCIe", 756.0, 378.0, 51.2),
    ("H100 NVL", 835.0, 417.5, 60.0),
    ("H100", 989.4, 494.7, 66.9),        # H100 SXM
    ("A100", 312.0, 156.0, 19.5),
    ("L40S", 362.1, 183.0, 91.6),
    ("RTX 4090", 165.2, 82.6, 82.6),
)

#: The paper's recipe: iterations x batch (SAFIN/AdaIN train.py)
PAPER_ITERATIONS, PAPER_BATCH = 160_000, 8


def train_flops(method: str, batch: int, size: int) -> float:
    """FLOPs of one training step (loss forward + backward; the optimizer's few element-wise FLOPs are
    not counted) of ``method`` at ``batch`` × ``size``², counted by :class:`torch.utils.flop_counter.
    FlopCounterMode` on the meta device: the same ``losses`` code, shapes only, no arithmetic. The frozen
    encoder's backward counts only the input gradients it really computes."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import baselines

    with torch.device("meta"):
        model = baselines.build(method, encoder_weights="random").train()
        content, style = torch.rand(batch, 3, size, size), torch.rand(batch, 3, size, size)
    counter = FlopCounterMode(display=False)
    with counter:
        model.losses(content, style)["total"].backward()
    return float(counter.get_total_flops())


def peak_tflops(device_name: str, dtype: str, tf32: bool = False) -> float | None:
    """The device's dense datasheet peak for ``dtype`` (``bfloat16`` or ``float32``; ``tf32``: float32
    convolutions run on the tensor cores, PyTorch's default for cuDNN), when known."""
    for key, bf16, tf32_peak, fp32 in PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return bf16 if dtype == "bfloat16" else tf32_peak if tf32 else fp32
    return None


def compute_rates(method: str, batch: int, size: int, seconds_per_step: float, device, dtype: str) -> dict:
    """Training FLOPs per image, the achieved rate, the fraction of the device's peak (GPUs in
    :data:`PEAK_TFLOPS`), and the hours the paper's 160k iterations × 8 images would take at this rate."""
    import torch

    flops = train_flops(method, batch, size)
    out = {"train_gflop_per_image": flops / batch / 1e9, "achieved_tflops": flops / seconds_per_step / 1e12,
           "paper_recipe_hours": PAPER_ITERATIONS * PAPER_BATCH * seconds_per_step / batch / 3600}
    if torch.device(device).type == "cuda":
        name = torch.cuda.get_device_name(torch.device(device))
        tf32 = dtype == "float32" and torch.backends.cudnn.allow_tf32  # the convolutions dominate
        peak = peak_tflops(name, dtype, tf32)
        if peak:
            out.update(peak_tflops=peak, peak_kind="tf32" if tf32 else dtype,
                       fraction_of_peak=out["achieved_tflops"] / peak)
    return out


def loader_throughput(content_dir: str, style_dir: str, *, crop: int, batch: int, workers: int,
                      batches: int = 50, seed: int = 777) -> dict:
    """Content/style pairs per second that the trainer's data loader (:func:`safin.training.
    training_loader`: decode, random crop, collate) delivers with ``workers`` processes, nothing else
    running: what it can feed a GPU. The first batch (worker start-up) is not timed."""
    from safin.training import PairStream, PositionSampler, list_training_images, training_loader

    stream = PairStream(list_training_images(content_dir), list_training_images(style_dir), crop, seed)
    loader = training_loader(stream, PositionSampler(0, batches + 1, batch), batch, workers, pin_memory=False)
    it = iter(loader)
    next(it)
    t = time.perf_counter()
    n = sum(len(c) for c, _ in it)
    seconds = time.perf_counter() - t
    return {"crop": crop, "batch": batch, "workers": workers, "pairs": n, "seconds": seconds,
            "pairs_per_s": n / seconds}


def run_one(method: str, size: int, path: str, *, mode: str = "infer", runs: int = 5, warmup: int = 1,
            batch: int = 8, device: str = "auto", timeout: float = 600.0, precision: str = "auto",
            breakdown: bool = True, compile: bool = False) -> dict:
    """One measurement in a fresh Python process; failures come back with their reason. ``compile``
    (training mode): the loss step through ``torch.compile``."""
    args = {"method": method, "size": size, "path": path, "mode": mode, "runs": runs, "warmup": warmup,
            "batch": batch, "device": device, "precision": precision, "breakdown": breakdown and path == "fast",
            "compile": compile}
    base = {"method": method, "size": size, "path": path, "mode": mode}
    try:
        proc = subprocess.run([sys.executable, "-m", "evaluation.speed_worker", json.dumps(args)], capture_output=True, text=True,
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
              progress=print, warmup_override: int | None = None, precision: str = "auto",
              wct_size: int | None = None, train_warmup: int = 1, compile: bool = False) -> dict:
    warmup = warmup if warmup_override is None else warmup_override
    results = []
    for method in methods:
        for size in sizes:
            for path in (["fast", "naive"] if naive else ["fast"]):
                r = run_one(method, size, path, runs=runs, warmup=warmup, device=device, timeout=timeout,
                            precision=precision)
                results.append(r)
                progress(_line(r))
        if train_runs:
            r = run_one(method, train_size, "fast", mode="train", runs=train_runs, warmup=train_warmup,
                        batch=train_batch, device=device, timeout=timeout, precision=precision, compile=compile)
            results.append(r)
            progress(_line(r))
    import torch

    from safin.runtime.cpu_isa import describe

    doc = {"machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                       "cpu": describe(),
                       "cpus": os.cpu_count(), "torch": torch.__version__,
                       "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
           "settings": {"runs": runs, "warmup": warmup, "train_batch": train_batch, "train_size": train_size,
                        "train_warmup": train_warmup, "precision": precision, "compile": compile},
           "results": results, "ratios": ratios(results)}
    if wct_size:
        doc["wct_transform"] = wct_transform(wct_size, runs=runs, device=device)
        progress(_wct_line(doc["wct_transform"]))
    return doc


def wct_transform(size: int = 512, *, runs: int = 5, device: str = "auto",
                  content: str = "data/sample/content/chelsea.jpg",
                  style: str = "data/sample/style/VincentVanGoghBridge.jpg") -> dict:
    """The whitening–colouring transform alone, on the relu1_1..relu5_1 features of a real pair at
    ``size`` px (normalised VGG-19, one encoder pass per image): PytorchWCT's float64 ``torch.svd``
    on the CPU, given NCHW features as its encoder produces them, vs our path given the features in
    the layout our WCT model's encoder produces them (channels-last where ``channels_last`` resolves
    on, see :mod:`safin.runtime.precision`), and ours given NCHW features too. Median of ``runs`` over the
    five levels, and the largest relative error max|ours - naive| / max|naive| over the levels."""
    import torch

    from safin.blocks.encoder import TAPS_1_TO_5 as TAPS5
    from safin.blocks.encoder import VGG19Encoder
    from safin.io.weights import load_encoder_weights
    from safin.io.images import open_rgb, pil_to_tensor
    from safin.runtime.cpu_memory import allocator
    from safin.methods import resolve_device
    from safin.blocks.wct import whiten_colour
    from safin.runtime.precision import resolve_channels_last

    dev = resolve_device(device)
    root = Path(__file__).resolve().parents[1]
    enc = load_encoder_weights(VGG19Encoder(last="relu5_1"), "normalised").to(dev).eval()
    nhwc = resolve_channels_last("auto", dev)

    def load(p):
        img = open_rgb(root / p).resize((size, size))
        return pil_to_tensor(img)[None].to(dev)

    with torch.inference_mode():
        cf, sf = enc(load(content), TAPS5), enc(load(style), TAPS5)
        cf = {k: v.contiguous() for k, v in cf.items()}
        sf = {k: v.contiguous() for k, v in sf.items()}
        layout = torch.channels_last if nhwc else torch.contiguous_format
        cf_ours = {k: v.contiguous(memory_format=layout) for k, v in cf.items()}
        sf_ours = {k: v.contiguous(memory_format=layout) for k, v in sf.items()}

        def run(c, s, naive: bool) -> tuple[float, list[torch.Tensor]]:
            times, outs = [], []
            for i in range(runs + 1):
                t = time.perf_counter()
                outs = [whiten_colour(c[k][0], s[k][0], content_identity=True, naive=naive) for k in TAPS5]
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                if i:  # the first run is the warm-up
                    times.append(time.perf_counter() - t)
            return statistics.median(times), outs

        naive_s, naive_out = run(cf, sf, True)
        fast_s, fast_out = run(cf_ours, sf_ours, False)
        nchw_s, nchw_out = run(cf, sf, False)

    def rel(outs):
        return {k: float((f.double() - n.double()).abs().max() / n.double().abs().max())
                for k, f, n in zip(TAPS5, outs, naive_out)}

    errors = rel(fast_out)
    return {"size": size, "device": str(dev), "threads": torch.get_num_threads(), "runs": runs,
            "naive_s": naive_s, "fast_s": fast_s, "speedup": naive_s / fast_s,
            "fast_nchw_s": nchw_s, "speedup_nchw": naive_s / nchw_s,
            "max_relative_error": max(errors.values()), "relative_error_per_level": errors,
            "max_relative_error_nchw": max(rel(nchw_out).values()),
            "allocator": allocator(),
            "naive": "float64 torch.svd on the CPU (PytorchWCT), NCHW features",
            "fast": f"float32 eigh on the device, {'channels-last' if nhwc else 'NCHW'} features"}


def _wct_line(w: dict) -> str:
    line = (f"WCT transform alone, relu1_1..relu5_1 at {w['size']}px: naive {w['naive_s']:.3f} s, ours "
            f"{w['fast_s']:.3f} s ({w['speedup']:.1f}x), max relative difference {w['max_relative_error']:.1e}")
    if "fast_nchw_s" in w:
        line += f"; ours on NCHW features {w['fast_nchw_s']:.3f} s ({w['speedup_nchw']:.1f}x)"
    if "allocator" in w:
        line += f"; both with allocator: {w['allocator']}"
    return line


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
    if "achieved_tflops" in r:
        extra += (f"  {r['train_gflop_per_image']:.0f} GFLOP/img, {r['achieved_tflops']:.2f} TFLOP/s"
                  + (f" = {100 * r['fraction_of_peak']:.0f} % of peak" if "fraction_of_peak" in r else "")
                  + f", paper recipe {r['paper_recipe_hours']:.1f} h")
    if "dtype" in r:
        extra += f"  {r['dtype']}{' NHWC' if r.get('channels_last') else ''}"
    if r.get("parts_s"):
        extra += "  (" + ", ".join(f"{k} {v:.2f} s" for k, v in r["parts_s"].items()) + ")"
    return f"{what}  {r['median_s']:8.3f} s  peak {r['peak_mib']:8.0f} MiB{extra}"


def table(doc: dict) -> str:
    lines = [_line(r) for r in doc["results"]]
    if doc.get("wct_transform"):
        lines.append(_wct_line(doc["wct_transform"]))
    for r in doc.get("loader", []):
        lines.append(f"data loader, crop {r['crop']}, batch {r['batch']}, {r['workers']} worker(s): "
                     f"{r['pairs_per_s']:.0f} content/style pairs/s")
    return "\n".join(lines)


def write(doc: dict, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return out
