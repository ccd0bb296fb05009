"""The whole health analysis of a dataset, from its cached features: :func:`analyse` and its :class:`HealthReport`."""

import dataclasses
import time

import numpy as np
import pandas as pd

from tltools.data.dataset import Dataset
from tltools.health import duplicates, label_issues, outliers, overview
from tltools.health.features import Features, dataset_features

# Features analysed unless told otherwise: the default backbone's, which the first run caches anyway. Measured on
# flowers12 (README, Data health): lite0 alone already puts every flipped label in the top 2x; lite2's features
# and mirrored-image views (``flip=True``) found none more there and double the extraction.
DEFAULT_BACKBONES = ("efficientnet_lite0",)
NEIGHBOURS_SHOWN = 5


@dataclasses.dataclass(eq=False)
class HealthReport:
    """What :func:`analyse` found.

    Attributes:
        dataset: The analysed dataset.
        features: The features it was computed from (``features.table`` orders every array below).
        combined: L2-normalised combined features, one row per image.
        probabilities: Out-of-fold class probabilities per image.
        quality: Label quality per image, 0..1 (low: likely mislabelled).
        label_issues: Likely label errors, most suspicious first.
        duplicates: Exact and near duplicate groups, label conflicts and leakage first.
        outliers: Images far from all others, farthest first.
        outlier_scores: Every image's outlier score.
        confused_pairs: Class pairs most confused out of fold.
        class_quality: Per class label quality and issues.
        seconds: Time per stage (``features``, ``label_issues``, ``duplicates``, ``outliers``, ``total``).
    """

    dataset: Dataset
    features: Features
    combined: np.ndarray
    probabilities: np.ndarray
    quality: np.ndarray
    label_issues: list
    duplicates: list
    outliers: list
    outlier_scores: np.ndarray
    confused_pairs: list[dict]
    class_quality: list[dict]
    seconds: dict

    @property
    def table(self) -> pd.DataFrame:
        """The images in analysis order (``relpath``, ``label``, ``split``, ``sha1``, ...)."""
        return self.features.table

    def neighbours(self, index: int, count: int = NEIGHBOURS_SHOWN) -> list[tuple[int, float]]:
        """Return the ``count`` images most similar to image ``index``: ``(index, cosine similarity)``, nearest first."""
        indices, similarity = outliers.neighbours(self.combined, count, rows=[index])
        return [(int(i), float(s)) for i, s in zip(indices[0], similarity[0])]

    def to_json(self) -> dict:
        """Return the report as one JSON-friendly dict (the CLI's ``--json``)."""
        table, classes = self.table, self.dataset.classes
        path = table["relpath"].to_numpy()
        return {
            "source": self.dataset.source,
            "images": int(len(table)),
            "classes": list(classes),
            "features": self.features.names,
            "label_issues": [{"path": path[issue.index], "given": classes[issue.given],
                              "suggested": classes[issue.suggested], "score": round(issue.score, 4),
                              "split": table["split"].iat[issue.index]} for issue in self.label_issues],
            "duplicates": [{"paths": [path[i] for i in group.indices], "kind": group.kind,
                            "splits": [table["split"].iat[i] for i in group.indices],
                            "labels": [table["label"].iat[i] for i in group.indices],
                            "similarity": group.similarity, "label_conflict": group.label_conflict,
                            "leakage": group.leakage} for group in self.duplicates],
            "outliers": [{"path": path[item.index], "score": round(item.score, 4),
                          "label": table["label"].iat[item.index]} for item in self.outliers],
            "confused_pairs": self.confused_pairs,
            "class_quality": self.class_quality,
            "seconds": self.seconds,
        }


class AnalysisStopped(Exception):
    """The analysis was stopped (its ``stop`` request) before it finished; nothing half-made is kept."""


def analyse(
    dataset: Dataset,
    backbones=DEFAULT_BACKBONES,
    *,
    image_size: int | None = None,
    weights: str = "imagenet",
    flip: bool = False,
    seed: int = 0,
    on_progress=None,
    stop=None,
) -> HealthReport:
    """Find likely label errors, duplicates and outliers in ``dataset`` and summarise its classes.

    Args:
        dataset: The images (every split is analysed).
        backbones: Registry names whose pooled features are used (from the feature cache, else extracted into it).
        image_size: Input side; None for each backbone's default.
        weights: The base weights, as :class:`~tltools.training.TrainConfig` names them.
        flip: Also use the features of mirrored images (test-time augmentation of the fold heads).
        seed: Seed of the fold assignment.
        on_progress: Optional ``callable(stage: str, done: int, total: int)``: decoding and feature
            extraction per batch, the out-of-fold heads per fold, then each later step as it starts.
        stop: Optional :class:`~tltools.training.StopRequest`, checked at every progress report.

    Returns:
        The :class:`HealthReport`.

    Raises:
        TLToolsError: A backbone is unknown or unusable at that size.
        AnalysisStopped: ``stop`` was requested (an interrupted feature extraction leaves no cache entry).
    """
    started = time.time()
    report = _progress(on_progress, stop)
    report("getting the features", 0, 1)
    features = dataset_features(dataset, list(backbones), image_size=image_size, weights=weights, flip=flip,
                                on_progress=report)
    return analyse_features(dataset, features, seed=seed, started=started, on_progress=report)


def _progress(on_progress, stop):
    """Return ``callable(stage, done, total)`` that raises :class:`AnalysisStopped` once ``stop`` is requested,
    then passes the report on to ``on_progress``."""
    def report(stage: str, done: int, total: int) -> None:
        if stop is not None and stop.requested:
            raise AnalysisStopped(f"stopped while {stage}")
        if on_progress is not None:
            on_progress(stage, done, total)

    return report


def analyse_features(dataset: Dataset, features: Features, *, seed: int = 0, started: float | None = None,
                     on_progress=None) -> HealthReport:
    """Run the analysis on features already got (see :func:`analyse`; ``on_progress`` may raise to stop it)."""
    started = time.time() if started is None else started
    report = on_progress or (lambda stage, done, total: None)
    seconds = {"features": round(features.seconds, 2)}
    labels = features.table["label_index"].to_numpy()
    combined = features.combined()
    clock = time.time()
    probabilities = label_issues.out_of_fold_probabilities(
        features.views(), labels, seed=seed, on_fold=lambda done, total: report("label errors: fold heads", done, total))
    quality = label_issues.label_quality(labels, probabilities)
    issues = label_issues.find_issues(labels, probabilities)
    seconds["label_issues"] = round(time.time() - clock, 2)
    report("duplicates", 0, 1)
    clock = time.time()
    groups = duplicates.find_duplicates(features.table, features.views()[0], dataset.root)
    seconds["duplicates"] = round(time.time() - clock, 2)
    report("outliers", 0, 1)
    clock = time.time()
    found, scores = outliers.find_outliers(combined)
    seconds["outliers"] = round(time.time() - clock, 2)
    seconds["total"] = round(time.time() - started, 2)
    return HealthReport(
        dataset=dataset, features=features, combined=combined, probabilities=probabilities, quality=quality,
        label_issues=issues, duplicates=groups, outliers=found, outlier_scores=scores,
        confused_pairs=overview.confused_pairs(labels, probabilities, dataset.classes),
        class_quality=overview.class_quality(labels, quality, [issue.index for issue in issues], dataset.classes),
        seconds=seconds)
