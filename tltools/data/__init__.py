"""Datasets in, clean labelled splits and ``tf.data`` pipelines out.

Main entry point: :func:`load_dataset` (a ``.zip`` or a folder → :class:`Dataset`).
"""

from tltools.data.archive import Skipped
from tltools.data.dataset import Dataset, extract_upload, load_dataset
from tltools.data.images import load_image, open_rgb

__all__ = ["Dataset", "Skipped", "extract_upload", "load_dataset", "load_image", "open_rgb"]
