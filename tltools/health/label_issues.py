"""Likely label errors: out-of-fold predicted probabilities from k-fold heads on cached features, then confident learning.

Every labelled image gets a predicted class distribution from a head that never
saw it: the L2-normalised backbone features are reduced to :data:`PCA_DIMENSIONS`
principal components (unsupervised, so no label leaks between folds), the images
are split into ``folds`` stratified folds, and for each fold a multinomial
logistic regression (scikit-learn) is fitted on the others: about a second for a
thousand images, against tens of seconds on the full 1280 features with the same
ranking on flowers12. With
several feature views (e.g. mirrored images) a fold's head is fitted on every
view of its training images and its probabilities averaged over the views of the
held-out ones (test-time augmentation). cleanlab's confident learning
(:func:`cleanlab.filter.find_label_issues`) then says which given labels are
likely wrong, and :func:`cleanlab.rank.get_label_quality_scores` (self-confidence:
the probability of the given label) ranks them, most suspicious first.
"""

import dataclasses
import warnings

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

# Inverse regularisation strength of the fold heads on L2-normalised features (measured on flowers12 and
# clothing10 with flipped labels; see the README's Data health section).
HEAD_C = 3.0
FOLDS = 5
PCA_DIMENSIONS = 64


@dataclasses.dataclass(frozen=True)
class LabelIssue:
    """An image whose given label is likely wrong.

    Attributes:
        index: Its row in the analysed arrays.
        given: The label it has (class index).
        suggested: The class the out-of-fold heads believe most (class index).
        score: Label quality, 0..1 (the out-of-fold probability of the given label): lower is more suspicious.
    """

    index: int
    given: int
    suggested: int
    score: float


def out_of_fold_probabilities(views: list[np.ndarray], labels: np.ndarray, *, folds: int = FOLDS, seed: int = 0,
                              c: float = HEAD_C, on_fold=None) -> np.ndarray:
    """Return each image's class probabilities from heads fitted without it.

    Args:
        views: One (images, features) array per view of the same images (at least one).
        labels: Given class index per image; every class needs at least 2 images.
        folds: Stratified folds (fewer when the smallest class has fewer images).
        seed: Seed of the fold assignment.
        c: Inverse regularisation of the logistic regression.
        on_fold: Optional ``callable(done, total)``, called before the first fold's head and after each one.

    Returns:
        (images, classes) probabilities, rows summing to 1; a class index no image has gets 0.
    """
    labels = np.asarray(labels)
    classes = int(labels.max()) + 1
    smallest = np.bincount(labels, minlength=classes)
    splits = max(2, min(folds, int(smallest[smallest > 0].min())))
    dimensions = min(PCA_DIMENSIONS, len(labels), views[0].shape[1])
    reducer = PCA(n_components=dimensions, random_state=seed).fit(np.concatenate(views))
    views = [reducer.transform(view) for view in views]
    probabilities = np.zeros((len(labels), classes), dtype=np.float64)
    folder = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
    on_fold = on_fold or (lambda done, total: None)
    on_fold(0, splits)
    for number, (train, held_out) in enumerate(folder.split(views[0], labels), start=1):
        head = LogisticRegression(C=c, max_iter=300)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a head that stops at max_iter is still a good ranker
            head.fit(np.concatenate([view[train] for view in views]), np.tile(labels[train], len(views)))
        predicted = np.mean([head.predict_proba(view[held_out]) for view in views], axis=0)
        probabilities[np.ix_(held_out, head.classes_)] = predicted
        on_fold(number, splits)
    return probabilities


def label_quality(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Return each image's label quality score (cleanlab self-confidence), 0..1, low = likely mislabelled."""
    return get_label_quality_scores(np.asarray(labels), probabilities, method="self_confidence")


def find_issues(labels: np.ndarray, probabilities: np.ndarray) -> list[LabelIssue]:
    """Return the images confident learning flags as mislabelled, most suspicious first.

    Args:
        labels: Given class index per image.
        probabilities: Out-of-fold probabilities (:func:`out_of_fold_probabilities`).
    """
    labels = np.asarray(labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flagged = find_label_issues(labels, probabilities, return_indices_ranked_by="self_confidence",
                                    n_jobs=1)  # its default starts a process pool: slower than the work here
    scores = label_quality(labels, probabilities)
    return [LabelIssue(int(i), int(labels[i]), int(np.argmax(probabilities[i])), float(scores[i])) for i in flagged]


def ranked_by_quality(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Return every image's index, least likely correct label first (what the benchmark's top-k reads)."""
    return np.argsort(label_quality(labels, probabilities), kind="stable")
