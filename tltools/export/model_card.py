"""The bundle's ``README.md``: a model card a person reads.

What the model is, its classes (with how well each is recognised), the data it
learnt from, an accuracy table, the settings that matter, for a distilled model its
teacher and the comparison with it, the latency per deployment format when it has
been measured, how to run it (with or without tltools; where the class names are)
and its limits. Raw metric arrays
(ROC curves, confusion matrices, misclassified files) stay in ``metrics.json``
of the run; the card summarises them.
"""

from collections.abc import Sequence

from tltools import __version__
from tltools.fileio import format_bytes
from tltools.model.io import INFO_MEMBER  # the class names inside a .keras file

# The headline numbers of one split, in the accuracy table: metrics.json key → column heading.
SCORES = {"accuracy": "accuracy", "macro_f1": "macro F1", "top_k_accuracy": "top-k accuracy", "loss": "loss",
          "ece": "ECE"}
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}
# The settings the card lists (config.json key → what it is called), when the run has them.
SETTINGS = {
    "backbone": "backbone", "weights": "starting weights", "image_size": "input size (px)",
    "epochs": "epochs, head on the frozen base", "learning_rate": "learning rate",
    "fine_tune_epochs": "fine-tuning epochs", "fine_tune_learning_rate": "fine-tuning learning rate",
    "unfreeze": "unfrozen for fine-tuning", "batch_size": "batch size", "label_smoothing": "label smoothing",
    "class_weights": "class weights", "seed": "seed",
}


def model_card(class_names: Sequence[str], preprocessing: dict, metadata: dict) -> str:
    """Return the Markdown model card of a bundle.

    Args:
        class_names: Class names in output order.
        preprocessing: The bundle's ``preprocessing.json`` content.
        metadata: The model's metadata: ``backbone`` when known, and optionally
            ``config`` (the run's settings), ``dataset`` (name, layout, images per
            split), ``metrics`` (``metrics.json``: per split ``accuracy``,
            ``macro_f1``, ``per_class``, …), ``latency`` (the run's kept latency table,
            :func:`tltools.export.latency.kept_latency`) and ``distillation`` (a
            distilled run's ``distill.json``).

    Returns:
        The card as Markdown text.
    """
    backbone = metadata.get("backbone", "unknown backbone")
    size = preprocessing["input_size"]
    metrics = metadata.get("metrics") if isinstance(metadata.get("metrics"), dict) else {}
    dataset = metadata.get("dataset") if isinstance(metadata.get("dataset"), dict) else {}
    config = metadata.get("config") if isinstance(metadata.get("config"), dict) else {}
    data_name = dataset.get("source") or dataset.get("name")
    lines = [
        f"# {backbone} image classifier: {len(class_names)} classes",
        "",
        f"Exported by tltools {__version__}. Files: `model.keras` (the Keras model), `labels.txt` (one class "
        "per line, in output order), `preprocessing.json` (what the input must be) and `predict.py` (a runnable "
        "example).",
        "",
        "## What it is",
        "",
        f"An image classifier that tells {_listing(class_names)} apart"
        + (f", trained on the images of `{_text(data_name)}`" if data_name else "") + ". "
        f"It is the {backbone} network pretrained on ImageNet with a new classification head, trained by transfer "
        "learning: it gives every image one probability per class, and the probabilities sum to 1.",
        "",
        "## Model",
        "",
        f"- Backbone: {backbone}, with a new classification head (softmax over the classes below).",
        f"- Input: RGB pixels in 0..255 as float, shape (N, {size}, {size}, 3); images resized whole "
        f"(resize: {preprocessing['resize']}; aspect ratio not kept).",
        f"- Normalisation: {preprocessing['normalisation']}; do not normalise the pixels yourself.",
        "- Output: one probability per class, in the order of `labels.txt`.",
        "",
        *_accuracy(metrics),
        *_classes(class_names, metrics),
        *_data(dataset),
        *_settings(config),
        *_distillation(_mapping(metadata, "distillation")),
        *_latency(_mapping(metadata, "latency")),
        *_usage(size, preprocessing["pillow_resample"]),
        "",
        *_limits(len(class_names), size, metrics),
    ]
    return "\n".join(lines) + "\n"


