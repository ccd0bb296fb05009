"""Pretrained backbones by name: the registry, its specs and one constructor.

>>> from tltools.backbones import create_backbone, get_backbone, list_backbones
>>> [spec.name for spec in list_backbones()][:2]
['efficientnet_lite0', 'efficientnet_lite1']
>>> base = create_backbone("efficientnet_lite0", weights="imagenet")  # offline

Every backbone expects input normalised by its own rule;
:func:`preprocessing_layer` returns that rule as a Keras layer for models
that take raw RGB 0..255 (see :mod:`tltools.model`).
"""

from tltools.backbones import keras_apps  # noqa: F401  (registers the built-in entries)
from tltools.backbones.preprocessing import preprocessing_layer
from tltools.backbones.registry import BackboneSpec, create_backbone, get_backbone, list_backbones, register

__all__ = [
    "BackboneSpec",
    "create_backbone",
    "get_backbone",
    "list_backbones",
    "preprocessing_layer",
    "register",
]
