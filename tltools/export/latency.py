"""Latency per image of a run's model in each deployment format, at batch 1, on this CPU.

:func:`measure_run_latency` takes each format's verified export from the run's
``exports/`` folder (:func:`tltools.export.export_run` builds it there when it
is missing), loads it in its own runtime — Keras, TensorFlow (SavedModel), the
LiteRT/TFLite interpreter (float32 and int8) and ONNX Runtime — and times one
image at a time: :data:`WARMUP` untimed calls, then the median (and 90th
percentile) of ``repeats`` timed ones. The table is kept as
``<run>/exports/latency.json`` beside the exports, with the machine and the
thread counts it was measured with, so the Runs page and the model card show
the numbers without measuring again.
"""

import dataclasses
import os
import platform
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from tltools import runs
from tltools.data.pipeline import decode_images
from tltools.errors import TLToolsError
from tltools.export.run import EXPORTS_FOLDER, export_run, training_images
from tltools.fileio import format_bytes, read_json, write_json

LATENCY_FORMATS = ("keras", "savedmodel", "tflite", "tflite-int8", "onnx")
LATENCY_FILE = "latency.json"
WARMUP = 5
REPEATS = 50


@dataclasses.dataclass(frozen=True)
class Latency:
    """One format's measured latency.

    Attributes:
        format: The export format.
        runtime: What ran it (``keras``, ``tensorflow``, ``litert``/``tflite``, ``onnxruntime``).
        size_bytes: The export's file size.
        median_ms: Median milliseconds per image at batch 1.
        p90_ms: 90th percentile.
        threads: Threads the runtime was given (``0``: its own default, all cores).
        error: Why the format could not be measured (the other fields are then 0), else None.
    """

    format: str
    runtime: str
    size_bytes: int
    median_ms: float
    p90_ms: float
    threads: int
    error: str | None = None


def measure_run_latency(run_path, formats=LATENCY_FORMATS, *, repeats: int = REPEATS, threads: int | None = None,
                        on_progress=None) -> dict:
    """Export (or reuse) the run's model in each format and time one image at a time in each runtime.

    Args:
        run_path: A run folder or run id.
        formats: Export formats to measure (:data:`LATENCY_FORMATS` by default).
        repeats: Timed calls per format after :data:`WARMUP` untimed ones.
        threads: Threads for TFLite and ONNX Runtime; None: the machine's cores.
            TensorFlow (Keras, SavedModel) uses its own default, all cores.
        on_progress: Optional ``callable(format)`` before each format is measured.

    Returns:
        ``{"rows": [Latency as dict…], "machine": {...}, "repeats", "warmup", "batch": 1}``,
        also written to ``<run>/exports/latency.json``.

    Raises:
        TLToolsError: For a missing run or model, an unknown format or ``repeats`` below 1.
            A format whose export fails is a row with its error, not an exception.
    """
    if repeats < 1:
        raise TLToolsError(f"repeats={repeats} must be at least 1")
    unknown = [fmt for fmt in formats if fmt not in LATENCY_FORMATS]
    if unknown:
        raise TLToolsError(f"cannot time the format {unknown[0]!r}; use some of: {', '.join(LATENCY_FORMATS)}")
    run = runs.read_run(run_path)
    if not run.model_path.is_file():
        raise TLToolsError(f"run {run.run_id} has no model.keras yet; wait until its first epoch ends")
    threads = int(threads or os.cpu_count() or 1)
    image = None
    rows = []
    for fmt in formats:
        if on_progress is not None:
            on_progress(fmt)
        try:
            result = export_run(run.path, fmt)
            if image is None:
                image = _one_image(run, result)
            call, runtime, used = _runner(fmt, result.path, threads)
            median, p90 = _time(call, image, repeats)
            rows.append(Latency(fmt, runtime, result.size_bytes, median, p90, used))
        except TLToolsError as error:
            rows.append(Latency(fmt, "", 0, 0.0, 0.0, 0, error=str(error)))
    report = {"rows": [dataclasses.asdict(row) for row in rows], "machine": machine(), "repeats": repeats,
              "warmup": WARMUP, "batch": 1, "model": run.model_path.stat().st_mtime_ns}
    write_json(run.path / EXPORTS_FOLDER / LATENCY_FILE, report)
    return report


def kept_latency(run: runs.RunInfo) -> dict | None:
    """Return the run's last latency table (``exports/latency.json``) while its model is unchanged, else None."""
    path = run.path / EXPORTS_FOLDER / LATENCY_FILE
    if not path.is_file() or not run.model_path.is_file():
        return None
    report = read_json(path)
    return report if report.get("model") == run.model_path.stat().st_mtime_ns else None


