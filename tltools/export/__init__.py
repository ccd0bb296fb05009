"""Exporting a trained model in every format, each export verified against the Keras model.

>>> from tltools.export import export_run
>>> result = export_run("runs/20250101-120000-pets-a1b2c3", "tflite-int8")   # kept in the run's exports/
>>> result.check
{'max_prob_diff': 0.04, 'top1_agreement': 1.0, 'images': 16}

Formats (:data:`FORMATS`): ``keras``, ``h5``, ``savedmodel`` (zip),
``tflite``, ``tflite-fp16``, ``tflite-int8`` and ``bundle`` (a zip with the
model, labels, preprocessing facts, a runnable ``predict.py`` and a model card).
:func:`export_model` exports an in-memory model; :func:`export_run` exports a
run's model into the run's ``exports/`` folder with a check sidecar, built once
per model (the Runs page and the CLI share it); :func:`export_file` exports a
model file, checked on a folder of images.
"""

from tltools.export.formats import FORMATS, ExportFormat, ExportResult, export_model
from tltools.export.run import cached_export, describe_export, export_file, export_run, run_export_path

__all__ = [
    "FORMATS",
    "ExportFormat",
    "ExportResult",
    "cached_export",
    "describe_export",
    "export_file",
    "export_model",
    "export_run",
    "run_export_path",
]
