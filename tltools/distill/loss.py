"""The Hinton et al. distillation loss, and the target rows it reads.

Each training example's target row is ``[one-hot label (C) | teacher logits (C) | labelled (1)]``
(:func:`targets`). The loss of a student's probabilities ``p`` is::

    alpha * labelled * CE(label, p) + (1 - alpha) * T² * KL(softmax(teacher_logits / T) || softmax(log p / T))

``log p`` is the student's logits up to a constant, which a softmax ignores. The
``T²`` keeps the soft term's gradients on the hard term's scale as ``T`` changes.
``alpha = 1`` is plain cross-entropy on the labels: the student trained alone.
Unlabelled images (``labelled = 0``) contribute only the soft term.
"""

import keras
import numpy as np
from keras import ops

_FLOOR = 1e-30  # probabilities are clipped here before the log: exact for all but underflowing values


def targets(labels: np.ndarray, teacher_logits: np.ndarray, num_classes: int,
            labelled: np.ndarray | None = None) -> np.ndarray:
    """Return the target rows ``[one-hot | teacher logits | labelled]`` (N, 2C+1) float32.

    Args:
        labels: Integer labels (N,); ignored where ``labelled`` is 0.
        teacher_logits: The teacher's logits (N, C).
        num_classes: C.
        labelled: 1 for images with a true label, 0 for unlabelled ones; None: all labelled.
    """
    labelled = np.ones(len(labels), np.float32) if labelled is None else np.asarray(labelled, np.float32)
    one_hot = np.eye(num_classes, dtype=np.float32)[np.asarray(labels, np.int64)] * labelled[:, None]
    return np.concatenate([one_hot, np.asarray(teacher_logits, np.float32), labelled[:, None]], axis=1)


class DistillationLoss(keras.losses.Loss):
    """Hard-label cross-entropy weighted ``alpha`` plus ``T²``-scaled KL to the teacher's softened outputs.

    Args:
        num_classes: C, the student's outputs.
        temperature: T ≥ 1 softening both distributions.
        alpha: Weight of the true labels, in [0, 1].
        label_smoothing: Smoothing of the true labels (as Keras' categorical cross-entropy's), in [0, 1).
    """

    def __init__(self, num_classes: int, temperature: float, alpha: float, label_smoothing: float = 0.0,
                 name: str = "distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes, self.temperature, self.alpha = int(num_classes), float(temperature), float(alpha)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        classes, t = self.num_classes, self.temperature
        hard, teacher, labelled = y_true[:, :classes], y_true[:, classes:2 * classes], y_true[:, 2 * classes]
        log_p = ops.log(ops.clip(y_pred, _FLOOR, 1.0))
        if self.label_smoothing:
            hard = hard * (1.0 - self.label_smoothing) + self.label_smoothing / classes
        hard_term = -ops.sum(hard * log_p, axis=-1) * labelled
        soft_teacher = ops.softmax(teacher / t, axis=-1)
        kl = ops.sum(soft_teacher * (ops.log_softmax(teacher / t, axis=-1) - ops.log_softmax(log_p / t, axis=-1)),
                     axis=-1)
        return self.alpha * hard_term + (1.0 - self.alpha) * (t * t) * kl

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "temperature": self.temperature,
                "alpha": self.alpha, "label_smoothing": self.label_smoothing}


def hard_metrics(num_classes: int) -> list:
    """Return the run's ``accuracy`` and unsmoothed ``crossentropy`` metrics, read from the one-hot part of the targets.

    They carry the names the trainer's metrics have, so ``history.csv`` records the
    cross-entropy as ``loss`` and the distillation loss as ``objective``
    (:mod:`tltools.training.callbacks.named_logs`).
    """
    def accuracy(y_true, y_pred):
        return keras.metrics.categorical_accuracy(y_true[:, :num_classes], y_pred)

    def crossentropy(y_true, y_pred):
        return keras.losses.categorical_crossentropy(y_true[:, :num_classes], y_pred)

    return [accuracy, crossentropy]