def _accuracy(metrics: dict) -> list[str]:
    """The accuracy table: one row per evaluated split, the headline numbers only."""
    splits = [split for split in ("val", "test") if isinstance(metrics.get(split), dict)]
    if not splits:
        return ["## Accuracy", "", "Not evaluated: the run ended before its metrics were computed.", ""]
    columns = [key for key in SCORES if any(metrics[split].get(key) is not None for split in splits)]
    top_k = next((metrics[split].get("top_k") for split in splits if metrics[split].get("top_k")), None)
    titles = [SCORES[key].replace("top-k", f"top-{top_k}") if top_k else SCORES[key] for key in columns]
    lines = ["## Accuracy", "", "Measured on images held out from training (never seen while learning).", "",
             "| images | " + " | ".join(titles) + " |", "|---|" + "---:|" * len(columns)]
    for split in splits:
        values = metrics[split]
        count = values.get("num_images")
        name = f"{SPLIT_NAMES[split]}" + (f" ({count})" if count is not None else "")
        lines.append(f"| {name} | " + " | ".join(_score(key, values.get(key)) for key in columns) + " |")
    lines += ["", "Accuracy: share of images whose most probable class is right. Macro F1: the mean over classes "
              "of the balance of precision and recall. ECE (expected calibration error): how far the confidence "
              "is from how often the model is right (0 is perfect).", ""]
    return lines


def _classes(class_names: Sequence[str], metrics: dict) -> list[str]:
    """The classes in output order, with each one's recall and F1 on the test (else validation) images."""
    split = next((name for name in ("test", "val") if isinstance((metrics.get(name) or {}).get("per_class"), dict)),
                 None)
    per_class = metrics[split]["per_class"] if split else {}
    if not per_class:
        return ["## Classes", "", "| index | class |", "|---:|---|",
                *(f"| {index} | {_text(name)} |" for index, name in enumerate(class_names)), ""]
    lines = ["## Classes", "", f"Output index, name, and how well each is recognised on the {SPLIT_NAMES[split]} "
             "images (recall: share of its images found; F1: recall and precision together).", "",
             "| index | class | images | recall | F1 |", "|---:|---|---:|---:|---:|"]
    for index, name in enumerate(class_names):
        row = per_class.get(name) or {}
        support = row.get("support")
        lines.append(f"| {index} | {_text(name)} | {'-' if support is None else support} | "
                     f"{_share(row.get('recall'))} | {_decimal(row.get('f1'))} |")
    return [*lines, ""]


def _data(dataset: dict) -> list[str]:
    """Where the images came from and how many were in each split (no local paths)."""
    if not dataset:
        return []
    lines = ["## Data", ""]
    name = dataset.get("source") or dataset.get("name")
    if name:
        lines.append(f"- Dataset: `{_text(name)}`" + (f" ({_text(dataset['layout'])} layout)"
                                                      if dataset.get("layout") else ""))
    counts = dataset.get("images per split") or {}
    if counts:
        lines.append("- Images: " + ", ".join(f"{counts[split]} {SPLIT_NAMES.get(split, split)}"
                                             for split in ("train", "val", "test") if split in counts))
    elif dataset.get("num_images") is not None:
        lines.append(f"- Images: {dataset['num_images']}")
    for warning in dataset.get("warnings") or []:
        lines.append(f"- Note: {_text(warning)}")
    return [*lines, ""]


def _settings(config: dict) -> list[str]:
    """The training settings that matter, in words; every setting is in the run's ``config.json``."""
    rows = [(title, config[key]) for key, title in SETTINGS.items() if config.get(key) not in (None, "")]
    if not rows:
        return []
    lines = ["## Training", "", "| setting | value |", "|---|---|"]
    lines += [f"| {title} | {_text(_plain(value))} |" for title, value in rows]
    return [*lines, "", "Every setting is in the training run's `config.json`.", ""]


def _mapping(metadata: dict, key: str) -> dict:
    value = metadata.get(key)
    return value if isinstance(value, dict) else {}


def _distillation(report: dict) -> list[str]:
    """A distilled model's teacher and settings, and the comparison with the teacher and the student trained alone."""
    settings = report.get("settings") or {}
    if not settings:
        return []
    lines = ["## Distillation", "",
             f"This model is a student distilled from the teacher run `{_text(settings.get('teacher'))}` "
             f"({_text(settings.get('teacher_backbone', 'unknown backbone'))} at "
             f"{settings.get('teacher_image_size', '?')} px): it learnt from the teacher's probabilities softened "
             f"at temperature {_plain(settings.get('temperature'))} and from the true labels (weight "
             f"{_plain(settings.get('alpha'))})"
             + (f", plus {settings['unlabeled_images']} unlabelled images the teacher labelled"
                if settings.get("unlabeled_images") else "") + ".", ""]
    rows = report.get("comparison") or []
    if rows:
        lines += ["| model | backbone | input px | test accuracy | parameters | .keras | TFLite int8 | "
                  "Keras ms/image | int8 ms/image |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {_text(row['model'])} | {_text(row['backbone'])} | {row['image_size']} | "
                  f"{_share(row.get('test_accuracy'))} | {row['parameters']:,} | {format_bytes(row['keras_bytes'])} | "
                  f"{format_bytes(row['int8_bytes'])} | {row['keras_ms']:.2f} | {row['int8_ms']:.2f} |"
                  for row in rows]
        lines += ["", "The student alone is the same backbone, settings and images trained without the teacher. "
                  "Latency: milliseconds per image at batch 1 (median) on the machine that trained it.", ""]
    return lines


