"""ONNX export: written through Keras' exporter, read back with ONNX Runtime, checked like every format."""

import keras
import numpy as np
import pytest

from tests.export.helpers import CLASSES
from tltools.errors import TLToolsError
from tltools.export import FORMATS, export_model, export_run
from tltools.export.onnx import onnx_session, predict_onnx
from tltools.export.run import sidecar_path


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory, model, images):
    return export_model(model, CLASSES, "onnx", tmp_path_factory.mktemp("onnx") / "m.onnx", check_images=images)


@pytest.mark.slow
def test_onnx_export_agrees_with_keras(onnx_export, images, expected):
    assert onnx_export.check["top1_agreement"] == 1.0
    assert onnx_export.check["max_prob_diff"] <= FORMATS["onnx"].tolerance
    probs = predict_onnx(onnx_export.path, images)
    assert probs.shape == expected.shape
    assert np.abs(probs - expected).max() < 1e-4
    assert "float32 RGB pixels 0..255" in onnx_export.notes[0]


@pytest.mark.slow
def test_onnx_session_takes_pixels_of_any_batch(onnx_export, images):
    session = onnx_session(onnx_export.path, threads=1)
    (source,) = session.get_inputs()
    assert source.shape[1:] == [images.shape[1], images.shape[2], 3]
    one = session.run(None, {source.name: images[:1].astype(np.float32)})[0]
    assert one.shape == (1, len(CLASSES))


@pytest.mark.slow
def test_run_onnx_export_is_kept_in_exports_with_sidecar(run):
    result = export_run(run, "onnx")
    assert result.path == run / "exports" / f"{run.name}.onnx"
    assert sidecar_path(result.path).is_file()
    assert result.check["top1_agreement"] == 1.0


@pytest.mark.slow
def test_failed_conversion_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inputs)))

    def broken(*_args, **_kwargs):
        raise ValueError("unsupported op Foo\nlong converter trace")

    monkeypatch.setattr(keras.Model, "export", broken)
    with pytest.raises(TLToolsError, match=r"^the onnx conversion failed: unsupported op Foo; export tflite") as error:
        export_model(model, CLASSES, "onnx", tmp_path / "m.onnx", check_images=np.zeros((2, 8, 8, 3), np.uint8))
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_onnx_export_needs_onnx_suffix(tmp_path):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inputs)))
    with pytest.raises(TLToolsError, match="the onnx export is a .onnx file"):
        export_model(model, CLASSES, "onnx", tmp_path / "m.tflite")
