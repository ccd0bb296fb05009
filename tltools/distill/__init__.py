"""Knowledge distillation: a small, fast student learns from a trained teacher run (Hinton et al.).

>>> from tltools.distill import distill
>>> result = distill("runs/20260101-120000-efficientnet_lite2-a1b2c3", student="efficientnet_lite0", image_size=160)
>>> result.report["comparison"]   # teacher, distilled student, student alone: accuracy, sizes, latency

See :mod:`tltools.distill.engine` for the steps and :mod:`tltools.distill.loss` for the loss.
"""

from tltools.distill.engine import DISTILL_FILE, DistillResult, comparison_table, distill, teacher_logits_model
from tltools.distill.loss import DistillationLoss, targets

__all__ = ["DISTILL_FILE", "DistillResult", "DistillationLoss", "comparison_table", "distill", "targets", "teacher_logits_model"]