def latency_table(report: dict):
    """Return a report's rows as a pandas DataFrame: format, runtime, size, ms per image (median, p90), threads
    ("all": TensorFlow's default) and, when a format could not be measured, the error."""
    import pandas as pd

    frame = pd.DataFrame(report["rows"])
    frame.insert(2, "size", [format_bytes(size) if size else "" for size in frame["size_bytes"]])
    frame["threads"] = ["all" if threads == 0 else str(threads) for threads in frame["threads"]]
    frame = frame.drop(columns=["size_bytes"] + (["error"] if frame["error"].isna().all() else []))
    return frame.rename(columns={"median_ms": "median ms/image", "p90_ms": "p90 ms/image"})


def format_latency(report: dict) -> str:
    """Return the latency table as aligned text, with a line saying on what and how it was measured."""
    machine_facts = report["machine"]
    lines = [f"latency per image at batch 1: median of {report['repeats']} runs after {report['warmup']} warm-up "
             f"runs; {machine_facts['cpu']} ({machine_facts['cores']} cores)",
             f"{'format':<12} {'runtime':<22} {'size':>10} {'median ms':>10} {'p90 ms':>8} {'threads':>8}"]
    for row in report["rows"]:
        if row["error"]:
            lines.append(f"{row['format']:<12} not measured: {row['error']}")
            continue
        threads = str(row["threads"]) if row["threads"] else "all"
        lines.append(f"{row['format']:<12} {row['runtime']:<22} {format_bytes(row['size_bytes']):>10} "
                     f"{row['median_ms']:>10.2f} {row['p90_ms']:>8.2f} {threads:>8}")
    return "\n".join(lines)


def machine() -> dict:
    """Return the CPU's name, its core count and the Python platform, for the record of a measurement."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform()}


def time_call(call, image: np.ndarray, repeats: int = REPEATS) -> tuple[float, float]:
    """Return the median and 90th-percentile milliseconds of ``call(image)`` after :data:`WARMUP` untimed calls."""
    return _time(call, image, repeats)


def keras_runner(model):
    """Return ``call(uint8 image batch)`` running a Keras model in inference mode (its traced predict step)."""
    return lambda batch: model.predict_on_batch(batch.astype(np.float32))


def _time(call, image: np.ndarray, repeats: int) -> tuple[float, float]:
    batch = image[None]
    for _ in range(WARMUP):
        call(batch)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call(batch)
        seconds.append(time.perf_counter() - started)
    milliseconds = np.array(seconds) * 1000
    return round(float(statistics.median(milliseconds)), 3), round(float(np.percentile(milliseconds, 90)), 3)


def _one_image(run: runs.RunInfo, result) -> np.ndarray:
    """A training image of the run at the model's size (a seeded noise image when none is left)."""
    from tltools.model.io import load_model

    size = int(load_model(run.path)[0].input_shape[1])
    paths, _ = training_images(run)
    if paths:
        return decode_images(paths[:1], size)[0]
    return np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _runner(fmt: str, path: Path, threads: int):
    """Return ``(call, runtime name, threads used)`` for the export at ``path``; TensorFlow's threads are reported as 0."""
    if fmt == "keras":
        from tltools.model.io import load_model

        return keras_runner(load_model(path)[0]), "keras predict_on_batch", 0
    if fmt == "savedmodel":
        import tensorflow as tf

        folder = tempfile.mkdtemp(prefix="tltools-latency-")
        with zipfile.ZipFile(path) as archive:
            archive.extractall(folder)
        loaded = tf.saved_model.load(folder)
        return (lambda batch: loaded.serve(tf.constant(batch, dtype=tf.float32)).numpy()), "tensorflow", 0
    if fmt in ("tflite", "tflite-int8"):
        from tltools.export import tflite

        interpreter = tflite._interpreter(path, threads)
        interpreter.allocate_tensors()
        source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

        def call(batch):
            interpreter.set_tensor(source["index"], tflite._quantize(batch.astype(np.float32), source))
            interpreter.invoke()
            return interpreter.get_tensor(target["index"])

        return call, interpreter.runtime, threads
    from tltools.export.onnx import onnx_session

    session = onnx_session(path, threads)
    name = session.get_inputs()[0].name
    return (lambda batch: session.run(None, {name: batch.astype(np.float32)})[0]), "onnxruntime", threads
