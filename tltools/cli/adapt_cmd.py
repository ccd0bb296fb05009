"""``python -m tltools adapt RUN TARGET [--method adabn|self-train|both] [--target-labels PATH] [--out DIR]``.

Adapts a run's model to a new domain from unlabelled images of it
(:mod:`tltools.adapt`): AdaBN, self-training, or both. Prints one line per
stage (source-only, then each method): accuracy on the labelled target images
when given, else agreement with the source-only predictions and mean
confidence; and each self-training round's pseudo-label count.
"""

import argparse
import json

from tltools.adapt import DEFAULT_METHOD, METHODS, adapt
from tltools.adapt.engine import SOURCE_VIEWS, THRESHOLDS, UNFREEZE


def add_parser(subparsers) -> None:
    """Register the ``adapt`` subcommand."""
    parser = subparsers.add_parser(
        "adapt", help="adapt a run's model to a new domain from unlabelled images (AdaBN, self-training)",
        description="Adapt a trained run to images from a new camera, stain, season or site, given a folder or zip "
        "of unlabelled images of it. Writes a new run with the adapted model and adapt.json.",
    )
    parser.add_argument("run_path", metavar="RUN", help="the source run folder or run id")
    parser.add_argument("target", metavar="TARGET", help="a folder or .zip of unlabelled target-domain images")
    parser.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                        help="self-train (pseudo-labels and corrupted source images; default), adabn (BatchNorm "
                        "statistics only), or both (AdaBN, then self-training)")
    parser.add_argument("--target-labels", metavar="CSV_OR_LAYOUT",
                        help="labelled target images, for measuring only: a folder of class folders (any dataset "
                        "layout) or a labels CSV beside its images")
    parser.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS),
                        help="confidence threshold of each self-training round, rising (default 0.8 0.9 0.95)")
    parser.add_argument("--epochs-per-round", type=int, default=5, help="head epochs per self-training round")
    parser.add_argument("--source-views", type=int, default=SOURCE_VIEWS, metavar="N",
                        help="self-training: randomly corrupted copies (colour cast, blur, JPEG) of each source "
                        f"training image, labels kept (default {SOURCE_VIEWS}; 0: plain source images only)")
    parser.add_argument("--unfreeze", default=UNFREEZE or "none", metavar="SETTING",
                        help="self-training: base layers fine-tuned with the head: none (the head alone, default), "
                        "top-block (the backbone's last block), block:N or a number of top layers; BatchNorm stays "
                        "in inference mode. Check on labelled target images: it helped on one measured shift and "
                        "hurt on another")
    parser.add_argument("--out", metavar="DIR", help="the new run folder (default: a new folder under runs/)")
    parser.add_argument("--json", action="store_true", help="print the adaptation report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Adapt and print the report; return 0."""
    result = adapt(args.run_path, args.target, method=args.method, target_labels=args.target_labels,
                   thresholds=args.thresholds, epochs_per_round=args.epochs_per_round,
                   source_views=args.source_views, unfreeze=args.unfreeze, run_dir=args.out,
                   on_message=None if args.json else print)
    if args.json:
        print(json.dumps({"run": str(result.run.path), **result.report}, indent=2))
        return 0
    print(f"run: {result.run.path}")
    for stage, facts in result.report["stages"].items():
        print(f"{stage:<20} " + "  ".join(f"{key.replace('_', ' ')} {value}" for key, value in facts.items()))
    return 0
