"""``python -m tltools distill TEACHER_RUN [--student B] [--image-size N] [--temperature T] [--alpha A] …``.

Trains a student backbone from a teacher run's softened probabilities plus the
true labels (:mod:`tltools.distill`; the trainer's ``--teacher-run`` option, so
``train DATA --teacher-run RUN`` is the same without the comparison) into a new,
ordinary run folder, and
prints the student's metrics and the comparison table (teacher, distilled
student, the same student trained alone: test accuracy, parameters, ``.keras``
and TFLite int8 size, latency per image).
"""

import argparse
import json

from tltools.cli.options import add_option
from tltools.distill import distill
from tltools.distill.engine import DEFAULT_IMAGE_SIZE, DEFAULT_STUDENT
from tltools.fileio import format_bytes
from tltools.training.config import TrainConfig

_FIELDS = TrainConfig.model_fields


def add_parser(subparsers) -> None:
    """Register the ``distill`` subcommand."""
    parser = subparsers.add_parser(
        "distill", help="train a small, fast student from a trained teacher run (knowledge distillation)",
        description="Distil a teacher run's model into a smaller student backbone: the student learns from the "
        "teacher's softened probabilities (temperature T) and the true labels (weight alpha), on the teacher's "
        "own split, with the teacher's seed and batch size. The teacher's logits are computed once and cached like "
        "features. The student is an ordinary run whose config.json names the teacher (train --teacher-run RUN "
        "does the same without the comparison).",
    )
    parser.add_argument("teacher", metavar="TEACHER_RUN", help="the teacher's run folder or run id")
    parser.add_argument("--student", default=DEFAULT_STUDENT, help=f"student backbone (default {DEFAULT_STUDENT})")
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE,
                        help=f"the student's input size in pixels (default {DEFAULT_IMAGE_SIZE})")
    add_option(parser, "distill_temperature", TrainConfig, "--temperature", dest="temperature")
    add_option(parser, "distill_alpha", TrainConfig, "--alpha", dest="alpha")
    parser.add_argument("--epochs", type=int, default=10, help=_FIELDS["epochs"].description + " (default 10)")
    add_option(parser, "learning_rate", TrainConfig, "--lr", "--learning-rate", dest="learning_rate")
    parser.add_argument("--fine-tune-epochs", type=int, default=0, help=_FIELDS["fine_tune_epochs"].description)
    parser.add_argument("--unfreeze", default="all", help=_FIELDS["unfreeze"].description)
    parser.add_argument("--unlabeled", metavar="DIR",
                        help="a folder of unlabelled images the teacher labels for the student (soft targets only)")
    parser.add_argument("--no-compare", dest="compare", action="store_false",
                        help="skip training the student alone and the size/latency comparison")
    parser.add_argument("--out", metavar="DIR", help="the new run folder (default: a new folder under runs/)")
    parser.add_argument("--json", action="store_true", help="print metrics and the distillation report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Distil and print the result; return 0."""
    result = distill(
        args.teacher, student=args.student, image_size=args.image_size, temperature=args.temperature,
        alpha=args.alpha, epochs=args.epochs, learning_rate=args.learning_rate,
        fine_tune_epochs=args.fine_tune_epochs, unfreeze=args.unfreeze, unlabeled=args.unlabeled,
        compare=args.compare, run_dir=args.out, on_message=None if args.json else print,
    )
    if args.json:
        print(json.dumps({"run": str(result.run.path), "val": result.metrics["val"]["accuracy"],
                          "test": (result.metrics.get("test") or {}).get("accuracy"), "report": result.report},
                         indent=2))
        return 0
    print(f"run: {result.run.path}")
    for split in ("val", "test"):
        if result.metrics.get(split):
            print(f"{split}: accuracy {result.metrics[split]['accuracy']:.4f}  "
                  f"loss (cross-entropy) {result.metrics[split]['loss']:.4f}")
    if "comparison" in result.report:
        print(format_comparison(result.report["comparison"]))
    return 0


def format_comparison(rows: list[dict]) -> str:
    """Return the comparison rows as an aligned text table."""
    lines = [f"{'model':<18} {'backbone':<20} {'px':>4} {'test acc':>8} {'params':>10} {'.keras':>10} "
             f"{'int8':>10} {'keras ms':>9} {'int8 ms':>8}"]
    for row in rows:
        accuracy = "" if row["test_accuracy"] is None else f"{row['test_accuracy']:.4f}"
        lines.append(f"{row['model']:<18} {row['backbone']:<20} {row['image_size']:>4} {accuracy:>8} "
                     f"{row['parameters']:>10,} {format_bytes(row['keras_bytes']):>10} "
                     f"{format_bytes(row['int8_bytes']):>10} {row['keras_ms']:>9.2f} {row['int8_ms']:>8.2f}")
    return "\n".join(lines)
