"""How good a trained model is, and where it looks.

>>> from tltools.evaluation import evaluate_run, gradcam, per_class_table
>>> metrics = evaluate_run("runs/pets")          # the run's own val and test split
>>> per_class_table(metrics["val"])             # precision, recall, F1, AUC per class
>>> gradcam(model, "cat.jpg").overlay           # PIL image with the heatmap blended in
"""

from tltools.evaluation.evaluate import (
    EVALUATED_SPLITS,
    check_classes,
    evaluate_dataset,
    evaluate_run,
    evaluate_split,
    split_metrics,
)
from tltools.evaluation.gradcam import GradCam, gradcam
from tltools.evaluation.metrics import classification_metrics, expected_calibration_error, per_class_table

__all__ = [
    "EVALUATED_SPLITS",
    "GradCam",
    "check_classes",
    "classification_metrics",
    "evaluate_dataset",
    "evaluate_run",
    "evaluate_split",
    "expected_calibration_error",
    "gradcam",
    "per_class_table",
    "split_metrics",
]
