"""``python -m tltools train DATA ...``: train a transfer model from the command line."""

import argparse
import json
import sys

from tltools.cli.options import add_options, values_from_args
from tltools.data import load_dataset
from tltools.training import TrainConfig, TrainingLog, train
from tltools.training.callbacks import objective_differs


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one option per :class:`TrainConfig` field (shared by ``train`` and ``lr-find``).

    Names, types, choices, defaults and help all come from the fields (see :mod:`tltools.cli.options`).
    """
    parser.add_argument("--config", help="a JSON config (as in a run's config.json); options given here override it")
    add_options(parser, TrainConfig, title="training settings (one per TrainConfig field)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Return the config file's settings (or the defaults) overridden by the given options.

    Raises:
        TLToolsError: The file or a setting is unusable (checked before any image is read).
    """
    values = TrainConfig.from_file(args.config).to_dict() if args.config else {}
    return TrainConfig.from_dict(values_from_args(args, TrainConfig, values))


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
    parser.add_argument("--out", help="the run folder to write (default: a new folder under runs/)")
    parser.add_argument("--from-run", help="continue from this run's model (new head when the classes differ)")
    parser.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train and print the final metrics; return 0."""
    config = config_from_args(args)
    dataset = load_dataset(args.data, split=config)
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
    """One epoch's line: cross-entropy loss and accuracy, train and validation, then the learning rate and time.

    When label smoothing (or class weights) make the minimised objective differ from the
    cross-entropy, the objective follows under its own name.
    """
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    if objective_differs(epoch):
        keys += ("objective", "val_objective")
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
                         f"loss (cross-entropy) {result['loss']:.4f}  ({result['num_images']} images)")
    return "\n".join(lines)
