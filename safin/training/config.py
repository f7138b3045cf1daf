"""What a training run is: the recipe (:class:`TrainConfig`) and the fingerprint a checkpoint must match."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path


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
    precision: str = "auto"               # auto | bf16 | fp32 (safin.runtime.precision)
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
    """sha256 over the sources of the ``safin`` and ``baselines`` packages (every ``.py``, by path)."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[2]
    for pkg in (root / "safin", root / "baselines"):
        for f in sorted(pkg.rglob("*.py")):
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()
