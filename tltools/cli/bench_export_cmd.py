"""``python -m tltools bench-export RUN [--formats F …] [--repeats N] [--threads N] [--json]``: latency per format.

Exports the run's model in each format into its ``exports/`` folder (or reuses
the verified exports there), times one image at a time in each runtime and
prints file size and milliseconds per image (:mod:`tltools.export.latency`).
The table is kept as ``<run>/exports/latency.json``, which the Runs page shows.
"""

import argparse
import json

from tltools.export.latency import LATENCY_FORMATS, REPEATS, format_latency, measure_run_latency


def add_parser(subparsers) -> None:
    """Register the ``bench-export`` subcommand."""
    parser = subparsers.add_parser(
        "bench-export", help="latency per image at batch 1 and file size of a run's model in each export format",
        description="Export (or reuse) the run's model as " + ", ".join(LATENCY_FORMATS) + " and time one image "
        "at a time in Keras, TensorFlow, the LiteRT interpreter and ONNX Runtime (median after warm-up).",
    )
    parser.add_argument("run_path", metavar="RUN", help="a run folder or run id")
    parser.add_argument("--formats", nargs="+", choices=LATENCY_FORMATS, default=list(LATENCY_FORMATS),
                        metavar="F", help=f"formats to time (default: all of {', '.join(LATENCY_FORMATS)})")
    parser.add_argument("--repeats", type=int, default=REPEATS, help=f"timed calls per format (default {REPEATS})")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for LiteRT and ONNX Runtime (default: the machine's cores)")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure and print the table; return 0."""
    report = measure_run_latency(args.run_path, args.formats, repeats=args.repeats, threads=args.threads)
    print(json.dumps(report, indent=2) if args.json else format_latency(report))
    return 0
