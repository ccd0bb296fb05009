"""tltools: transfer learning of image classifiers with TensorFlow/Keras.

The library behind the tltools Streamlit app and the ``python -m tltools`` CLI.
Subpackages: :mod:`tltools.data` (datasets in, ``tf.data`` pipelines out) and
:mod:`tltools.backbones` (pretrained backbones and the transfer model builder).
"""

from tltools.errors import TLToolsError

__version__ = "0.1.0"

__all__ = ["TLToolsError", "__version__"]
