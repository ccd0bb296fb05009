"""Each backbone's input normalisation, as built-in Keras layers inside the model.

Transfer models take raw RGB pixels in 0..255 and normalise them with the
layer that :func:`preprocessing_layer` returns for the backbone's rule, so a
saved model needs neither tltools nor a separate preprocessing step, and loads
with ``safe_mode=True``. The rules reproduce Keras' own ``preprocess_input``:

==============  =====================================  ==========================
rule            what it computes on RGB 0..255         Keras family
==============  =====================================  ==========================
``[-1,1]``      ``x / 127.5 - 1``                      ``mode="tf"``: MobileNetV2,
                                                       ResNetV2, Inception, Xception
``(x-127)/128`` ``(x - 127) / 128``                    EfficientNet-Lite
``torch``       ``(x / 255 - mean) / std`` per channel  ``mode="torch"``: DenseNet
``caffe``       RGB -> BGR, minus the BGR mean          ``mode="caffe"``: VGG, ResNet
``none``        nothing: the backbone normalises       EfficientNet, EfficientNetV2,
                inside itself                          ConvNeXt, MobileNetV3
==============  =====================================  ==========================
"""

import keras
import numpy as np

from tltools.errors import TLToolsError

SCALE_PM1 = "[-1,1]"
LITE = "(x-127)/128"
TORCH = "torch"
CAFFE = "caffe"
NONE = "none"
RULES = (SCALE_PM1, LITE, TORCH, CAFFE, NONE)

# ImageNet statistics used by Keras' preprocess_input (imagenet_utils).
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def preprocessing_layer(rule: str) -> keras.layers.Layer | None:
    """Return a new layer that normalises RGB 0..255 input the way ``rule`` says.

    Args:
        rule: One of :data:`RULES` (a :class:`BackboneSpec`'s ``preprocessing``).

    Returns:
        A built-in Keras layer with no trainable weights (``Rescaling``,
        ``Normalization``, or a frozen 1x1 ``Conv2D`` named ``caffe_bgr_mean``
        that swaps RGB to BGR and subtracts the mean), or None for ``"none"``.

    Raises:
        TLToolsError: If ``rule`` is not one of :data:`RULES`.
    """
    if rule == SCALE_PM1:
        return keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess_to_pm1")
    if rule == LITE:
        return keras.layers.Rescaling(1 / 128, offset=-127 / 128, name="preprocess_lite")
    if rule == TORCH:
        mean = [255.0 * m for m in IMAGENET_MEAN_RGB]
        variance = [(255.0 * s) ** 2 for s in IMAGENET_STD_RGB]
        return keras.layers.Normalization(mean=mean, variance=variance, name="preprocess_torch")
    if rule == CAFFE:
        return _caffe_layer()
    if rule == NONE:
        return None
    raise TLToolsError(f"preprocessing rule {rule!r} is unknown; use one of {', '.join(RULES)}")


def _caffe_layer() -> keras.layers.Conv2D:
    """A frozen 1x1 convolution: output channel i = input channel 2 - i, minus the BGR mean."""
    kernel = np.zeros((1, 1, 3, 3), dtype="float32")
    for out_channel in range(3):
        kernel[0, 0, 2 - out_channel, out_channel] = 1.0
    bias = -np.asarray(CAFFE_MEAN_BGR, dtype="float32")
    return keras.layers.Conv2D(
        3,
        1,
        kernel_initializer=keras.initializers.Constant(kernel),
        bias_initializer=keras.initializers.Constant(bias),
        trainable=False,
        name="caffe_bgr_mean",
    )
