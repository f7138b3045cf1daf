"""Training: the recipe (:mod:`.config`), the data stream (:mod:`.data`), checkpoints
(:mod:`.checkpoints`) and the one trainer every method uses (:mod:`.trainer`)."""
from safin.training.config import TrainConfig
from safin.training.data import PairStream, PositionSampler, list_training_images, resolve_workers, training_loader
from safin.training.checkpoints import find_resumable
from safin.training.trainer import Trainer, train

__all__ = ["TrainConfig", "PairStream", "PositionSampler", "list_training_images",
           "resolve_workers", "training_loader", "find_resumable", "Trainer", "train"]
