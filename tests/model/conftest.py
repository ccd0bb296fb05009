"""Transfer models shared by the model tests, each built once per run (random weights, 96 px)."""

import pytest

from tltools.model import build_model

SMALL_SIZE = 96


@pytest.fixture(scope="session")
def registry_model():
    """Return ``get(name)``: the 3-class transfer model for a backbone, built on first use and kept.

    Tests that change a model's trainability build their own instead.
    """
    built = {}

    def get(name):
        if name not in built:
            built[name] = build_model(name, 3, weights="none", input_size=SMALL_SIZE)
        return built[name]

    return get
