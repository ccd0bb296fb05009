"""Each kind of finding on small synthetic features: label errors, duplicates, outliers, confused classes."""

import numpy as np
import pandas as pd
import pytest

from tltools.health import duplicates, label_issues, outliers, overview
from tltools.health.features import _normalise


def clusters(per_class=30, classes=3, dims=16, spread=0.35, seed=0):
    """L2-normalised features: one tight cluster per class around its own random centre."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dims))
    labels = np.repeat(np.arange(classes), per_class)
    features = centres[labels] + spread * rng.normal(size=(len(labels), dims))
    return _normalise(features.astype(np.float32)), labels


def test_flipped_labels_are_flagged_with_their_true_class_suggested():
    features, truth = clusters()
    given = truth.copy()
    flipped = [3, 40, 77]
    given[flipped] = (truth[flipped] + 1) % 3
    probabilities = label_issues.out_of_fold_probabilities([features], given, seed=0)
    assert probabilities.shape == (90, 3) and np.allclose(probabilities.sum(axis=1), 1)
    issues = label_issues.find_issues(given, probabilities)
    assert {issue.index for issue in issues} >= set(flipped)
    assert len(issues) <= 6, "clean labels flagged as errors"
    for issue in issues:
        if issue.index in flipped:
            assert issue.given == given[issue.index] and issue.suggested == truth[issue.index]
    assert [issue.score for issue in issues] == sorted(issue.score for issue in issues), "most suspicious first"
    assert set(label_issues.ranked_by_quality(given, probabilities)[:6]) >= set(flipped)


def test_clean_labels_give_no_issues():
    features, labels = clusters(seed=1)
    assert label_issues.find_issues(labels, label_issues.out_of_fold_probabilities([features], labels)) == []


def test_views_are_averaged_and_a_tiny_class_still_gets_folds():
    features, labels = clusters(per_class=6)
    labels = labels.copy()
    labels[:4] = 1  # class 0 keeps 2 images: two folds only
    views = [features, _normalise(features + 0.01)]
    probabilities = label_issues.out_of_fold_probabilities(views, labels)
    assert probabilities.shape == (18, 3) and np.allclose(probabilities.sum(axis=1), 1)


def table_for(labels, splits, sha1=None):
    count = len(labels)
    return pd.DataFrame({"relpath": [f"img{i}.png" for i in range(count)], "label": labels, "split": splits,
                         "sha1": sha1 if sha1 is not None else [f"h{i}" for i in range(count)]})


def test_exact_near_conflict_and_leakage_found_conflicts_first_and_nothing_else():
    features, labels = clusters(per_class=10, dims=64, spread=0.8)
    features = features.copy()
    names = np.array(["a", "b", "c"])[labels]
    splits = ["train"] * 30
    sha1 = [f"h{i}" for i in range(30)]
    sha1[5] = sha1[1]  # exact copy of image 1, in another split: leakage
    features[5] = features[1]
    splits[5] = "test"
    features[12] = _normalise(features[2:3] + 0.02)[0]  # near copy of image 2 (class a) labelled b: label conflict
    table = table_for(names, splits, sha1)
    groups = duplicates.find_duplicates(table, features)
    assert [(g.indices, g.kind, g.label_conflict, g.leakage) for g in groups] == [
        ((2, 12), "near", True, False), ((1, 5), "exact", False, True)]
    assert groups[1].similarity == 1.0 and groups[0].similarity >= duplicates.CANDIDATE_SIMILARITY


def test_near_copies_join_into_one_group():
    features, labels = clusters(per_class=10, dims=64, spread=0.8)
    features = features.copy()
    features[3] = _normalise(features[0:1] + 0.01)[0]
    features[4] = _normalise(features[3:4] + 0.01)[0]
    groups = duplicates.find_duplicates(table_for(labels, ["train"] * 30), features)
    assert [g.indices for g in groups] == [(0, 3, 4)]
    assert not groups[0].label_conflict and not groups[0].leakage and groups[0].kind == "near"


def test_far_image_is_the_outlier_and_copies_do_not_hide_it():
    features, _ = clusters(per_class=20, dims=32, spread=0.3)
    rng = np.random.default_rng(5)
    odd = _normalise(rng.normal(size=(1, 32)).astype(np.float32))
    features = np.concatenate([features, odd, odd])  # the same off-topic frame twice
    found, scores = outliers.find_outliers(features)
    assert {item.index for item in found[:2]} == {60, 61}, "the off-topic frames are the farthest"
    assert len(found) <= 2 + 3, "ordinary images flagged"
    assert scores.shape == (62,) and scores[60] > np.percentile(scores[:60], 99)
    assert found[0].score >= found[-1].score


def test_confused_pairs_and_class_quality():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    probabilities = np.eye(3)[[0, 1, 1, 1, 0, 1, 2, 2]]
    pairs = overview.confused_pairs(labels, probabilities, ["a", "b", "c"])
    assert pairs == [{"classes": ["a", "b"], "count": 3, "a_as_b": 2, "b_as_a": 1}]
    scores = probabilities[np.arange(8), labels]
    quality = overview.class_quality(labels, scores, [1, 2, 4], ["a", "b", "c"])
    assert [row["class"] for row in quality] == ["a", "b", "c"]
    assert quality[0] == {"class": "a", "images": 3, "label_quality": pytest.approx(1 / 3, abs=1e-3), "issues": 2}


def test_benchmark_flips_the_asked_share_to_other_classes_the_same_way_each_time():
    from tltools.health.bench import flipped_labels

    labels = np.repeat(np.arange(4), 25)
    noisy, chosen = flipped_labels(labels, 4, 0.05, seed=3)
    assert len(chosen) == 5 and (noisy[chosen] != labels[chosen]).all()
    assert (np.delete(noisy, chosen) == np.delete(labels, chosen)).all()
    again, same = flipped_labels(labels, 4, 0.05, seed=3)
    assert (again == noisy).all() and (same == chosen).all()


def test_neighbours_of_some_rows_match_those_of_all_rows_and_never_the_row_itself():
    features, _ = clusters()
    every, every_similarity = outliers.neighbours(features, 4)
    some, some_similarity = outliers.neighbours(features, 4, rows=[7, 40])
    assert (some == every[[7, 40]]).all() and np.allclose(some_similarity, every_similarity[[7, 40]])
    assert 7 not in some[0] and 40 not in some[1]
    assert (np.diff(some_similarity, axis=1) <= 1e-6).all(), "nearest first"


@pytest.mark.parametrize("event, index", [
    (None, None), ({}, None), ({"selection": {"points": []}}, None),
    ({"selection": {"points": [{"customdata": 12, "x": 0.1}]}}, 12),
    ({"selection": {"points": [{"customdata": [5]}, {"customdata": 9}]}}, 5),
    ({"selection": {"points": [{"x": 1.0}]}}, None),
])
def test_the_clicked_map_point_names_its_image(event, index):
    from tltools.health.projection import selected_image

    assert selected_image(event) == index
