"""Exporting a trained model in every format, each export verified against the Keras model.

>>> from tltools.export import export_run
>>> result = export_run("runs/20250101-120000-pets-a1b2c3", "tflite-int8", "pets_int8.tflite")
>>> result.check
{'max_prob_diff': 0.04, 'top1_agreement': 1.0, 'images': 16}

Formats (:data:`FORMATS`): ``keras``, ``h5``, ``savedmodel`` (zip),
``tflite``, ``tflite-fp16``, ``tflite-int8`` and ``bundle`` (a zip with the
model, labels, preprocessing facts, a runnable ``predict.py`` and a model card).
:func:`export_model` exports an in-memory model; :func:`export_run` and
:func:`export_file` export a run's or a file's model, calibrating and checking
with the run's training images or a folder of images.
"""

from tltools.export.formats import FORMATS, ExportFormat, ExportResult, export_model
from tltools.export.run import export_file, export_run

__all__ = ["FORMATS", "ExportFormat", "ExportResult", "export_file", "export_model", "export_run"]
