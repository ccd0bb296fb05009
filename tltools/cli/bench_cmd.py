"""``python -m tltools bench [DATA] ...``: time tltools against the classic tutorial pipeline."""

import argparse
import json
import sys

from tltools.bench import BenchSettings, format_report, run_benchmark


def add_parser(subparsers) -> None:
    """Register the ``bench`` subcommand."""
    parser = subparsers.add_parser(
        "bench",
        help="benchmark tltools' training against ImageDataGenerator + fit on the same data and model",
        description="Time the tutorial baseline (ImageDataGenerator + flow_from_directory + frozen base + fit), "
                    "tltools' frozen-base training with a cold and a warm feature cache, fine-tuning both ways, "
                    "and the base's predict throughput on in-memory tensors; print wall time, images/s, peak "
                    "memory and validation accuracy of each, and the ratios.",
    )
    parser.add_argument("data", nargs="?",
                        help="image folder (default: ../shared/datasets/flowers12 if present, else a generated set)")
    parser.add_argument("--backbone", default="efficientnet_lite0", help="backbone (default %(default)s)")
    parser.add_argument("--weights", default="imagenet", help="imagenet (default), none, or a weights file")
    parser.add_argument("--image-size", type=int, help="input size in pixels (default: the backbone's)")
    parser.add_argument("--epochs", type=int, default=10, help="frozen-base epochs (default %(default)s)")
    parser.add_argument("--lr", type=float, default=1e-3, help="frozen-base learning rate (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step (default %(default)s)")
    parser.add_argument("--warm-epochs", type=int, default=20,
                        help="epochs of the warm-cache retraining (default %(default)s)")
    parser.add_argument("--warm-lr", type=float, default=3e-3,
                        help="learning rate of the warm-cache retraining (default %(default)s)")
    parser.add_argument("--fine-tune-epochs", type=int, default=2,
                        help="fine-tuning epochs, 0 to skip fine-tuning (default %(default)s)")
    parser.add_argument("--unfreeze", default="30", help="what fine-tuning unfreezes (default %(default)s)")
    parser.add_argument("--augment", action="store_true", help="augment while fine-tuning, both pipelines")
    parser.add_argument("--seed", type=int, default=42, help="seed (default %(default)s)")
    parser.add_argument("--scale", type=int, default=0, metavar="N",
                        help="also train tltools on N generated images and report its peak memory")
    parser.add_argument("--compile-options", action="store_true",
                        help="also measure jit_compile and steps_per_execution")
    parser.add_argument("--no-isolate", dest="isolate", action="store_false",
                        help="run every stage in this process (faster start; peak memory less exact)")
    parser.add_argument("--auto", type=float, default=0.0, metavar="SECONDS",
                        help="also run auto mode (train --auto) within SECONDS from an empty feature cache "
                             "(default: not run)")
    parser.add_argument("--job-start", type=int, default=0, metavar="REPEATS",
                        help="instead: time the warm-cache retrain (new learning rate, 20 epochs) from Start to a "
                             "saved model through the job runner, on a thread, in the warm worker and in a fresh "
                             "worker, REPEATS times each (tltools.bench.job_start)")
    parser.add_argument("--workers", metavar="N,N…",
                        help="instead: train once per worker count (e.g. 1,2; several: data-parallel through Ray "
                             "Train, tltools.distributed), each from a cold feature cache, and print wall time, "
                             "images/s and accuracy per count (tltools.bench.workers)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print the table (or JSON); return 0."""
    if args.workers:
        return _run_workers(args)
    if args.job_start:
        from tltools.bench import job_start

        report = job_start.run(args.data, args.job_start)
        print(json.dumps(report, indent=2) if args.json else job_start.format_report(report))
        return 0
    settings = BenchSettings(
        data=args.data, backbone=args.backbone, weights=args.weights, image_size=args.image_size,
        batch_size=args.batch_size, epochs=args.epochs, learning_rate=args.lr, warm_epochs=args.warm_epochs,
        warm_learning_rate=args.warm_lr, fine_tune_epochs=args.fine_tune_epochs, unfreeze=args.unfreeze,
        augment=args.augment, seed=args.seed, scale_images=args.scale, compile_options=args.compile_options,
        isolate=args.isolate, auto_budget=args.auto,
    )
    report = run_benchmark(settings, progress=lambda text: print(text, file=sys.stderr, flush=True))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _run_workers(args: argparse.Namespace) -> int:
    """``bench --workers 1,2``: the bench's training settings, trained once per worker count."""
    from tltools.bench import workers
    from tltools.data.augment import AugmentOptions
    from tltools.training import TrainConfig

    counts = workers.parse_counts(args.workers)
    config = TrainConfig(backbone=args.backbone, weights=args.weights, image_size=args.image_size,
                         batch_size=args.batch_size, epochs=args.epochs, learning_rate=args.lr,
                         fine_tune_epochs=args.fine_tune_epochs, unfreeze=args.unfreeze, seed=args.seed,
                         augment=AugmentOptions.light() if args.augment else AugmentOptions(),
                         early_stopping_patience=0, val_fraction=0.2)
    report = workers.run(args.data, counts, config, progress=lambda text: print(text, file=sys.stderr, flush=True))
    print(json.dumps(report, indent=2) if args.json else workers.format_report(report))
    return 0
