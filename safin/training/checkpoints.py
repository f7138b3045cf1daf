"""Trainer checkpoints: where they live, how they are written, which one a run resumes, pruning.

Nothing here deletes a checkpoint that a run could still need: pruning keeps the newest
``keep_checkpoints`` of the folder, and the folder only ever holds the current run's lineage —
checkpoints of another recipe or code stop the run (:class:`CheckpointMismatch`) until the user
chooses ``--restart`` (they are moved to ``checkpoints/superseded/``, not deleted) or
``--resume-anyway``; unreadable checkpoints newer than the one resumed are moved to
``checkpoints/rejected/``.
"""
from __future__ import annotations

import errno
import random
import time
from pathlib import Path

import numpy as np
import torch

from safin.io.files import atomic_path
from safin.training.config import TrainConfig


class CheckpointMismatch(RuntimeError):
    """The newest checkpoint was written by another recipe or other code: the user must choose."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (disk full, ...); the previous one is intact."""


def checkpoint_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.out_dir) / "checkpoints"


def path_for(cfg: TrainConfig, iteration: int) -> Path:
    return checkpoint_dir(cfg) / f"ckpt_{iteration:09d}.pt"


def listed(cfg: TrainConfig) -> list[Path]:
    """This run's checkpoint files, oldest first."""
    return sorted(checkpoint_dir(cfg).glob("ckpt_*.pt"))


def save(obj: dict, path: Path) -> None:
    """Write a checkpoint atomically and durably (:func:`safin.io.files.atomic_path`). A full disk
    leaves the previous checkpoint as it was and raises :class:`CheckpointWriteError` naming it."""
    try:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        previous = [p for p in sorted(path.parent.glob("ckpt_*.pt")) if p != path]
        kept = f"the previous checkpoint {previous[-1]} is intact" if previous else "no earlier checkpoint exists"
        raise CheckpointWriteError(f"{path}: no space left on device while writing the checkpoint; {kept}. "
                                   f"Free some space and rerun the same command to resume.") from e


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


def find_latest(cfg: TrainConfig) -> tuple[dict | None, list[str]]:
    """The newest loadable checkpoint (whatever wrote it) and the problems met on the way."""
    problems = []
    for path in reversed(listed(cfg)):
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)  # our own file: RNG states
        except Exception as e:
            problems.append(f"{path}: corrupt or truncated ({type(e).__name__}); using an older checkpoint")
            continue
        ckpt["path"] = str(path)
        return ckpt, problems
    return None, problems


def differences(cfg: TrainConfig, ckpt: dict) -> list[str]:
    """Why ``ckpt`` is not this run's: recipe values and code modules that differ, or an iteration
    past ``max_iter``; empty when it can be resumed as is."""
    out = []
    old_recipe = ckpt.get("recipe")
    if old_recipe is None:  # written before recipes and code were recorded separately
        if ckpt.get("fingerprint") != cfg.fingerprint():
            out.append("a different configuration (the checkpoint predates per-module code digests)")
    else:
        new_recipe = cfg.recipe()
        for k in sorted(set(old_recipe) | set(new_recipe)):
            if old_recipe.get(k) != new_recipe.get(k):
                out.append(f"a different configuration: {k} {old_recipe.get(k)!r} -> {new_recipe.get(k)!r}")
        old_code, new_code = ckpt.get("code", {}), cfg.code()
        changed = sorted(m for m in set(old_code) | set(new_code) if old_code.get(m) != new_code.get(m))
        if changed:
            out.append("changed training code: " + ", ".join(
                m + ("" if m in old_code and m in new_code else " (added)" if m in new_code else " (removed)")
                for m in changed))
    if ckpt.get("iteration", 0) > cfg.max_iter:
        out.append(f"iteration {ckpt['iteration']} is past max_iter {cfg.max_iter}")
    return out


def find_resumable(cfg: TrainConfig) -> tuple[dict | None, list[str]]:
    """The newest loadable checkpoint if it is this run's (else None), and the problems met."""
    ckpt, problems = find_latest(cfg)
    if ckpt is None:
        return None, problems
    diff = differences(cfg, ckpt)
    if diff:
        return None, problems + [f"{ckpt['path']}: written with {'; '.join(diff)}; not resumed"]
    return ckpt, problems


def remove_partial(cfg: TrainConfig) -> list[Path]:
    """Delete the temporary files of checkpoint writes that were killed (never read by anything)."""
    folder = checkpoint_dir(cfg)
    partial = sorted(folder.glob(".ckpt_*.tmp.pt")) if folder.exists() else []
    for f in partial:
        f.unlink(missing_ok=True)
    return partial


def set_aside(cfg: TrainConfig, why: str, newer_than: int | None = None) -> list[Path]:
    """Move checkpoints (all, or those numbered above ``newer_than``) to ``checkpoints/WHY/STAMP/``."""
    files = [p for p in listed(cfg) if newer_than is None or int(p.stem.split("_")[1]) > newer_than]
    if not files:
        return []
    dest = checkpoint_dir(cfg) / why / time.strftime("%Y%m%d-%H%M%S")
    dest.mkdir(parents=True, exist_ok=True)
    moved = []
    for f in files:
        f.rename(dest / f.name)
        moved.append(dest / f.name)
    return moved


def prune(cfg: TrainConfig, current: Path) -> list[Path]:
    """Delete all but the newest ``keep_checkpoints`` checkpoints, never ``current`` (the one just
    written); returns what was deleted."""
    ckpts = [p for p in listed(cfg) if p != current]
    doomed = ckpts[: max(0, len(ckpts) - (cfg.keep_checkpoints - 1))]
    for old in doomed:
        old.unlink(missing_ok=True)
    return doomed
