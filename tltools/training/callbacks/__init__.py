"""Keras callbacks of the training engine, one per module."""

from tltools.training.callbacks.best_checkpoint import BestModelCheckpoint
from tltools.training.callbacks.metrics_recorder import MetricsRecorder
from tltools.training.callbacks.named_logs import MONITOR, HistoryCSV, named_logs, objective_differs
from tltools.training.callbacks.stop_request import StopRequest
from tltools.training.callbacks.throttled_checkpoint import ThrottledCheckpoint

__all__ = ["MONITOR", "BestModelCheckpoint", "HistoryCSV", "MetricsRecorder", "StopRequest", "ThrottledCheckpoint",
           "named_logs", "objective_differs"]
