"""The one trainer every method uses: resumable, deterministic, GPU- and multi-GPU-ready.

- Recipe (reference code defaults, methods.md): Adam, lr 1e-4 with inverse decay lr/(1 + 5e-5·i),
  batch 8 (SANet: 5), 160k iterations, random 256 crops of images resized to 512, seed 777.
- Data order is a pure function of (seed, sample position): epoch e of a stream is a permutation
  drawn from a generator seeded with (seed, stream, e), each crop offset from (seed, stream,
  position). So resuming needs only the iteration number, and data parallelism splits every global
  batch across ranks without changing what the whole batch contains.
- Checkpoints every ``checkpoint_every`` iterations, written atomically (temp file + rename): trained
  weights, optimizer, scheduler, RNG states, iteration / sampler position, and a hash of the config.
  On start the newest valid checkpoint of the same config is resumed; a truncated or corrupt one is
  reported and the previous one used. In deterministic mode a run killed at any point and restarted
  gives the same loss trajectory as an uninterrupted run.
- Device ``auto``: CUDA when present, else CPU. ``precision="auto"``: bf16 autocast wherever the device
  runs bf16 natively (CUDA; CPUs with AVX512-BF16/AMX), with the statistics, attention and losses kept
  in float32 (:mod:`safin.precision`); channels_last on CUDA and CPU; fused Adam on CUDA.
  ``torch.compile`` optional. Multi-GPU / multi-process: launch with ``torchrun --nproc_per_node N``
  (DistributedDataParallel; gloo on CPU, nccl on CUDA); the global batch stays ``batch_size``.
- Losses go to dvclive (``Live(dvcyaml=None)``, the files are declared in ``dvc.yaml``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import signal
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from . import cpu_isa
from .cpu_isa import portable_init
from .imageio import ImageReadError, is_image_name, open_rgb, pil_to_tensor
from .precision import autocast, resolve_channels_last, resolve_precision
from .methods import METHODS, StyleTransfer, resolve_device, save_weights, trained_state

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    method: str
    content_dir: str
    style_dir: str
    out_dir: str
    max_iter: int = 160_000               # reference train.py
    batch_size: int = 8                   # reference (SANet: 5)
    lr: float = 1e-4                      # reference
    lr_decay: float = 5e-5                # lr / (1 + lr_decay * i), "imitating the original implementation"
    crop: int = 256                       # RandomCrop(256) after Resize((512, 512)) (done by fetch_data)
    seed: int = 777                       # reference prepare_seed(777)
    deterministic: bool = True
    device: str = "auto"
    precision: str = "auto"               # auto | bf16 | fp32 (safin.precision)
    channels_last: bool | str = "auto"    # auto = on for CUDA and CPU
    compile: bool = False
    num_workers: int | str = 2          # decoding processes; "auto" = one per spare CPU core, at most 8
    checkpoint_every: int = 10_000        # reference save_model_interval
    keep_checkpoints: int = 3
    encoder_weights: str = "normalised"
    method_kwargs: dict = field(default_factory=dict)  # loss weights etc., per method
    progress: bool = True
    live: bool = True                     # log losses with dvclive (off: throughput runs without dvclive)

    def fingerprint(self) -> str:
        """What must match for a checkpoint to be resumed: the recipe (not out_dir, max_iter, workers,
        ...) and the model/trainer code, so a checkpoint of changed code is never resumed."""
        keys = ("method", "batch_size", "lr", "lr_decay", "crop", "seed", "encoder_weights", "method_kwargs")
        blob = json.dumps({k: getattr(self, k) for k in keys}, sort_keys=True, default=str)
        return hashlib.sha256((blob + code_hash()).encode()).hexdigest()[:16]


def code_hash() -> str:
    """sha256 over the sources of the ``safin`` and ``baselines`` packages."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for pkg in (root, root.parent / "baselines"):
        for f in sorted(pkg.glob("*.py")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# Data: a pure function of the sample position


def _generator(*parts: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:15], 16))
    return g


def list_training_images(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: training image folder does not exist (run `safin fetch-data`)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_name(p))
    if not files:
        raise FileNotFoundError(f"{folder}: no training images")
    return files


