"""What a training run is: the recipe (:class:`TrainConfig`) and the fingerprint a checkpoint must match."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field


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

    on_mismatch: str = "stop"             # a checkpoint of another recipe/code: stop | restart | resume

    #: recipe values a checkpoint must share to be resumed (not out_dir, max_iter, workers, device, ...)
    RECIPE_KEYS = ("method", "batch_size", "lr", "lr_decay", "crop", "seed", "precision", "encoder_weights",
                   "method_kwargs")

    def recipe(self) -> dict:
        """The recipe values, plus the tensor sha256 of the encoder weights a name stands for on this
        machine (``normalised`` is bethgelab's where it was downloaded, else ours: other weights, another
        recipe); the asset's pinned one when it is not fetched yet."""
        from safin.io.weights import ENCODER_WEIGHTS, REGISTRY, AssetError, weights_identity

        out = {k: getattr(self, k) for k in self.RECIPE_KEYS}
        if self.encoder_weights in ENCODER_WEIGHTS:
            try:
                out["encoder_tensor_sha256"] = weights_identity(self.encoder_weights)["tensor_sha256"]
            except AssetError:
                out["encoder_tensor_sha256"] = REGISTRY[ENCODER_WEIGHTS[self.encoder_weights]].tensor_sha256
        return json.loads(json.dumps(out, sort_keys=True, default=str))

    def code(self) -> dict[str, str]:
        """``{module: digest}`` of the code that can change this method's training arithmetic
        (:func:`safin.training.code.training_code_digest`)."""
        from safin.methods import METHODS
        from safin.training.code import training_code_digest

        if self.method not in METHODS:
            raise KeyError(f"method {self.method!r} is not registered ({sorted(METHODS)}); `import baselines` first")
        return training_code_digest(METHODS[self.method].__module__)

    def fingerprint(self) -> str:
        """What must match for a checkpoint to be resumed: the recipe and the method's training code."""
        blob = json.dumps({"recipe": self.recipe(), "code": self.code()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
