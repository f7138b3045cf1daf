"""One speed measurement, run by :func:`evaluation.speed.run_one` in a fresh process so that peak
memory is this measurement's alone: ``python -m evaluation.speed_worker '<json args>'`` prints one line
``RESULT {json}``. The arguments and the result keys are those of :func:`evaluation.speed.run_one`."""
from __future__ import annotations

import json
import resource
import statistics
import sys
import time

import torch


def build_model(args: dict):
    """The method with random weights (speed does not depend on them), on the fast or the naive path."""
    import baselines
    from safin.methods import resolve_device

    device = resolve_device(args["device"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the trainer outside deterministic mode
    m = baselines.build(args["method"], encoder_weights="random")
    naive = args["path"] == "naive"
    for mod in m.modules():
        if hasattr(mod, "memory_efficient"):
            mod.memory_efficient = not naive
    if hasattr(m, "naive"):
        m.naive = naive
    m = m.to(device).eval()
    if not naive:
        m.set_compute(args["precision"])
    return m, device


def time_training(m, device, args: dict, out: dict) -> None:
    """Seconds per optimisation step at ``args["batch"]`` x ``args["size"]``², and the rates."""
    from evaluation.speed import compute_rates
    from safin.runtime.precision import autocast

    m.train()
    opt = torch.optim.Adam(m.trainable(), lr=1e-4, fused=device.type == "cuda" or None)  # as the trainer
    b, s = args["batch"], args["size"]
    c, st = torch.rand(b, 3, s, s, device=device), torch.rand(b, 3, s, s, device=device)
    c, st = m._layout(c), m._layout(st)
    losses = torch.compile(m.losses) if args.get("compile") else m.losses
    out["compiled"] = bool(args.get("compile"))

    def step():
        with autocast(device, m.compute_dtype):
            loss = losses(c, st)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if device.type == "cuda":  # steps queue on the device as in the trainer: time them together
        for _ in range(args["warmup"]):
            step()
        torch.cuda.synchronize()
        out["warmup_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        for _ in range(args["runs"]):
            step()
        torch.cuda.synchronize()
        out["median_s"] = (time.perf_counter() - t) / args["runs"]
        out["timing"] = f"mean of {args['runs']} consecutive steps"
    else:
        times = []
        for i in range(args["warmup"] + args["runs"]):
            t = time.perf_counter()
            step()
            if i >= args["warmup"]:
                times.append(time.perf_counter() - t)
        out["median_s"] = statistics.median(times)
        out["timing"] = f"median of {args['runs']} steps"
    out["images_per_s"] = b / out["median_s"]
    out.update(compute_rates(args["method"], b, s, out["median_s"], device, out["dtype"]))


def time_inference(m, device, args: dict, out: dict) -> None:
    """Median seconds per stylization of one ``size``² pair; then, untimed, the split into parts."""
    from evaluation.speed import part_times

    s = args["size"]
    c, st = torch.rand(1, 3, s, s, device=device), torch.rand(1, 3, s, s, device=device)
    times = []
    with torch.inference_mode():
        for i in range(args["warmup"] + args["runs"]):
            if i == args["warmup"] and device.type == "cuda":  # the timed runs' peak: cudnn's autotuning
                out["warmup_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20  # tries big workspaces
                torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            m(c, st)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= args["warmup"]:
                times.append(time.perf_counter() - t)
    out["median_s"] = statistics.median(times)
    if args.get("breakdown"):
        with torch.inference_mode(), part_times(m, device) as parts:
            t = time.perf_counter()
            m(c, st)
            total = time.perf_counter() - t
        out["parts_s"] = {**parts, "transform and rest": max(total - sum(parts.values()), 0.0)}


def measure(args: dict) -> dict:
    from safin.runtime.cpu_memory import allocator, keep_freed_memory

    if args["path"] == "fast":  # the reference implementations run with the C library's defaults
        keep_freed_memory()
    torch.manual_seed(0)
    m, device = build_model(args)
    out = {"method": args["method"], "size": args["size"], "path": args["path"], "device": str(device),
           "threads": torch.get_num_threads(), "dtype": str(m.compute_dtype).removeprefix("torch."),
           "channels_last": m.channels_last, "allocator": allocator()}
    if args["mode"] == "train":
        time_training(m, device, args, out)
    else:
        time_inference(m, device, args, out)
    out["peak_mib"] = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
                       else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


if __name__ == "__main__":
    print("RESULT " + json.dumps(measure(json.loads(sys.argv[1]))))
