"""Fixtures shared by the export tests: one small transfer model per module, a fake run, its images."""

import pytest

from tests.export.helpers import SIZE, fabricate_run, train_paths, transfer_model
from tltools.data.pipeline import decode_images


@pytest.fixture(scope="module")
def model():
    return transfer_model()


@pytest.fixture(scope="module")
def run(tmp_path_factory, model):
    root = tmp_path_factory.mktemp("export-run")
    return fabricate_run(root / "run", root / "images", model)


@pytest.fixture(scope="module")
def images(run):
    return decode_images(train_paths(run.parent / "images"), SIZE)


@pytest.fixture(scope="module")
def expected(model, images):
    return model.predict(images.astype("float32"), verbose=0)
