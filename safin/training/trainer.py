"""The one trainer every method uses: resumable, deterministic, GPU- and multi-GPU-ready.

- Recipe (reference code defaults, methods.md): Adam, lr 1e-4 with inverse decay lr/(1 + 5e-5·i),
  batch 8 (SANet: 5), 160k iterations, random 256 crops of images resized to 512, seed 777.
- Data order is a pure function of (seed, sample position) (:mod:`safin.training.data`).
- Checkpoints every ``checkpoint_every`` iterations, written atomically (:mod:`safin.training.checkpoints`):
  trained weights, optimizer, scheduler, RNG states, iteration / sampler position, and a fingerprint of
  the config. On start the newest valid checkpoint of the same config is resumed; a truncated or corrupt
  one is reported and the previous one used. In deterministic mode a run killed at any point and
  restarted gives the same loss trajectory as an uninterrupted run.
- Device ``auto``: CUDA when present, else CPU. ``precision="auto"``: bf16 autocast wherever the device
  runs bf16 natively (CUDA; CPUs with AVX512-BF16/AMX), with the statistics, attention and losses kept
  in float32 (:mod:`safin.runtime.precision`); channels_last on CUDA and CPU; fused Adam on CUDA.
  ``torch.compile`` optional. Multi-GPU / multi-process: launch with ``torchrun --nproc_per_node N``
  (DistributedDataParallel; gloo on CPU, nccl on CUDA); the global batch stays ``batch_size``.
- Losses go to dvclive (``Live(dvcyaml=None)``, the files are declared in ``dvc.yaml``).

:class:`Trainer` holds one run; :func:`train` is ``Trainer(cfg).run()``. The steps, in order:
:meth:`~Trainer.setup_process`, :meth:`~Trainer.build_model`, :meth:`~Trainer.resume`,
:meth:`~Trainer.wrap_for_losses`, :meth:`~Trainer.build_loader`, :meth:`~Trainer.open_log`, then
:meth:`~Trainer.step` per batch with :meth:`~Trainer.record` and :meth:`~Trainer.save_checkpoint`, and
:meth:`~Trainer.finish`.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from safin.io.files import atomic_write_text
from safin.methods import METHODS, StyleTransfer, resolve_device, save_weights, trained_state
from safin.runtime import cpu_isa
from safin.runtime.cpu_isa import portable_init
from safin.runtime.precision import autocast, resolve_channels_last, resolve_precision
from safin.training import checkpoints, health
from safin.training.config import TrainConfig
from safin.training.data import PairStream, PositionSampler, list_training_images, training_loader

log = logging.getLogger(__name__)


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
        atomic_write_text(tsv, "\n".join([header, *kept]) + "\n")


class TrainingDiverged(RuntimeError):
    """A loss or a weight became NaN or infinite: the run stops instead of training on garbage."""


class Interrupted(Exception):
    """Raised in the training loop by SIGTERM or SIGUSR1: the run saves a checkpoint and stops."""


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted()


class Trainer:
    """One training run of ``cfg.method`` (see the module docstring for the order of the steps)."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.rank, self.world, self.local_rank = _dist_info()
        self.start = 0
        self.iteration = 0
        self.done = 0
        self.probe_batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self.last: dict[str, float] = {}
        self.pending = None  # (iteration, loss names, loss values on the device, lr) not yet logged
        self.live = None
        self.bar = None
        self.resumed_despite: list[str] = []  # differences the user chose to resume across
        self.last_checkpoint: Path | None = None

    # --- setup ------------------------------------------------------------------------------------
    def setup_process(self) -> None:
        """Device, process group, determinism switches and seeds."""
        cfg = self.cfg
        device = resolve_device(cfg.device)
        if self.world > 1:
            if device.type == "cuda":
                device = torch.device("cuda", self.local_rank)
                torch.cuda.set_device(device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if cfg.deterministic:
            if cfg.compile or not hasattr(torch._C, "_set_deterministic_algorithms"):
                torch.use_deterministic_algorithms(True, warn_only=True)
            else:  # the same switch; the public function also imports torch._inductor to set its config, 2 s of
                # every training process's start, for a compiler this run does not use
                torch._C._set_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        else:
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)
        self.device = device
        self.cuda = device.type == "cuda"

    def build_model(self) -> None:
        """The method (initial weights the same under every instruction set), optimizer and schedule."""
        cfg = self.cfg
        if cfg.method not in METHODS:  # safin does not import the baselines: the caller registers them
            raise KeyError(f"method {cfg.method!r} is not registered ({sorted(METHODS)}); `import baselines` first")
        with portable_init():  # the same initial weights under every instruction set (safin.runtime.cpu_isa)
            model = METHODS[cfg.method](encoder_weights=cfg.encoder_weights, **cfg.method_kwargs)
        model = model.to(self.device).train()
        self.compute_dtype = resolve_precision(cfg.precision, self.device)
        self.channels_last = resolve_channels_last(cfg.channels_last, self.device, self.compute_dtype)
        if self.compute_dtype == torch.float64:  # fp64 (the ci profile): weights, batches and losses in float64
            model = model.to(torch.float64)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.opt = torch.optim.Adam(list(model.trainable()), lr=cfg.lr, fused=self.cuda or None)
        # the reference's lr / (1 + lr_decay * i), or the method's own schedule where its reference has one (StyTr²:
        # a warm-up, then the decay): a factor of cfg.lr at step i
        factor = getattr(model, "lr_factor", None)  # StyleTransfer.lr_factor; a duck-typed plugin may lack it
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, (lambda i: factor(i, cfg.lr_decay)) if factor else (lambda i: 1.0 / (1.0 + cfg.lr_decay * i)))

    def resume(self) -> None:
        """Resume the newest valid checkpoint of this run, if any. A checkpoint of another recipe or
        other code stops the run with the differences and the two choices (``cfg.on_mismatch``):
        ``restart`` (set the old checkpoints aside, start at 0) or ``resume`` (go on, recorded)."""
        cfg = self.cfg
        if self.rank == 0:  # file operations on rank 0 only; the other ranks read after the barrier
            for f in checkpoints.remove_partial(cfg):
                log.info("removed %s, the remains of a checkpoint write that was killed", f)
            ckpt, problems = checkpoints.find_latest(cfg)
            for p in problems:
                log.warning(p)
            # unreadable checkpoints numbered above the one resumed would outrank the new ones: set aside
            for moved in checkpoints.set_aside(cfg, "rejected", newer_than=ckpt["iteration"] if ckpt else -1):
                log.warning("unreadable checkpoint moved to %s", moved)
        if self.world > 1 and dist.is_initialized():
            dist.barrier()
        if self.rank != 0:  # rank 0 keeps what it loaded: only unreadable, newer files were moved
            ckpt, _ = checkpoints.find_latest(cfg)
        if ckpt is None:
            return
        diff = checkpoints.differences(cfg, ckpt)
        if diff and cfg.on_mismatch == "restart":
            moved = checkpoints.set_aside(cfg, "superseded") if self.rank == 0 else []
            log.warning("%s: %s; restarting from iteration 0 (--restart); the %d old checkpoints are in %s",
                        ckpt["path"], "; ".join(diff), len(moved), moved[0].parent if moved else "-")
            return
        if diff and cfg.on_mismatch != "resume":
            raise checkpoints.CheckpointMismatch(
                f"{ckpt['path']} (iteration {ckpt['iteration']}) was written with {'; '.join(diff)}. Nothing was "
                f"changed or deleted. Rerun with --restart to start from iteration 0 (the old checkpoints are "
                f"moved to {checkpoints.checkpoint_dir(cfg) / 'superseded'}), or with --resume-anyway to continue "
                f"from iteration {ckpt['iteration']} (recorded in summary.json).")
        if diff:
            self.resumed_despite = diff
            log.warning("%s: resuming despite %s (--resume-anyway; recorded in summary.json)", ckpt["path"],
                        "; ".join(diff))
        missing, unexpected = self.model.load_state_dict(ckpt["model"], strict=False)
        assert not unexpected and all(k.startswith("encoder.") for k in missing), (missing, unexpected)
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        checkpoints.set_rng_state(ckpt["rng"])
        self.start = self.iteration = ckpt["iteration"]
        self.last = dict(ckpt.get("last_losses", {}))
        self.resumed_despite = list(ckpt.get("resumed_despite", [])) + self.resumed_despite
        self.last_checkpoint = Path(ckpt["path"])
        if self.rank == 0:
            log.info("resuming %s from iteration %d (%s)", cfg.method, self.start, ckpt["path"])

    def wrap_for_losses(self) -> None:
        """The module whose forward is the losses: DDP across processes, optionally compiled."""
        loss_module: nn.Module = _LossModule(self.model)
        if self.world > 1:
            loss_module = nn.parallel.DistributedDataParallel(
                loss_module, device_ids=[self.device.index] if self.cuda else None)
        if self.cfg.compile:
            loss_module = torch.compile(loss_module)
        self.loss_module = loss_module

    def build_loader(self) -> None:
        """This rank's share of the batches from the resumed iteration on."""
        cfg = self.cfg
        stream = PairStream(list_training_images(cfg.content_dir), list_training_images(cfg.style_dir),
                            cfg.crop, cfg.seed)
        sampler = PositionSampler(self.start, cfg.max_iter, cfg.batch_size, self.rank, self.world)
        self.loader = training_loader(stream, sampler, cfg.batch_size // self.world, cfg.num_workers,
                                      pin_memory=self.cuda)

    def open_log(self) -> None:
        """dvclive on rank 0 (rows past the resumed iteration dropped) and the progress bar."""
        from tqdm import tqdm

        cfg, out = self.cfg, Path(self.cfg.out_dir)
        if self.rank == 0 and cfg.live:
            from dvclive import Live

            live_dir = out / "live"
            if self.start > 0:
                _truncate_live_logs(live_dir, self.start)
            self.live = Live(str(live_dir), dvcyaml=None, save_dvc_exp=False, resume=self.start > 0, report=None)
            self.live.step = self.start
        self.bar = tqdm(total=cfg.max_iter, initial=self.start, desc=f"train {cfg.method}", unit="it",
                        dynamic_ncols=True, disable=not (cfg.progress and self.rank == 0))

    # --- the loop ---------------------------------------------------------------------------------
    def step(self, content: torch.Tensor, style: torch.Tensor) -> None:
        """One optimisation step on one batch; its losses are logged one step late (:meth:`record`)."""
        content = content.to(self.device, non_blocking=True)
        style = style.to(self.device, non_blocking=True)
        if self.compute_dtype == torch.float64:
            content, style = content.double(), style.double()
        if self.probe_batch is None:  # the run's first batch: the end-of-run health probe's images
            self.probe_batch = (content[:4].clone(), style[:4].clone())
        if self.channels_last:
            content = content.contiguous(memory_format=torch.channels_last)
            style = style.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.compute_dtype):
            losses = self.loss_module(content, style)
        self.opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        self.opt.step()
        self.sched.step()
        values = torch.stack([v.detach().double() for v in losses.values()])  # fp64 runs log every digit
        if self.world > 1:
            dist.all_reduce(values)
            values /= self.world
        # Read the losses one iteration late: the device runs this step while the host logs the last
        # one and prepares the next batch (reading them now would wait for the device every step).
        self.record()
        self.pending = (self.iteration, list(losses.keys()), values, self.opt.param_groups[0]["lr"])
        self.iteration += 1
        self.done += 1
        self.bar.update()

    def record(self) -> None:
        """Log the pending iteration's losses. dvclive's ``next_step`` is not used: it re-reads every
        logged row on each call (quadratic in the iterations; docs/training.md); rows are appended with
        an explicit step and the summary is written at checkpoints and at the end."""
        if self.pending is None:
            return
        step, names, values, lr = self.pending
        self.pending = None
        losses = dict(zip(names, values.tolist()))
        if not all(math.isfinite(v) for v in losses.values()):
            self.diverged(f"the loss is not finite at iteration {step} "
                          f"({', '.join(f'{k}={v:.4g}' for k, v in losses.items())})")
        self.last = losses
        self.bar.set_postfix(loss=f"{self.last['total']:.4g}")
        if self.live is not None:
            self.live.step = step
            for k, v in self.last.items():
                self.live.log_metric(f"loss/{k}", v, plot=True)
            self.live.log_metric("lr", lr, plot=True)

    def diverged(self, what: str) -> None:
        """Stop: nothing after the last good checkpoint is saved."""
        if self.last_checkpoint is not None:
            where = f"the last good checkpoint is {self.last_checkpoint} (iteration {self.last_checkpoint.stem.split('_')[1].lstrip('0') or 0})"
        else:
            where = "no checkpoint was written before it"
        raise TrainingDiverged(f"{self.cfg.method}: training stopped: {what}; {where}. Lower the learning rate "
                               f"or check the data; a rerun resumes from the last good checkpoint.")

    def save_checkpoint(self) -> None:
        """Everything a resumed run needs, at the current iteration; then prune old checkpoints. Weights
        that are no longer finite are never saved (:meth:`diverged`)."""
        self.record()
        bad = [n for n, p in self.model.named_parameters() if p.requires_grad and not torch.isfinite(p).all()]
        if bad:
            self.diverged(f"weights are not finite after iteration {self.iteration - 1} ({', '.join(bad[:3])})")
        if self.live is not None:
            self.live.step = self.iteration
            self.live.make_summary()
        if self.rank != 0:
            return
        cfg, path = self.cfg, checkpoints.path_for(self.cfg, self.iteration)
        checkpoints.save({"model": trained_state(self.model), "optimizer": self.opt.state_dict(),
                          "scheduler": self.sched.state_dict(), "rng": checkpoints.rng_state(),
                          "iteration": self.iteration, "sampler_position": self.iteration * cfg.batch_size,
                          "fingerprint": cfg.fingerprint(), "recipe": cfg.recipe(), "code": cfg.code(),
                          "config": dataclasses.asdict(cfg), "path": str(path), "last_losses": self.last,
                          "resumed_despite": self.resumed_despite}, path)
        self.last_checkpoint = path
        checkpoints.prune(cfg, current=path)

    def loop(self) -> None:
        """Every batch of the loader; a checkpoint every ``checkpoint_every`` iterations and at the end.
        SIGTERM, SIGUSR1 or Ctrl-C: checkpoint at the current iteration, then ``KeyboardInterrupt``."""
        cfg = self.cfg
        # SIGTERM (preemption, scancel, a batch script passing SLURM's warning on) and SIGUSR1 (SLURM's warning sent to
        # the job's processes directly, --signal=USR1@…): checkpoint now and stop
        caught = [signal.SIGTERM, signal.SIGUSR1]
        old_handlers = {sig: signal.getsignal(sig) for sig in caught}
        if self.rank == 0:
            for sig in caught:
                signal.signal(sig, _raise_interrupted)
        try:
            for content, style in self.loader:
                self.step(content, style)
                if self.iteration % cfg.checkpoint_every == 0 or self.iteration == cfg.max_iter:
                    self.save_checkpoint()
        except (KeyboardInterrupt, Interrupted):
            self.bar.close()
            self.save_checkpoint()
            if self.rank == 0:
                log.warning("interrupted at iteration %d; checkpoint saved, rerun the same command to resume",
                            self.iteration)
            raise KeyboardInterrupt from None
        finally:
            if self.rank == 0:
                for sig, handler in old_handlers.items():
                    signal.signal(sig, handler)

    def encoder_identity(self) -> dict:
        """Which encoder weights the run trained on (the name, the asset, its source, tensor sha256)."""
        from safin.io.weights import AssetError, weights_identity

        try:
            return weights_identity(self.cfg.encoder_weights)
        except AssetError as e:  # a state dict or random weights pass through; a missing asset is said
            return {"name": str(self.cfg.encoder_weights), "error": str(e)}

    def finish(self, elapsed: float) -> dict:
        """Write the weights and ``summary.json`` (rank 0); returns the summary."""
        cfg, out = self.cfg, Path(self.cfg.out_dir)
        self.record()
        self.bar.close()
        done = self.done
        summary = {"method": cfg.method, "seed": cfg.seed, "iterations": self.iteration, "resumed_from": self.start,
                   "images_per_s": done * cfg.batch_size / elapsed if done and elapsed > 0 else None,
                   "device": (torch.cuda.get_device_name(self.device) if self.cuda else
                              f"cpu ({cpu_isa.describe()}; {torch.get_num_threads()} threads)"),
                   "precision": str(self.compute_dtype).removeprefix("torch."), "channels_last": self.channels_last,
                   "world_size": self.world, "final_losses": self.last, "weights": str(out / "weights.pt"),
                   "origin": "trained", "encoder": self.encoder_identity()}
        if self.resumed_despite:
            summary["resumed_despite"] = self.resumed_despite
        if self.probe_batch is not None and self.rank == 0:  # does the trained model still draw anything?
            summary["health"] = health.probe(self.model, *self.probe_batch)
        previous = out / "summary.json"
        if not done and previous.exists():  # nothing left to train: keep the throughput (and health) measured before
            before = json.loads(previous.read_text())
            summary["images_per_s"] = before.get("images_per_s")
            if "health" in before and "health" not in summary:
                summary["health"] = before["health"]
        if self.rank == 0:
            save_weights(self.model, out / "weights.pt", iteration=self.iteration, config=dataclasses.asdict(cfg))
            atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
            if self.live is not None:
                self.live.end()
        if self.world > 1:
            dist.barrier()
        return summary

    def run(self) -> dict:
        self.setup_process()
        self.build_model()
        self.resume()
        self.wrap_for_losses()
        self.build_loader()
        self.open_log()
        t0 = time.perf_counter()
        self.loop()
        return self.finish(time.perf_counter() - t0)


def train(cfg: TrainConfig) -> dict:
    """Train ``cfg.method``; returns a summary (iterations, images/s, final losses, weights path)."""
    return Trainer(cfg).run()
