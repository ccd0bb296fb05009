"""A full disk (ENOSPC) or a refused write (EACCES) during extraction, checkpointing and caching.

Each test makes one write fail at a chosen moment (tests run as root, where a
read-only folder made with chmod does not stop writes, so the failures are
injected; the one real chmod test skips as root) and checks what a user gets:
a one-line error naming the problem and what to do, no partial files, and
everything written before (other runs, earlier uploads, the last checkpoint)
untouched. A cache that cannot be written is only an optimisation lost:
training goes on without it and says so.
"""

import errno
import hashlib
import os
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.factories import class_images, fast_config, zip_bytes
from tltools import runs
from tltools.data import archive, load_dataset, pipeline
from tltools.data.array_store import npy_writer
from tltools.data.augment import AugmentOptions
from tltools.errors import TLToolsError
from tltools.model import load_model
from tltools.training import TrainingLog, feature_cache, train, trainer

pytestmark = [pytest.mark.hostile, pytest.mark.slow]  # each provokes a disk failure in a real training run

DISK_ERRORS = {
    "disk-full": (errno.ENOSPC, "No space left on device", "the disk is full", "free disk space"),
    "permission-denied": (errno.EACCES, "Permission denied", "permission denied", "make it writable"),
}
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def disk_error(kind: str, filename=None) -> OSError:
    code, text, _, _ = DISK_ERRORS[kind]
    return OSError(code, text, None if filename is None else str(filename))


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the SHA-256 of its bytes."""
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A TLTOOLS_HOME of this test's own."""
    monkeypatch.setenv("TLTOOLS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def other_run(home) -> Path:
    """A finished run folder that nothing in the test may touch."""
    folder = home / "runs" / "20250101-000000-efficientnet_lite0-000000"
    folder.mkdir(parents=True)
    (folder / "status.json").write_text('{"status": "completed", "created_at": "2025-01-01T00:00:00"}')
    (folder / "model.keras").write_bytes(b"an earlier run's model")
    (folder / "log.txt").write_text("00:00:00 completed\n")
    return folder


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    """An empty feature cache and decoded-image cache for one test (converted weights stay shared)."""
    monkeypatch.setattr(feature_cache, "features_dir", lambda: tmp_path / "cache" / "features")
    monkeypatch.setattr(pipeline, "cache_dir", lambda: tmp_path / "cache")
    return tmp_path / "cache"


# --- extraction -----------------------------------------------------------------------------------------------


class _FillingFile:
    """A file whose writes fail with ``error`` once ``room`` bytes have been written through any of them."""

    def __init__(self, handle, budget: dict, error: OSError):
        self._handle, self._budget, self._error = handle, budget, error

    def write(self, data) -> int:
        if self._budget["room"] < len(data):
            raise self._error
        self._budget["room"] -= len(data)
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


@pytest.mark.parametrize("kind", DISK_ERRORS)
def test_a_disk_failing_during_extraction_leaves_earlier_uploads_and_nothing_else(home, monkeypatch, kind):
    earlier = load_dataset(zip_bytes(class_images(("owl", "bat"))))  # an earlier upload, still in use
    before = snapshot(home / "datasets")
    budget = {"room": 3000}  # room for about one image, then the disk is full

    def filling_open(file, mode="r", *args, **kwargs):
        handle = open(file, mode, *args, **kwargs)
        return _FillingFile(handle, budget, disk_error(kind, file)) if "w" in mode or "x" in mode else handle

    monkeypatch.setattr(archive, "open", filling_open, raising=False)  # shadows the builtin in archive only

    with pytest.raises(TLToolsError) as raised:
        load_dataset(zip_bytes(class_images(per_class=6)))

    message = str(raised.value)
    assert "\n" not in message and "TLTOOLS_HOME" in message
    assert snapshot(home / "datasets") == before, "an earlier upload changed, or a partial extraction was left"
    assert not [path for path in (home / "datasets").iterdir() if path.name.startswith(".")]
    assert earlier.paths("train")[0].is_file()


# --- checkpointing -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", DISK_ERRORS)
def test_a_disk_failing_at_a_checkpoint_fails_the_run_clearly_and_keeps_the_last_checkpoint(
        colours, home, other_run, fresh_cache, monkeypatch, kind):
    _, _, problem, remedy = DISK_ERRORS[kind]
    others_before = snapshot(other_run)
    monkeypatch.setattr(trainer, "CHECKPOINT_INTERVAL", 0.0)  # write at every improvement
    real_save, saves = keras.Model.save, []

    def save_then_fail(model, filepath, *args, **kwargs):
        saves.append(Path(filepath))
        if len(saves) == 1:
            return real_save(model, filepath, *args, **kwargs)
        Path(filepath).write_bytes(b"PK\x03\x04 half a model")  # the disk filled up halfway through
        raise disk_error(kind, filepath)

    monkeypatch.setattr(keras.Model, "save", save_then_fail)

    with pytest.raises(TLToolsError) as raised:
        train(fast_config(epochs=8, learning_rate=3e-2), colours)

    assert len(saves) == 2, "the second checkpoint should have failed"
    (run_dir,) = [path for path in (home / "runs").iterdir() if path != other_run]
    run = runs.read_run(run_dir)
    message = str(raised.value)
    assert run.status == runs.FAILED and run.error == message
    assert "\n" not in message
    assert problem in message and remedy in message and "TLTOOLS_HOME" in message
    assert str(run_dir) in message and "last checkpoint" in message
    model, classes, _ = load_model(run_dir)  # the first checkpoint, whole
    assert classes == ["blue", "green", "red"] and model.output_shape == (None, 3)
    leftovers = [path.name for path in run_dir.iterdir() if path.name.startswith(".") or ".tmp" in path.name]
    assert leftovers == [], f"temporary files left in the run folder: {leftovers}"
    assert snapshot(other_run) == others_before


def test_a_full_disk_that_even_refuses_the_status_still_raises_the_disk_error(colours, home, fresh_cache,
                                                                             monkeypatch):
    """When nothing can be written any more, the user still gets the clear error (the status may lag)."""
    monkeypatch.setattr(trainer, "CHECKPOINT_INTERVAL", 0.0)
    monkeypatch.setattr(keras.Model, "save", lambda *args, **kwargs: (_ for _ in ()).throw(disk_error("disk-full")))
    real_set_status = runs.RunWriter.set_status

    def set_status(writer, status, error=None):
        if status == runs.FAILED:
            raise disk_error("disk-full", writer.path / "status.json")
        return real_set_status(writer, status, error)

    monkeypatch.setattr(runs.RunWriter, "set_status", set_status)

    with pytest.raises(TLToolsError, match="the disk is full"):
        train(fast_config(epochs=2), colours)


# --- caches: an optimisation lost, training goes on ------------------------------------------------------------


def _failing_pwrite(monkeypatch, kind: str, after: int = 1):
    """Make the row writes of .npy caches fail after ``after`` successful ones."""
    real, calls = os.pwrite, []

    def pwrite(fd, data, offset):
        calls.append(len(data))
        if len(calls) > after:
            raise disk_error(kind)
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    return calls


@pytest.mark.parametrize("kind", DISK_ERRORS)
def test_a_feature_cache_the_disk_refuses_falls_back_to_training_on_images(colours, home, fresh_cache,
                                                                           monkeypatch, kind):
    calls = _failing_pwrite(monkeypatch, kind)
    log = TrainingLog()

    result = train(fast_config(epochs=2), colours, log=log)

    assert calls, "the feature cache was never written"
    assert result.run.status == runs.COMPLETED
    assert result.metrics["fast_path"] is False and result.metrics["feature_cache"] is None
    line = next(message for message in log.snapshot()["messages"] if message.startswith("Phase 1 trains on images"))
    assert "feature cache could not be written" in line and DISK_ERRORS[kind][2] in line and "TLTOOLS_CACHE" in line
    assert "feature cache could not be written" in (result.run.path / "log.txt").read_text()
    features = fresh_cache / "features"
    assert not features.exists() or list(features.iterdir()) == [], "a partial feature cache was left"


def test_a_feature_description_the_disk_refuses_takes_its_array_with_it(colours, fresh_cache, monkeypatch):
    """The .npy is complete but its .json cannot be written: neither stays (a lone .npy is never a hit)."""
    key = feature_cache.FeatureKey("0" * 64, "test-entry", {"images": 4, "feature_shape": [3]})

    def refuse(*args, **kwargs):
        raise disk_error("disk-full", key.json_path)

    monkeypatch.setattr(feature_cache.fileio, "write_json", refuse)
    extractor = keras.Sequential([keras.Input((2, 2, 3)), keras.layers.GlobalAveragePooling2D()])
    images = np.zeros((4, 2, 2, 3), np.uint8)

    with pytest.raises(OSError):
        feature_cache.extract_features(extractor, [key], [(images, np.arange(4))])

    assert list((fresh_cache / "features").iterdir()) == []
    assert feature_cache.load_features(key) is None


@pytest.mark.parametrize("kind", DISK_ERRORS)
def test_a_decoded_image_cache_the_disk_refuses_falls_back_to_memory_with_a_warning(colours, home, fresh_cache,
                                                                                    monkeypatch, kind):
    monkeypatch.setenv("TLTOOLS_DECODE_MEMORY_BYTES", "0")  # every decoded image goes to the disk cache
    calls = _failing_pwrite(monkeypatch, kind, after=0)
    log = TrainingLog()

    result = train(fast_config(epochs=1, augment=AugmentOptions(flip="horizontal")), colours, log=log)

    assert calls, "the decoded-image cache was never written"
    assert result.run.status == runs.COMPLETED and result.metrics["val"]["accuracy"] is not None
    warning = next(message for message in log.snapshot()["messages"] if "decoded-image cache" in message)
    assert warning.startswith("Warning:") and "into memory instead" in warning and DISK_ERRORS[kind][2] in warning
    assert "decoded-image cache could not be written" in (result.run.path / "log.txt").read_text()
    decoded = fresh_cache / "decoded"
    assert not decoded.exists() or list(decoded.iterdir()) == [], "a partial decoded-image cache was left"


def test_decoded_images_that_fit_neither_disk_nor_memory_are_a_clear_error(colours, fresh_cache, monkeypatch):
    _failing_pwrite(monkeypatch, "disk-full", after=0)
    monkeypatch.setattr(pipeline, "available_memory", lambda: 1000)

    with pytest.raises(TLToolsError) as raised:
        pipeline.decode_images(colours.paths("train"), 32, memory_budget=0, cache_key="no-room")

    message = str(raised.value)
    assert "the disk is full" in message and "TLTOOLS_CACHE" in message and "do not fit in memory" in message
    assert list((fresh_cache / "decoded").iterdir()) == []


def test_an_interrupted_npy_write_leaves_no_file(tmp_path, monkeypatch):
    _failing_pwrite(monkeypatch, "disk-full", after=1)
    with pytest.raises(OSError), npy_writer(tmp_path / "a.npy", (4, 2), np.uint8) as out:
        out.write(0, np.ones((2, 2), np.uint8))
        out.write(2, np.ones((2, 2), np.uint8))
    assert list(tmp_path.iterdir()) == []


# --- a TLTOOLS_HOME that cannot be created or written -----------------------------------------------------------


def test_a_home_that_cannot_be_created_is_a_clear_error(colours, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("TLTOOLS_HOME", str(tmp_path / "a-file" / "home"))

    with pytest.raises(TLToolsError) as raised:
        train(fast_config(epochs=1), colours)
    with pytest.raises(TLToolsError) as extracting:
        load_dataset(zip_bytes(class_images()))

    for message in (str(raised.value), str(extracting.value)):
        assert "\n" not in message and "TLTOOLS_HOME" in message and str(tmp_path / "a-file") in message


def test_a_home_the_disk_refuses_to_write_is_a_clear_error(colours, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("TLTOOLS_HOME", str(home))
    real_mkdir = Path.mkdir

    def refuse_under_home(path, *args, **kwargs):
        if Path(path).is_relative_to(home):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse_under_home)

    with pytest.raises(TLToolsError) as raised:
        train(fast_config(epochs=1), colours)

    message = str(raised.value)
    assert "Permission denied" in message and "TLTOOLS_HOME" in message and str(home) in message
    assert not home.exists()


@pytest.mark.skipif(AS_ROOT, reason="runs as root, where a read-only folder (chmod 0o555) does not stop writes; "
                                    "the injected EACCES test above covers the same path")
@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions only")
def test_a_read_only_home_is_a_clear_error(colours, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "runs").mkdir(parents=True)
    home.chmod(0o555)
    (home / "runs").chmod(0o555)
    monkeypatch.setenv("TLTOOLS_HOME", str(home))
    try:
        with pytest.raises(TLToolsError) as raised:
            train(fast_config(epochs=1), colours)
        assert "TLTOOLS_HOME" in str(raised.value) and str(home / "runs") in str(raised.value)
        with pytest.raises(TLToolsError, match="TLTOOLS_HOME"):
            load_dataset(zip_bytes(class_images()))
    finally:
        (home / "runs").chmod(0o755)
        home.chmod(0o755)
