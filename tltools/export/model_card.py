"""The bundle's ``README.md``: a model card that says what the model is, how to run it, and its limits."""

import json
from collections.abc import Sequence

from tltools import __version__

# Metadata keys the card renders as sections, with their headings.
SECTIONS = (("config", "Training configuration"), ("dataset", "Dataset"), ("metrics", "Metrics"))
# A list longer than this (as JSON) is summarised by its length, not printed.
_LONGEST_LIST = 80


def model_card(class_names: Sequence[str], preprocessing: dict, metadata: dict) -> str:
    """Return the Markdown model card of a bundle.

    Args:
        class_names: Class names in output order.
        preprocessing: The bundle's ``preprocessing.json`` content.
        metadata: The model's metadata; ``backbone`` is used when present, and
            the dicts under ``config``, ``dataset`` and ``metrics`` become
            sections when present.

    Returns:
        The card as Markdown text.
    """
    backbone = metadata.get("backbone", "unknown backbone")
    size = preprocessing["input_size"]
    lines = [
        f"# {backbone} image classifier: {len(class_names)} classes",
        "",
        f"Exported by tltools {__version__}. Files: `model.keras` (the Keras model), `labels.txt` (one class "
        "per line, in output order), `preprocessing.json` (what the input must be) and `predict.py` (a runnable "
        "example).",
        "",
        "## Model",
        "",
        f"- Backbone: {backbone}, with a new classification head (softmax over the classes below).",
        f"- Input: RGB pixels in 0..255 as float, shape (N, {size}, {size}, 3); images resized whole "
        f"(resize: {preprocessing['resize']}; aspect ratio not kept).",
        f"- Normalisation: {preprocessing['normalisation']}; do not normalise the pixels yourself.",
        "- Output: one probability per class, in the order of `labels.txt`.",
        "",
        "## Classes",
        "",
        "| index | class |",
        "|---:|---|",
        *(f"| {index} | {_cell(name)} |" for index, name in enumerate(class_names)),
    ]
    for key, heading in SECTIONS:
        if isinstance(metadata.get(key), dict) and metadata[key]:
            lines += ["", f"## {heading}", "", "| | |", "|---|---|"]
            lines += [f"| {_cell(name)} | {_cell(value)} |" for name, value in _flatten(metadata[key])]
    lines += ["", *_usage(size, preprocessing["pillow_resample"]), "", *_limits(len(class_names), size)]
    return "\n".join(lines) + "\n"


def _usage(size: int, resample: str) -> list[str]:
    return [
        "## Use",
        "",
        "Install `tensorflow`, `keras`, `pillow` and `numpy`, then, in the unzipped folder:",
        "",
        "```",
        "python predict.py photo.jpg [more.jpg ...]",
        "```",
        "",
        "It prints the five most probable classes of each image. In your own code:",
        "",
        "```python",
        "import keras, numpy as np",
        "from PIL import Image",
        "",
        'model = keras.saving.load_model("model.keras")',
        'labels = open("labels.txt", encoding="utf-8").read().splitlines()',
        f'image = Image.open("photo.jpg").convert("RGB").resize(({size}, {size}), Image.Resampling.{resample})',
        'probs = model.predict(np.asarray(image, dtype="float32")[None], verbose=0)[0]',
        "print(labels[int(probs.argmax())], float(probs.max()))",
        "```",
    ]


def _limits(num_classes: int, size: int) -> list[str]:
    return [
        "## Limits",
        "",
        f"- It knows only these {num_classes} classes: every image gets one of them, even an image of "
        "something else. A low top probability is a hint, not a reliable \"unknown\".",
        "- The metrics were measured on held-out images of the same dataset; expect lower accuracy on "
        "images from other cameras, places, lighting or sources.",
        f"- Images are squashed to {size}x{size} pixels; small details in large images can be lost.",
        "- It inherits the biases and gaps of its training images (class balance, backgrounds, who or what "
        "was photographed).",
    ]


def _flatten(mapping: dict, prefix: str = ""):
    """Yield ``(dotted key, value)`` for every leaf of a nested dict, in order."""
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def _cell(value) -> str:
    """Return ``value`` as the text of one Markdown table cell."""
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, (list, tuple)):
        text = json.dumps(value, ensure_ascii=False)
        if len(text) > _LONGEST_LIST:
            text = f"({len(value)} values)"
    elif value is None:
        text = "-"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")
