"""tltools: transfer learning of image classifiers with TensorFlow/Keras.

The library behind the tltools Streamlit app and the ``python -m tltools`` CLI.
Subpackages: :mod:`tltools.data` (datasets in, ``tf.data`` pipelines out) and
:mod:`tltools.backbones` (pretrained backbones and the transfer model builder).
"""

import os

# TensorFlow's C++ start-up chatter (CUDA probing, CPU flags) hides real output; keep errors only.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tltools.errors import TLToolsError  # noqa: E402

__version__ = "0.1.0"

__all__ = ["TLToolsError", "__version__"]
