"""classification_metrics against small cases worked out by hand."""

import json
import math

import numpy as np
import pytest

from tltools.evaluation.metrics import classification_metrics, expected_calibration_error, per_class_table

CLASSES = ["ant", "bee", "cat"]
# Seven images; hand-worked: predictions ant, bee, bee, cat, cat, ant, cat → 4 right, 3 wrong.
Y_TRUE = [0, 0, 1, 1, 2, 2, 2]
PROBS = [
    [0.8, 0.1, 0.1],  # ant  -> ant  right
    [0.3, 0.6, 0.1],  # ant  -> bee  wrong (0.6), ant is 2nd
    [0.2, 0.7, 0.1],  # bee  -> bee  right
    [0.1, 0.2, 0.7],  # bee  -> cat  wrong (0.7), bee is 2nd
    [0.1, 0.1, 0.8],  # cat  -> cat  right
    [0.5, 0.1, 0.4],  # cat  -> ant  wrong (0.5), cat is 2nd
    [0.1, 0.1, 0.8],  # cat  -> cat  right
]
PATHS = [f"{CLASSES[y]}/{i}.png" for i, y in enumerate(Y_TRUE)]


@pytest.fixture(scope="module")
def metrics():
    return classification_metrics(Y_TRUE, PROBS, CLASSES, top_k=2, paths=PATHS)


def test_accuracy_top_k_and_loss(metrics):
    assert metrics["num_images"] == 7
    assert metrics["accuracy"] == pytest.approx(4 / 7)
    assert metrics["top_k"] == 2
    assert metrics["top_k_accuracy"] == pytest.approx(1.0)
    true_probs = [0.8, 0.3, 0.7, 0.2, 0.8, 0.4, 0.8]
    assert metrics["loss"] == pytest.approx(-sum(math.log(p) for p in true_probs) / 7)


def test_confusion_matrix_rows_are_true_classes(metrics):
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [1, 0, 2]]


def test_per_class_precision_recall_f1_and_averages(metrics):
    assert list(metrics["per_class"]) == CLASSES
    assert metrics["per_class"]["ant"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "auc": 0.9}
    )
    cat = metrics["per_class"]["cat"]
    assert (cat["precision"], cat["recall"], cat["f1"], cat["support"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3, 3))
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.5 + 2 / 3) / 3)
    assert metrics["weighted_f1"] == pytest.approx((2 * 0.5 + 2 * 0.5 + 3 * 2 / 3) / 7)


def test_roc_auc_is_the_mean_of_one_vs_rest_aucs(metrics):
    # Pairs (positive, negative) ranked right: ant 9/10, bee 9/10, cat 11/12.
    aucs = [metrics["per_class"][name]["auc"] for name in CLASSES]
    assert aucs == pytest.approx([0.9, 0.9, 11 / 12])
    assert metrics["roc_auc"] == pytest.approx(sum(aucs) / 3)
    curve = metrics["roc_curves"]["cat"]
    assert (curve["fpr"][0], curve["tpr"][0], curve["fpr"][-1], curve["tpr"][-1]) == (0.0, 0.0, 1.0, 1.0)
    assert curve["fpr"] == sorted(curve["fpr"]) and curve["tpr"] == sorted(curve["tpr"])


def test_top_k_is_capped_at_the_number_of_classes():
    metrics = classification_metrics(Y_TRUE, PROBS, CLASSES, top_k=5)
    assert metrics["top_k"] == 3
    assert metrics["top_k_accuracy"] == 1.0
    top1 = classification_metrics(Y_TRUE, PROBS, CLASSES, top_k=1)
    assert top1["top_k_accuracy"] == pytest.approx(4 / 7)


