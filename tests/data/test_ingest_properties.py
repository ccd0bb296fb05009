"""Property: any zip either loads with a consistent report or fails with TLToolsError, and never writes outside."""

import io
import os
import warnings
import zipfile
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import class_images, image_bytes
from tltools.data import load_dataset
from tltools.errors import TLToolsError
from tltools.limits import Limits

LIMITS = Limits(max_ratio=20, ratio_min_bytes=4096, max_entries=40)

SEGMENTS = st.sampled_from(
    ["cat", "dog", "train", "val", "test", "flowers", "chat noir", "犬", "été", "..", ".", "__MACOSX", ".hidden", "a b"]
)
FILE_NAMES = st.one_of(
    st.builds(
        "{}{}".format,
        st.sampled_from(["0", "1", "photo 2", "ünï", "写真", "._x", ".x", "README", "labels"]),
        st.sampled_from([".png", ".jpg", ".JPEG", ".gif", ".webp", ".tif", ".txt", ".csv", ""]),
    ),
    st.sampled_from([".DS_Store", "Thumbs.db", "desktop.ini"]),
)
CONTENTS = st.one_of(
    st.binary(max_size=48),  # random bytes posing as an image
    st.integers(0, 50).map(lambda seed: image_bytes(size=(8, 8), seed=seed)),
    st.just(b"file,label\n0.png,cat\n1.png,dog\nmissing.png,dog\n"),
    st.just(b"\0" * 8192),  # compresses far beyond LIMITS.max_ratio
)


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are part of the test
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A folder holding TLTOOLS_HOME (``home``) and a ``sentinel`` folder nothing may ever be written to."""
    base = tmp_path_factory.mktemp("sandbox")
    (base / "home").mkdir()
    (base / "sentinel").mkdir()
    return base


@settings(max_examples=50, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_any_zip_loads_consistently_or_fails_cleanly_and_writes_nothing_outside(sandbox, data):
    escapes = st.one_of(
        st.integers(1, 4).map(lambda depth: "../" * depth + "sentinel/"),
        st.just(str(sandbox / "sentinel") + "/"),
        st.sampled_from(["C:/", "c:\\", "/", "..\\..\\..\\sentinel\\"]),
    )
    names = st.builds(
        lambda escape, folders, name: escape + "/".join([*folders, name]),
        st.one_of(st.just(""), escapes),
        st.lists(SEGMENTS, max_size=3),
        FILE_NAMES,
    )
    entries = data.draw(st.lists(st.tuples(names, CONTENTS), max_size=10), label="entries")
    if data.draw(st.booleans(), label="with a valid class tree"):
        prefix = data.draw(st.sampled_from(["", "flowers/", "train/", "my data/"]), label="prefix")
        entries += list(class_images(per_class=2, size=(8, 8), prefix=prefix).items())

    with mock.patch.dict(os.environ, {"TLTOOLS_HOME": str(sandbox / "home")}):
        try:
            dataset = load_dataset(_zip(entries), limits=LIMITS)
        except TLToolsError as error:
            assert str(error).strip()
        else:
            report = dataset.report()
            assert report["num_images"] == sum(report["classes"].values())
            assert report["num_images"] == sum(sum(counts.values()) for counts in report["splits"].values())
            assert list(report["classes"]) == sorted(report["classes"])
            assert len(report["classes"]) >= 2 and min(report["classes"].values()) >= 2
            assert all(item["path"] and item["reason"].strip() for item in report["skipped"])
            assert all(path.resolve().is_relative_to(sandbox / "home") for path in dataset.paths("train"))

    assert list((sandbox / "sentinel").iterdir()) == []
    assert sorted(path.name for path in sandbox.iterdir()) == ["home", "sentinel"]
    datasets = sandbox / "home" / "datasets"
    assert not datasets.exists() or not [path for path in datasets.iterdir() if path.name.startswith(".")]