class PairStream(Dataset):
    """Item ``p`` = (content crop, style crop) of global sample position ``p``; deterministic."""

    def __init__(self, content: Sequence[Path], style: Sequence[Path], crop: int, seed: int):
        self.content, self.style, self.crop, self.seed = list(content), list(style), crop, seed
        self._perm_cache: dict[tuple[int, int], torch.Tensor] = {}
        self.unreadable: set[Path] = set()

    def __len__(self) -> int:  # positions are unbounded; DataLoader needs a number
        return 2 ** 62

    def _index(self, stream: int, n: int, p: int) -> int:
        epoch, pos = divmod(p, n)
        key = (stream, epoch)
        if key not in self._perm_cache:
            if len(self._perm_cache) > 8:
                self._perm_cache.clear()
            self._perm_cache[key] = torch.randperm(n, generator=_generator(self.seed, stream, epoch))
        return int(self._perm_cache[key][pos])

    def _load(self, files: Sequence[Path], stream: int, p: int) -> torch.Tensor:
        for attempt in range(len(files)):
            path = files[self._index(stream, len(files), p + attempt)]
            try:
                img = pil_to_tensor(open_rgb(path))
                break
            except ImageReadError as e:  # reported once, then the next image of the stream
                if path not in self.unreadable:
                    self.unreadable.add(path)
                    log.warning("skipping unreadable training image: %s", e)
        else:
            raise RuntimeError(f"no readable image among {len(files)} training images")
        _, h, w = img.shape
        if h < self.crop or w < self.crop:  # upscale small images so a crop fits (shorter side = crop)
            scale = self.crop / min(h, w)
            img = torch.nn.functional.interpolate(img[None], size=(max(self.crop, round(h * scale)),
                                                  max(self.crop, round(w * scale))), mode="bilinear",
                                                  align_corners=False)[0]
            _, h, w = img.shape
        g = _generator(self.seed, stream, p, 7)
        top = int(torch.randint(0, h - self.crop + 1, (1,), generator=g))
        left = int(torch.randint(0, w - self.crop + 1, (1,), generator=g))
        return img[:, top:top + self.crop, left:left + self.crop].contiguous()

    def __getitem__(self, p: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._load(self.content, 0, p), self._load(self.style, 1, p)


class PositionSampler(Sampler[int]):
    """Yields the sample positions of this rank: global batch i holds positions i·B .. i·B + B − 1;
    rank r of W takes every W-th of them (B must be divisible by W)."""

    def __init__(self, start_iter: int, max_iter: int, batch_size: int, rank: int = 0, world: int = 1):
        if batch_size % world:
            raise ValueError(f"batch_size {batch_size} is not divisible by the {world} processes")
        self.start, self.stop, self.batch, self.rank, self.world = start_iter, max_iter, batch_size, rank, world

    def __iter__(self) -> Iterator[int]:
        for i in range(self.start, self.stop):
            yield from range(i * self.batch + self.rank, (i + 1) * self.batch, self.world)

    def __len__(self) -> int:
        return (self.stop - self.start) * self.batch // self.world


def resolve_workers(workers: int | str) -> int:
    """``"auto"``: one decoding process per CPU core beyond the training process's own, at most 8 (one
    process decodes about 220 content/style pairs/s of 512 px JPEGs with 256 px crops on this project's
    CPU; the paper recipe in one hour needs 356/s). The data order never depends on it."""
    if workers == "auto":
        return max(0, min(8, (os.cpu_count() or 1) - 1))
    if isinstance(workers, bool) or not isinstance(workers, (int, float)) or int(workers) != workers or workers < 0:
        raise ValueError(f"train.num_workers must be 'auto' or a whole number >= 0, not {workers!r}")
    return int(workers)


def training_loader(stream: PairStream, sampler: Sampler[int], batch: int, workers: int | str,
                    pin_memory: bool) -> DataLoader:
    """The trainer's loader: ``workers`` decoding processes, each keeping 4 batches ready."""
    workers = resolve_workers(workers)
    return DataLoader(stream, batch_size=batch, sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                      persistent_workers=False, drop_last=False, prefetch_factor=4 if workers else None)


# --------------------------------------------------------------------------------------------------
# Checkpoints


def checkpoint_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.out_dir) / "checkpoints"


