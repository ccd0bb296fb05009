"""``python -m tltools export RUN_OR_MODEL --format FMT [--out PATH] [--images DIR]``: write a verified export.

A run folder (or run id) is exported into its own ``exports/`` folder, with
the check sidecar the Runs page keeps there too, calibrated and checked on
its own training images; it is built once per model and reused while the
model is unchanged; ``--out`` also copies it there. A model file is
written to ``--out`` and checked on ``--images DIR`` when given (which
``tflite-int8`` needs). Prints the file written, its size, the check numbers
and any notes (how to feed an int8 model, why a check was skipped).
"""

import argparse
from pathlib import Path

from tltools.errors import TLToolsError
from tltools.export import FORMATS, ExportResult, describe_export, export_file, export_run
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
    parser.add_argument("--out", metavar="PATH",
                        help="the file to write, ending in the format's suffix (default for a run: its exports/ "
                        "folder, where the app keeps it too; needed for a model file)")
    parser.add_argument("--images", metavar="DIR",
                        help="a folder of representative images: calibrates tflite-int8 and checks every format "
                        "(default for a run: its training images)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export and print what was written; return 0."""
    source = Path(args.source)
    if source.is_file() or source.suffix.lower() in MODEL_SUFFIXES:
        if args.out is None:
            raise TLToolsError(f"give --out PATH for the export of the model file {args.source}")
        result = export_file(args.source, args.fmt, args.out, images_dir=args.images)
    else:
        result = export_run(args.source, args.fmt, args.out, images_dir=args.images)
    print(format_result(result))
    return 0


def format_result(result: ExportResult) -> str:
    """Return the readable report of one export: file, size, check numbers, notes."""
    facts, *rest = describe_export(result)
    return "\n".join([f"wrote {result.path} ({facts})", *rest])
