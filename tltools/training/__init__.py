"""The training engine: :class:`TrainConfig` in, a run folder with the best model out."""

from tltools.training.callbacks import StopRequest
from tltools.training.config import TrainConfig
from tltools.training.lr_finder import LRFinderResult, find_learning_rate
from tltools.training.progress import TrainingLog
from tltools.training.trainer import TrainResult, history_frame, suggest_learning_rate, train

__all__ = [
    "LRFinderResult",
    "StopRequest",
    "TrainConfig",
    "TrainResult",
    "TrainingLog",
    "find_learning_rate",
    "history_frame",
    "suggest_learning_rate",
    "train",
]
