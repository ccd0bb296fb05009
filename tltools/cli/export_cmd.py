"""``python -m tltools export RUN_OR_MODEL --format FMT --out PATH [--images DIR]``: write a verified export.

A run folder (or run id) is calibrated and checked on its own training
images; a model file is checked on ``--images DIR`` when given, and needs it
for ``tflite-int8``. Prints the file written, its size, the check numbers and
any notes (how to feed an int8 model, why a check was skipped).
"""

import argparse
from pathlib import Path

from tltools.export import FORMATS, ExportResult, export_file, export_run
from tltools.model.io import SUFFIXES as MODEL_SUFFIXES


def add_parser(subparsers) -> None:
    """Register the ``export`` subcommand."""
    parser = subparsers.add_parser(
        "export",
        help="export a run's or a file's model: keras, h5, savedmodel, tflite (float32, fp16, int8) or a bundle",
        description="Export a trained model and check the export against the Keras model on training images. "
        "Formats: " + "; ".join(f"{name}: {spec.description} ({spec.suffix})" for name, spec in FORMATS.items()),
    )
    parser.add_argument("source", metavar="RUN_OR_MODEL", help="a run folder or run id, or a .keras/.h5 model file")
    parser.add_argument("--format", required=True, choices=list(FORMATS), dest="fmt", help="the export format")
    parser.add_argument("--out", required=True, metavar="PATH", help="the file to write, ending in the format's suffix")
    parser.add_argument("--images", metavar="DIR",
                        help="a folder of representative images: calibrates tflite-int8 and checks every format "
                        "(default for a run: its training images)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export and print what was written; return 0."""
    source = Path(args.source)
    export = export_file if source.is_file() or source.suffix.lower() in MODEL_SUFFIXES else export_run
    print(format_result(export(args.source, args.fmt, args.out, images_dir=args.images)))
    return 0


def format_result(result: ExportResult) -> str:
    """Return the readable report of one export: file, size, check numbers, notes."""
    lines = [f"wrote {result.path} ({result.format}, {_size(result.size_bytes)})"]
    if result.check is not None:
        check = result.check
        lines.append(
            f"check on {check['images']} images: max probability difference {check['max_prob_diff']:.3g}, "
            f"top-1 agreement {check['top1_agreement']:.1%}"
        )
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)


def _size(size_bytes: int) -> str:
    if size_bytes >= 1_000_000:
        return f"{size_bytes / 1e6:.1f} MB"
    return f"{size_bytes / 1e3:.1f} kB"
