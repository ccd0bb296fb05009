"""Keras callbacks of the training engine, one per module."""

from tltools.training.callbacks.best_checkpoint import BestModelCheckpoint
from tltools.training.callbacks.metrics_recorder import MetricsRecorder
from tltools.training.callbacks.stop_request import StopRequest
from tltools.training.callbacks.throttled_checkpoint import ThrottledCheckpoint

__all__ = ["BestModelCheckpoint", "MetricsRecorder", "StopRequest", "ThrottledCheckpoint"]