def _latency(report: dict) -> list[str]:
    """The latency per deployment format, as measured for this model (``bench-export``)."""
    rows = [row for row in report.get("rows") or [] if not row.get("error")]
    if not rows:
        return []
    machine = report.get("machine") or {}
    lines = ["## Latency", "",
             f"Milliseconds per image at batch 1: median (and 90th percentile) of {report.get('repeats', '?')} runs "
             f"after {report.get('warmup', '?')} warm-up runs, on {_text(machine.get('cpu', 'an unknown CPU'))} "
             f"({machine.get('cores', '?')} cores). Threads: as listed; \"all\" is TensorFlow's default. Measure on "
             "the device you deploy to before deciding: other work on the machine changes these figures.", "",
             "| format | runtime | size | median ms | p90 ms | threads |", "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {_text(row['format'])} | {_text(row['runtime'])} | {format_bytes(row['size_bytes'])} | "
              f"{row['median_ms']:.2f} | {row['p90_ms']:.2f} | {row['threads'] or 'all'} |" for row in rows]
    return [*lines, ""]


def _usage(size: int, resample: str) -> list[str]:
    return [
        "## How to run it",
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
        "",
        "**Class names.** `labels.txt` names output i on line i + 1. `model.keras` carries them too: it is a zip "
        f"with an extra member `{INFO_MEMBER}` (`{{\"class_names\": [...], \"metadata\": {{...}}}}`), which Keras "
        "ignores and `tltools.model.load_model` reads; `json.loads(zipfile.ZipFile(\"model.keras\")"
        f".read(\"{INFO_MEMBER}\"))[\"class_names\"]` reads it without tltools. A `.tflite` export holds no "
        "class names: use `labels.txt`.",
    ]


def _limits(num_classes: int, size: int, metrics: dict) -> list[str]:
    lines = [
        "## Limits",
        "",
        f"- It knows only these {num_classes} classes: every image gets one of them, even an image of "
        "something else. A low top probability is a hint, not a reliable \"unknown\".",
        "- The accuracy was measured on held-out images of the same dataset; expect lower accuracy on "
        "images from other cameras, places, lighting or sources.",
        f"- Images are squashed to {size}x{size} pixels; small details in large images can be lost.",
        "- It inherits the biases and gaps of its training images (class balance, backgrounds, who or what "
        "was photographed).",
    ]
    split = next((name for name in ("test", "val") if isinstance((metrics.get(name) or {}).get("per_class"), dict)),
                 None)
    if split:
        recalls = {name: row.get("recall") for name, row in metrics[split]["per_class"].items()
                   if isinstance(row, dict) and row.get("recall") is not None}
        weakest = sorted(recalls, key=recalls.get)[:3]
        if weakest and recalls[weakest[0]] < 1:
            lines.append("- Least reliable classes on the " + SPLIT_NAMES[split] + " images: "
                         + ", ".join(f"{_text(name)} ({_share(recalls[name])} found)" for name in weakest) + ".")
    return lines


def _listing(names: Sequence[str], most: int = 12) -> str:
    """``a, b and c`` (the first ``most`` names, then how many more)."""
    shown = [_text(name) for name in names[:most]]
    if len(names) > most:
        return f"{', '.join(shown)} and {len(names) - most} more classes"
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"


def _score(key: str, value) -> str:
    if value is None:
        return "-"
    return _share(value) if key.endswith("accuracy") else _decimal(value)


def _share(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _decimal(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _plain(value) -> str:
    """A setting as a person reads it: lists joined, booleans as yes/no, numbers short."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key} {item}" for key, item in value.items() if item not in (None, False, 0, ""))
    return str(value)


def _text(value) -> str:
    """``value`` as the text of one Markdown table cell or line: no pipes, no line breaks."""
    return str(value).replace("|", "\\|").replace("\n", " ")
