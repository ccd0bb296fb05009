"""Transfer models: build, freeze and unfreeze, save and load with class names.

>>> from tltools.model import build_model, unfreeze_top, save_model, load_model
>>> model = build_model("efficientnet_lite0", ["cat", "dog"])   # base frozen
>>> unfreeze_top(model, 20)                                      # fine-tune later
>>> save_model(model, "runs/pets/model.keras", ["cat", "dog"])
>>> model, class_names, metadata = load_model("runs/pets")
"""

from tltools.model.builder import build_imagenet_classifier, build_model
from tltools.model.freezing import (
    apply_unfreeze,
    block_names,
    freeze_base,
    layer_table,
    parameter_totals,
    preview_unfreeze,
    unfreeze_all,
    unfreeze_from_block,
    unfreeze_top,
)
from tltools.model.io import load_model, save_model

__all__ = [
    "apply_unfreeze",
    "block_names",
    "build_imagenet_classifier",
    "build_model",
    "freeze_base",
    "layer_table",
    "load_model",
    "parameter_totals",
    "preview_unfreeze",
    "save_model",
    "unfreeze_all",
    "unfreeze_from_block",
    "unfreeze_top",
]
