"""Domain adaptation of a trained run to images of a new domain, from unlabelled images of it.

>>> from tltools.adapt import adapt
>>> result = adapt("runs/…", "new_camera_photos/", method="both", target_labels="a_few_labelled/")
>>> result.report["stages"]   # source-only, adabn, adabn + self-train: accuracy / agreement / confidence

:mod:`tltools.adapt.adabn` re-estimates BatchNorm statistics; :mod:`tltools.adapt.engine` runs the
methods and writes the run; :mod:`tltools.adapt.shift` makes the reproducible shifted test domain.
"""

from tltools.adapt.adabn import adapt_batchnorm, batchnorm_layers
from tltools.adapt.engine import ADAPT_FILE, DEFAULT_METHOD, METHODS, AdaptResult, adapt, stages_table, target_images

__all__ = ["ADAPT_FILE", "DEFAULT_METHOD", "METHODS", "AdaptResult", "adapt", "adapt_batchnorm", "batchnorm_layers", "stages_table", "target_images"]
