"""``python -m tltools train DATA ...``: train a transfer model from the command line."""

import argparse
import json
import sys

from tltools.data import load_dataset
from tltools.data.augment import AugmentOptions
from tltools.training import TrainConfig, TrainingLog, train
from tltools.training.config import OPTIMIZERS

# CLI option → TrainConfig field, for options that map one to one.
_FIELDS = {
    "backbone": "backbone", "weights": "weights", "image_size": "image_size", "epochs": "epochs",
    "fine_tune_epochs": "fine_tune_epochs", "unfreeze": "unfreeze", "lr": "learning_rate",
    "fine_tune_lr": "fine_tune_learning_rate", "optimizer": "optimizer", "batch_size": "batch_size",
    "val_split": "val_fraction", "test_split": "test_fraction", "seed": "seed",
    "patience": "early_stopping_patience", "class_weights": "class_weights",
    "label_smoothing": "label_smoothing", "dense_units": "dense_units", "dropout": "dropout",
    "pooling": "pooling",
}


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Add the options that choose the model (shared by ``train`` and ``lr-find``)."""
    parser.add_argument("--backbone", help="backbone name (default efficientnet_lite0; see `backbones`)")
    parser.add_argument("--weights", help="imagenet (default), none, or a path to a weights file")
    parser.add_argument("--image-size", type=int, help="input size in pixels (default: the backbone's)")
    parser.add_argument("--pooling", choices=("avg", "max", "flatten"), help="pooling of the feature map (default avg)")
    parser.add_argument("--dense-units", type=int, help="units of an extra ReLU layer in the head (default 0: none)")
    parser.add_argument("--dropout", type=float, help="dropout before the classifier (default 0.2)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, help="optimizer (default adam)")
    parser.add_argument("--batch-size", type=int, help="images per step (default 32)")
    parser.add_argument("--val-split", type=float, help="validation share when DATA has no val split (default 0.2)")
    parser.add_argument("--test-split", type=float, help="test share when DATA has no test split (default 0)")
    parser.add_argument("--seed", type=int, help="seed of split, shuffle, augmentation and init (default 42)")
    parser.add_argument("--config", help="a JSON config (as in a run's config.json); options given here override it")
    augment = parser.add_mutually_exclusive_group()
    augment.add_argument("--augment", dest="augment", action="store_true", default=None,
                         help="light augmentation: flip, small rotation, zoom, contrast")
    augment.add_argument("--no-augment", dest="augment", action="store_false", help="no augmentation (default)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Return the config file's settings (or the defaults) overridden by the given options."""
    values = TrainConfig.from_file(args.config).to_dict() if args.config else {}
    for option, field in _FIELDS.items():
        value = getattr(args, option, None)
        if value is not None:
            values[field] = value
    if args.augment is not None:
        values["augment"] = AugmentOptions.light() if args.augment else AugmentOptions()
    return TrainConfig.from_dict(values)


def add_parser(subparsers) -> None:
    """Register the ``train`` subcommand."""
    parser = subparsers.add_parser(
        "train",
        help="train a transfer model on a dataset and write a run folder",
        description="Two-phase transfer learning: train a new head on the frozen base, then optionally "
                    "fine-tune the top of the base with a lower learning rate.",
    )
    parser.add_argument("data", help="a .zip archive or a folder of images")
    add_model_options(parser)
    parser.add_argument("--epochs", type=int, help="phase-1 epochs, base frozen (default 10)")
    parser.add_argument("--lr", type=float, help="phase-1 learning rate (default 1e-3)")
    parser.add_argument("--fine-tune-epochs", type=int, help="phase-2 epochs with part of the base unfrozen (default 0)")
    parser.add_argument("--unfreeze", help="phase 2 unfreezes: all (default), N top layers, or block:N")
    parser.add_argument("--fine-tune-lr", type=float, help="phase-2 learning rate (default: --lr / 10)")
    parser.add_argument("--patience", type=int, help="early-stopping patience in epochs, 0 = off (default 5)")
    parser.add_argument("--class-weights", choices=("off", "balanced"), help="class weights (default off)")
    parser.add_argument("--label-smoothing", type=float, help="label smoothing, 0..0.5 (default 0)")
    parser.add_argument("--out", help="the run folder to write (default: a new folder under runs/)")
    parser.add_argument("--from-run", help="continue from this run's model (new head when the classes differ)")
    parser.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train and print the final metrics; return 0."""
    config = config_from_args(args)
    dataset = load_dataset(args.data, val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                           seed=config.seed)
    progress = ProgressPrinter()
    result = train(config, dataset, log=TrainingLog(), on_update=progress, from_run=args.from_run,
                   run_dir=args.out)
    progress.finish()
    if args.json:
        print(json.dumps({"run": str(result.run.path), **result.metrics}, indent=2))
    else:
        print(summary(result.run.path, result.metrics))
    return 0


class ProgressPrinter:
    """Draw a one-line progress bar on stderr and print one line per finished epoch."""

    def __init__(self, stream=None, width: int = 24):
        self.stream = stream or sys.stderr
        self.width = width
        self.epochs_printed = 0
        self.interactive = self.stream.isatty()

    def __call__(self, log) -> None:
        state = log.snapshot()
        while self.epochs_printed < len(state["epochs"]):
            epoch = state["epochs"][self.epochs_printed]
            self._clear()
            print(f"epoch {epoch['epoch']}/{state['total_epochs']}  " + _format_logs(epoch), file=self.stream)
            self.epochs_printed += 1
        if self.interactive and state["steps_per_epoch"]:
            done = state["step"] / state["steps_per_epoch"]
            bar = "#" * int(done * self.width)
            eta = f"ETA {state['eta']:.0f}s" if state["eta"] is not None else ""
            last = state["batches"][-1] if state["batches"] else {}
            self.stream.write(f"\r[{bar:<{self.width}}] epoch {state['epoch']}/{state['total_epochs']} "
                              f"loss {last.get('loss', float('nan')):.4f} lr {state['learning_rate'] or 0:.2g} {eta}  ")
            self.stream.flush()

    def finish(self) -> None:
        """End the progress line."""
        self._clear()

    def _clear(self) -> None:
        if self.interactive:
            self.stream.write("\r" + " " * (self.width + 70) + "\r")


def _format_logs(epoch: dict) -> str:
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    parts = [f"{key} {epoch[key]:.4f}" for key in keys if key in epoch]
    return "  ".join(parts + [f"lr {epoch['learning_rate']:.2g}", f"{epoch['seconds']:.1f}s"])


def summary(run_path, metrics: dict) -> str:
    """Return the final metrics as a few readable lines."""
    lines = [f"run: {run_path}", f"epochs: {metrics['epochs_run']} in {metrics['train_seconds']:.1f}s"
             + (" (stopped)" if metrics["stopped_by_user"] else "")]
    for split in ("val", "test"):
        result = metrics.get(split)
        if result:
            lines.append(f"{split}: accuracy {result['accuracy']:.4f}  macro F1 {result['macro_f1']:.4f}  "
                         f"loss {result['loss']:.4f}  ({result['num_images']} images)")
    return "\n".join(lines)
