"""Property: any zip either loads with a consistent report or fails with TLToolsError, and never writes outside.

The random zips mix names with '..', absolute paths, drive letters, unicode, control
characters and names over 255 bytes; nesting; junk bytes posing as images; real images; a
labels CSV; nested zips and very compressible filler.
"""

import io
import os
import warnings
import zipfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.factories import class_images, image_bytes, zip_bytes
from tests.hostile import leftovers, tree, unaccounted, written_outside
from tltools.data import load_dataset
from tltools.errors import TLToolsError
from tltools.limits import Limits

LIMITS = Limits(max_ratio=20, ratio_min_bytes=4096, max_entries=40)

SEGMENTS = st.sampled_from(
    ["cat", "dog", "Cat", "train", "val", "test", "flowers", "chat noir", "犬", "été", "..", ".", "__MACOSX",
     ".hidden", "a b", "ca\nt", "L" * 260, "写" * 90]
)
FILE_NAMES = st.one_of(
    st.builds(
        "{}{}".format,
        st.sampled_from(["0", "1", "photo 2", "ünï", "写真", "._x", ".x", "README", "labels", "n" * 300, "tab\t"]),
        st.sampled_from([".png", ".jpg", ".JPEG", ".gif", ".webp", ".tif", ".txt", ".csv", ".zip", ""]),
    ),
    st.sampled_from([".DS_Store", "Thumbs.db", "desktop.ini"]),
)
CONTENTS = st.one_of(
    st.binary(max_size=48),  # random bytes posing as an image
    st.integers(0, 50).map(lambda seed: image_bytes(size=(8, 8), seed=seed)),
    st.just(b"file,label\n0.png,cat\n1.png,dog\nmissing.png,dog\n"),
    st.just(zip_bytes(class_images(per_class=2, size=(8, 8)))),  # a nested zip: never expanded
)
BOMB = b"\0" * 8192  # compresses far beyond LIMITS.max_ratio: refuses the whole archive, so only now and then


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are part of the test
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A folder holding TLTOOLS_HOME (``home``), TLTOOLS_CACHE and a ``sentinel`` folder nothing may be written to."""
    base = tmp_path_factory.mktemp("sandbox")
    for name in ("home", "cache", "sentinel"):
        (base / name).mkdir()
    return base


@pytest.mark.hostile
@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
@pytest.mark.slow
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
    if data.draw(st.sampled_from([False] * 5 + [True]), label="with a zip bomb entry"):
        entries.append((data.draw(names, label="bomb name"), BOMB))
    if data.draw(st.booleans(), label="with a valid class tree"):
        prefix = data.draw(st.sampled_from(["", "flowers/", "train/", "my data/"]), label="prefix")
        entries += list(class_images(per_class=2, size=(8, 8), prefix=prefix).items())

    archive = _zip(entries)
    before = tree(sandbox)
    with mock.patch.dict(os.environ, {"TLTOOLS_HOME": str(sandbox / "home"), "TLTOOLS_CACHE": str(sandbox / "cache")}):
        try:
            dataset = load_dataset(archive, limits=LIMITS)
        except TLToolsError as error:
            assert str(error).strip() and "\n" not in str(error)
            event(f"refused: {str(error)[:60]}")
        else:
            event("loaded")
            report = dataset.report()
            assert report["num_images"] == sum(report["classes"].values())
            assert report["num_images"] == sum(sum(counts.values()) for counts in report["splits"].values())
            assert list(report["classes"]) == sorted(report["classes"])
            assert len(report["classes"]) >= 2 and min(report["classes"].values()) >= 2
            assert all(item["path"] and item["reason"].strip() for item in report["skipped"])
            assert unaccounted(archive, dataset) == []  # every entry: an image, skipped with a reason, or documentation
            assert all(path.is_file() and path.resolve().is_relative_to(Path(dataset.root).resolve())
                       for split in ("train", "val", "test") for path in dataset.paths(split))
        assert written_outside(before, tree(sandbox), archive) == []
        assert leftovers(sandbox / "home" / "datasets") == []

    assert list((sandbox / "sentinel").iterdir()) == []
    assert sorted(path.name for path in sandbox.iterdir()) == ["cache", "home", "sentinel"]
