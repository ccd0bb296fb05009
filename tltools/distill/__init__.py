"""Knowledge distillation: a small, fast student learns from a trained teacher run (Hinton et al.).

>>> from tltools.distill import distill
>>> result = distill("runs/20260101-120000-efficientnet_lite2-a1b2c3", student="efficientnet_lite0", image_size=160)
>>> result.report["comparison"]   # teacher, distilled student, student alone: accuracy, sizes, latency

Distillation is an option of the one trainer (``TrainConfig.teacher_run``; :mod:`tltools.distill.teacher`);
:mod:`tltools.distill.engine` builds the student's config, trains it and compares;
:mod:`tltools.distill.loss` is the loss;
:mod:`tltools.distill.task` runs it as a job.
"""

from tltools.distill.engine import (
    DISTILL_FILE, DistillResult, comparison_table, distill, run_distillation, student_config,
)
from tltools.distill.loss import DistillationLoss, targets
from tltools.distill.teacher import Teacher, teacher_logits_model

__all__ = ["DISTILL_FILE", "DistillResult", "DistillationLoss", "Teacher", "comparison_table", "distill",
           "run_distillation", "student_config", "targets", "teacher_logits_model"]