def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def find_resumable(cfg: TrainConfig) -> tuple[dict | None, list[str]]:
    """The newest loadable checkpoint of this config, and the problems met on the way."""
    problems = []
    for path in sorted(checkpoint_dir(cfg).glob("ckpt_*.pt"), reverse=True):
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)  # our own file: RNG states
        except Exception as e:
            problems.append(f"{path}: corrupt or truncated ({type(e).__name__}); using an older checkpoint")
            continue
        if ckpt.get("fingerprint") != cfg.fingerprint():
            problems.append(f"{path}: written with a different configuration; not resumed")
            continue
        if ckpt.get("iteration", 0) > cfg.max_iter:
            problems.append(f"{path}: iteration {ckpt['iteration']} is past max_iter {cfg.max_iter}; not resumed")
            continue
        return ckpt, problems
    return None, problems


def _prune(cfg: TrainConfig) -> None:
    ckpts = sorted(checkpoint_dir(cfg).glob("ckpt_*.pt"))
    for old in ckpts[: max(0, len(ckpts) - cfg.keep_checkpoints)]:
        old.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# The loop


class _LossModule(nn.Module):
    """``forward`` = the method's losses, so DistributedDataParallel can hook the gradients."""

    def __init__(self, model: StyleTransfer):
        super().__init__()
        self.model = model

    def forward(self, content, style):
        return self.model.losses(content, style)


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def _truncate_live_logs(live_dir: Path, step: int) -> None:
    """Drop logged rows at or after ``step`` (written by a run killed after its last checkpoint)."""
    for tsv in (live_dir / "plots" / "metrics").rglob("*.tsv"):
        lines = tsv.read_text().splitlines()
        if not lines:
            continue
        header, rows = lines[0], lines[1:]
        col = header.split("\t").index("step")
        kept = [r for r in rows if int(r.split("\t")[col]) < step]
        tsv.write_text("\n".join([header, *kept]) + "\n")


class Interrupted(Exception):
    pass


