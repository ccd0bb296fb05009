"""tltools: transfer learning of image classifiers with TensorFlow/Keras.

The library behind the tltools Streamlit app and the ``python -m tltools`` CLI.
Subpackages: :mod:`tltools.data` (datasets in, ``tf.data`` pipelines out),
:mod:`tltools.backbones` (pretrained backbones), :mod:`tltools.model` (the
transfer model, freezing, save/load), :mod:`tltools.training` (the two-phase
recipe), :mod:`tltools.evaluation`, :mod:`tltools.prediction` and
:mod:`tltools.export`. Only :mod:`tltools.streamlit_bridge` imports Streamlit.
"""

import os

# TensorFlow's C++ start-up chatter (CUDA probing on a machine without GPU, CPU flags) hides real
# output; errors that matter still surface as Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tltools.errors import TLToolsError  # noqa: E402

__version__ = "0.1.0"

__all__ = ["TLToolsError", "__version__"]
