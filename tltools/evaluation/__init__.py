"""How good a trained model is, and where it looks.

>>> from tltools.evaluation import evaluate_split, gradcam, per_class_table
>>> metrics = evaluate_split(model, class_names, dataset, "val")
>>> per_class_table(metrics)                 # precision, recall, F1, AUC per class
>>> gradcam(model, "cat.jpg").overlay        # PIL image with the heatmap blended in
"""

from tltools.evaluation.evaluate import check_classes, evaluate_arrays, evaluate_split
from tltools.evaluation.gradcam import GradCam, gradcam
from tltools.evaluation.metrics import classification_metrics, expected_calibration_error, per_class_table

__all__ = [
    "GradCam",
    "check_classes",
    "classification_metrics",
    "evaluate_arrays",
    "evaluate_split",
    "expected_calibration_error",
    "gradcam",
    "per_class_table",
]
