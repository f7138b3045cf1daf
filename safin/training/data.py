"""The training data: content/style crop pairs as a pure function of the sample position.

Epoch e of a stream is a permutation drawn from a generator seeded with (seed, stream, e); each crop
offset comes from (seed, stream, position). Resuming needs only the iteration number, and data
parallelism splits every global batch across ranks without changing what the whole batch holds.
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from safin.io.images import ImageReadError, is_image_name, open_rgb, pil_to_tensor

log = logging.getLogger(__name__)


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
        # 2n consecutive positions span a whole epoch, so every readable file is among them
        for attempt in range(2 * len(files)):
            path = files[self._index(stream, len(files), p + attempt)]
            if path in self.unreadable:
                continue
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
    """``"auto"``: one decoding process per CPU core beyond the training process's own, at most 8
    (measured rates: docs/performance.md, Data loader). The data order never depends on it."""
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
