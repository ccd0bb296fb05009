"""Auto mode's fine-tuning rate: a tenth of the chosen head's, never so low that a far-from-ImageNet set
barely moves, nor so high that the unfrozen blocks forget what they learned."""

import pytest

from tltools.auto import FINE_TUNE_LEARNING_RATE, FINE_TUNE_MAX_LEARNING_RATE, fine_tune_learning_rate


@pytest.mark.parametrize("head_rate, expected", [
    (1e-4, FINE_TUNE_LEARNING_RATE),      # a timid head: the floor (the sample digits need at least 3e-4)
    (1e-3, FINE_TUNE_LEARNING_RATE),      # the default head rate
    (5e-3, 5e-4),                         # in between: a tenth
    (0.014, FINE_TUNE_MAX_LEARNING_RATE), # flowers12's searched head: 1.4e-3 collapsed validation accuracy
    (1.0, FINE_TUNE_MAX_LEARNING_RATE),
])
def test_fine_tuning_rate_is_a_tenth_of_the_heads_within_measured_bounds(head_rate, expected):
    assert fine_tune_learning_rate(head_rate) == pytest.approx(expected)
    assert FINE_TUNE_LEARNING_RATE <= fine_tune_learning_rate(head_rate) <= FINE_TUNE_MAX_LEARNING_RATE
