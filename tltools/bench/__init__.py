"""``python -m tltools bench``: tltools' training paths against the classic tutorial way.

On the same data, backbone (architecture and weights), head, batch size and
epochs, :func:`run_benchmark` times

1. the tutorial baseline: ``ImageDataGenerator`` + ``flow_from_directory`` +
   frozen base + ``fit`` (:mod:`tltools.bench.baseline`, the only place that code lives);
2. tltools' frozen-base training, with the feature cache cold and then warm
   (a new learning rate and more epochs, as when someone moves the LR slider);
3. fine-tuning the same unfrozen layers, both ways;
4. the ceiling: the base's ``predict`` throughput on decoded tensors in memory;

and reports wall time, images/s, peak memory and validation accuracy of each,
with the ratios the performance targets are about.
"""

from tltools.bench.run import BenchSettings, format_report, run_benchmark

__all__ = ["BenchSettings", "format_report", "run_benchmark"]