def test_misclassified_most_confident_first_with_paths(metrics):
    assert metrics["misclassified"] == [
        {"index": 3, "path": "bee/3.png", "true": "bee", "predicted": "cat", "confidence": pytest.approx(0.7)},
        {"index": 1, "path": "ant/1.png", "true": "ant", "predicted": "bee", "confidence": pytest.approx(0.6)},
        {"index": 5, "path": "cat/5.png", "true": "cat", "predicted": "ant", "confidence": pytest.approx(0.5)},
    ]
    without_paths = classification_metrics(Y_TRUE, PROBS, CLASSES)["misclassified"]
    assert [entry["index"] for entry in without_paths] == [3, 1, 5]
    assert "path" not in without_paths[0]


def test_result_is_plain_json(metrics):
    assert json.loads(json.dumps(metrics, allow_nan=False))["confusion_matrix"] == metrics["confusion_matrix"]


def test_auc_is_none_when_a_class_is_absent():
    probs = [[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.2, 0.3, 0.5], [0.1, 0.8, 0.1]]
    metrics = classification_metrics([0, 0, 1, 1], probs, CLASSES)
    assert metrics["roc_auc"] is None
    assert metrics["per_class"]["cat"]["auc"] is None
    assert metrics["roc_curves"]["cat"] is None
    assert metrics["per_class"]["ant"]["auc"] == pytest.approx(1.0)
    assert metrics["per_class"]["cat"]["support"] == 0
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [0, 0, 0]]
    json.dumps(metrics, allow_nan=False)


def test_two_classes():
    y_true, probs = [0, 1, 1, 0], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]
    metrics = classification_metrics(y_true, probs, ["no", "yes"])
    assert metrics["accuracy"] == 0.5
    assert classification_metrics(y_true, probs, ["no", "yes"], top_k=1)["top_k_accuracy"] == 0.5
    assert metrics["top_k"] == 2 and metrics["top_k_accuracy"] == 1.0
    # Positives (yes) scored 0.8, 0.4; negatives 0.1, 0.7: 3 of 4 pairs ranked right.
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert metrics["per_class"]["no"]["auc"] == pytest.approx(0.75)


def test_ece_is_zero_when_confidence_matches_accuracy():
    # Ten images all predicted "ant" with confidence 0.8, eight of them right.
    probs = np.tile([0.8, 0.2], (10, 1))
    assert expected_calibration_error(np.array([0] * 8 + [1] * 2), probs) == pytest.approx(0.0)
    metrics = classification_metrics([0] * 8 + [1] * 2, probs, ["ant", "bee"])
    assert metrics["ece"] == pytest.approx(0.0)


def test_ece_of_an_overconfident_model():
    # Confidence 0.99, half right: ECE = |0.5 - 0.99|.
    probs = np.tile([0.99, 0.01], (10, 1))
    assert expected_calibration_error(np.array([0] * 5 + [1] * 5), probs) == pytest.approx(0.49)


def test_ece_weights_bins_by_their_share_of_images():
    # Bin (14/15, 1]: confidence 0.95, 1 of 2 right -> 0.45; bin (8/15, 9/15]: 0.55, 2 of 2 right -> 0.45.
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45], [0.55, 0.45], [0.55, 0.45]])
    y_true = np.array([0, 1, 0, 0, 0, 0])
    assert expected_calibration_error(y_true, probs) == pytest.approx(2 / 6 * 0.45 + 4 / 6 * 0.45)


def test_per_class_table():
    table = per_class_table(classification_metrics(Y_TRUE, PROBS, CLASSES))
    assert list(table.columns) == ["class", "precision", "recall", "f1", "support", "auc"]
    assert list(table["class"]) == CLASSES
    assert list(table["support"]) == [2, 2, 3]
    assert table.loc[2, "auc"] == pytest.approx(11 / 12)


@pytest.mark.parametrize(
    ("y_true", "probs", "message"),
    [
        ([0, 1], [[0.5, 0.5], [0.5, 0.5]], r"shape \(N, 3\)"),
        ([0, 3], [[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]], r"0\.\.2"),
        ([0], [[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]], r"shape \(2,\)"),
        ([], np.empty((0, 3)), "no predictions"),
        ([0], [[1.5, -0.3, -0.2]], "probabilities"),
    ],
)
def test_inconsistent_inputs_are_refused(y_true, probs, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(y_true, probs, CLASSES)
