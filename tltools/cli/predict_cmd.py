"""``python -m tltools predict``: classify images with a backbone's ImageNet head or a saved model.

``predict --backbone NAME IMAGE...`` uses the backbone's own 1000-class
ImageNet classifier, i.e. what the base recognises before fine-tuning.
``predict RUN_OR_MODEL IMAGE...`` uses a model saved by
``tltools.model.save_model`` (or a run folder holding ``model.keras``) and
its class names. Output: a readable block per image, or with ``--json`` one
line per image: ``{"image": PATH, "top": [{"index", "label", "prob"}, ...]}``.
"""

import argparse
import json

from tltools.backbones.imagenet import imagenet_class_names
from tltools.errors import TLToolsError
from tltools.model import build_imagenet_classifier, load_model
from tltools.prediction import predict_images


def add_parser(subparsers) -> None:
    """Register the ``predict`` subcommand."""
    parser = subparsers.add_parser(
        "predict",
        help="classify images with a backbone's ImageNet head or a saved model",
        description="Classify images. With --backbone NAME, use that backbone's own ImageNet classifier; "
        "otherwise the first argument is a model saved by tltools (.keras/.h5) or a run folder with "
        "model.keras, and its class names are used.",
        usage="%(prog)s (--backbone NAME | RUN_OR_MODEL) IMAGE... [--top-k K] [--json] [--image-size N]",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="[RUN_OR_MODEL] IMAGE...: images to classify")
    parser.add_argument("--backbone", metavar="NAME", help="classify with this backbone's ImageNet head")
    parser.add_argument("--top-k", type=int, default=5, metavar="K",
                        help="classes shown per image (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image and line")
    parser.add_argument("--image-size", type=int, metavar="N",
                        help="input size in pixels (default: the backbone's; a saved model's own size)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the top-k classes of every image; return 0."""
    model, class_names, images = _classifier(args)
    for prediction in predict_images(model, class_names, images, top_k=args.top_k):
        if args.json:
            print(json.dumps({"image": prediction.source, "top": prediction.top}))
        else:
            print(format_prediction(prediction.source, prediction.top))
    return 0


def format_prediction(image: str, top: list[dict]) -> str:
    """Return one image's predictions as an indented, readable block."""
    lines = [image]
    lines += [f"  {rank}. {item['prob']:7.2%}  {item['label']} ({item['index']})" for rank, item in enumerate(top, 1)]
    return "\n".join(lines)


def _classifier(args: argparse.Namespace):
    """Return ``(model, class names, image paths)`` for the arguments given."""
    if args.backbone:
        model = build_imagenet_classifier(args.backbone, input_size=args.image_size)
        return model, imagenet_class_names(), args.paths
    if len(args.paths) < 2:
        raise TLToolsError(
            "give --backbone NAME and images, or a model file / run folder followed by at least one image"
        )
    model, class_names, _ = load_model(args.paths[0])
    size = model.input_shape[1]
    if args.image_size not in (None, size):
        raise TLToolsError(
            f"--image-size {args.image_size} does not fit {args.paths[0]}, which takes {size}x{size} images"
        )
    return model, class_names, args.paths[1:]
