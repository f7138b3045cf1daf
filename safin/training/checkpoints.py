"""Trainer checkpoints: where they live, how they are written, which one a run resumes, pruning."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from safin.io.files import atomic_path
from safin.training.config import TrainConfig


def checkpoint_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.out_dir) / "checkpoints"


def save(obj: dict, path: Path) -> None:
    """Write a checkpoint atomically and durably (:func:`safin.io.files.atomic_path`)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
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


def prune(cfg: TrainConfig) -> None:
    ckpts = sorted(checkpoint_dir(cfg).glob("ckpt_*.pt"))
    for old in ckpts[: max(0, len(ckpts) - cfg.keep_checkpoints)]:
        old.unlink(missing_ok=True)


def path_for(cfg: TrainConfig, iteration: int) -> Path:
    return checkpoint_dir(cfg) / f"ckpt_{iteration:09d}.pt"