def train(cfg: TrainConfig) -> dict:
    """Train ``cfg.method``; returns a summary (iterations, images/s, final losses, weights path)."""
    rank, world, local_rank = _dist_info()
    device = resolve_device(cfg.device)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    else:
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)

    if cfg.method not in METHODS:  # safin does not import the baselines: the caller registers them
        raise KeyError(f"method {cfg.method!r} is not registered ({sorted(METHODS)}); `import baselines` first")
    with portable_init():  # the same initial weights under every instruction set (safin.cpu_isa)
        model = METHODS[cfg.method](encoder_weights=cfg.encoder_weights, **cfg.method_kwargs)
    model = model.to(device).train()
    cuda = device.type == "cuda"
    compute_dtype = resolve_precision(cfg.precision, device)
    channels_last = resolve_channels_last(cfg.channels_last, device, compute_dtype)
    if compute_dtype == torch.float64:  # fp64 (the ci profile): weights, batches and losses in float64
        model = model.to(torch.float64)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = list(model.trainable())
    opt = torch.optim.Adam(params, lr=cfg.lr, fused=cuda or None)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 / (1.0 + cfg.lr_decay * i))

    start = 0
    last_from_ckpt: dict[str, float] = {}
    ckpt, problems = find_resumable(cfg)
    for p in problems:
        log.warning(p)
    if ckpt is not None:
        missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
        assert not unexpected and all(k.startswith("encoder.") for k in missing), (missing, unexpected)
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        _set_rng_state(ckpt["rng"])
        start = ckpt["iteration"]
        last_from_ckpt = ckpt.get("last_losses", {})
        if rank == 0:
            log.info("resuming %s from iteration %d (%s)", cfg.method, start, ckpt["path"])

    loss_module: nn.Module = _LossModule(model)
    if world > 1:
        loss_module = nn.parallel.DistributedDataParallel(loss_module, device_ids=[device.index] if cuda else None)
    if cfg.compile:
        loss_module = torch.compile(loss_module)

    stream = PairStream(list_training_images(cfg.content_dir), list_training_images(cfg.style_dir), cfg.crop, cfg.seed)
    sampler = PositionSampler(start, cfg.max_iter, cfg.batch_size, rank, world)
    loader = training_loader(stream, sampler, cfg.batch_size // world, cfg.num_workers, pin_memory=cuda)

    out = Path(cfg.out_dir)
    live = None
    if rank == 0 and cfg.live:
        from dvclive import Live

        live_dir = out / "live"
        if start > 0:
            _truncate_live_logs(live_dir, start)
        live = Live(str(live_dir), dvcyaml=None, save_dvc_exp=False, resume=start > 0, report=None)
        live.step = start

    pending = None  # (iteration, loss names, loss values on the device, lr) not yet logged

    def record() -> None:
        """Log the pending iteration's losses. dvclive's ``next_step`` is not used: it re-reads every
        logged row on each call (quadratic in the iterations; README, Training); rows are appended with
        an explicit step and the summary is written at checkpoints and at the end."""
        nonlocal pending, last
        if pending is None:
            return
        step, names, values, lr = pending
        pending = None
        last = dict(zip(names, values.tolist()))
        bar.set_postfix(loss=f"{last['total']:.4g}")
        if live is not None:
            live.step = step
            for k, v in last.items():
                live.log_metric(f"loss/{k}", v, plot=True)
            live.log_metric("lr", lr, plot=True)

    def save_checkpoint(iteration: int) -> None:
        record()
        if live is not None:
            live.step = iteration
            live.make_summary()
        if rank != 0:
            return
        path = checkpoint_dir(cfg) / f"ckpt_{iteration:09d}.pt"
        _atomic_save({"model": trained_state(model), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                      "rng": _rng_state(), "iteration": iteration, "sampler_position": iteration * cfg.batch_size,
                      "fingerprint": cfg.fingerprint(), "config": dataclasses.asdict(cfg), "path": str(path),
                      "last_losses": last}, path)
        _prune(cfg)

    from tqdm import tqdm

    bar = tqdm(total=cfg.max_iter, initial=start, desc=f"train {cfg.method}", unit="it", dynamic_ncols=True,
               disable=not (cfg.progress and rank == 0))
    last: dict[str, float] = dict(last_from_ckpt)
    t0, done = time.perf_counter(), 0
    old_handler = signal.getsignal(signal.SIGTERM)
    if rank == 0:
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(Interrupted()))
    iteration = start
    try:
        for content, style in loader:
            content = content.to(device, non_blocking=True)
            style = style.to(device, non_blocking=True)
            if compute_dtype == torch.float64:
                content, style = content.double(), style.double()
            if channels_last:
                content = content.contiguous(memory_format=torch.channels_last)
                style = style.contiguous(memory_format=torch.channels_last)
            with autocast(device, compute_dtype):
                losses = loss_module(content, style)
            opt.zero_grad(set_to_none=True)
            losses["total"].backward()
            opt.step()
            sched.step()
            values = torch.stack([v.detach().double() for v in losses.values()])  # fp64 runs log every digit
            if world > 1:
                dist.all_reduce(values)
                values /= world
            # Read the losses one iteration late: the device runs this step while the host logs the last
            # one and prepares the next batch (reading them now would wait for the device every step).
            record()
            pending = (iteration, list(losses.keys()), values, opt.param_groups[0]["lr"])
            iteration += 1
            done += 1
            bar.update()
            if iteration % cfg.checkpoint_every == 0 or iteration == cfg.max_iter:
                save_checkpoint(iteration)
    except (KeyboardInterrupt, Interrupted):
        bar.close()
        save_checkpoint(iteration)
        if rank == 0:
            log.warning("interrupted at iteration %d; checkpoint saved, rerun the same command to resume", iteration)
        raise KeyboardInterrupt from None
    finally:
        if rank == 0:
            signal.signal(signal.SIGTERM, old_handler)
    record()
    bar.close()
    elapsed = time.perf_counter() - t0
    summary = {"method": cfg.method, "iterations": iteration, "resumed_from": start,
               "images_per_s": done * cfg.batch_size / elapsed if done and elapsed > 0 else None,
               "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({cpu_isa.describe()}; {torch.get_num_threads()} threads)",
               "precision": str(compute_dtype).removeprefix("torch."), "channels_last": channels_last,
               "world_size": world, "final_losses": last, "weights": str(out / "weights.pt")}
    previous = out / "summary.json"
    if not done and previous.exists():  # nothing left to train: keep the throughput measured before
        summary["images_per_s"] = json.loads(previous.read_text()).get("images_per_s")
    if rank == 0:
        save_weights(model, out / "weights.pt", iteration=iteration, config=dataclasses.asdict(cfg))
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if live is not None:
            live.end()
    if world > 1:
        dist.barrier()
    return summary
