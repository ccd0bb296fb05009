"""Run every benchmark stage on one dataset and model, and compare them with the targets.

Stages run one after another, each by default in its own Python process
(:mod:`tltools.bench.stages`), so each reports its own peak memory and none
inherits another's caches. The benchmark works in a temporary folder: its own
``TLTOOLS_HOME`` (runs) and ``TLTOOLS_CACHE`` (so the feature cache starts
cold), sharing only the converted backbone weights with the real cache.
"""

import contextlib
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tltools import paths
from tltools.backbones import get_backbone
from tltools.bench import stages
from tltools.bench.data import default_data, generate_dataset, split_folders
from tltools.errors import TLToolsError

GENERATED_IMAGES = 480  # images of the generated dataset used when the shared flowers are absent


@dataclasses.dataclass
class BenchSettings:
    """What the benchmark runs.

    Attributes:
        data: Image folder; None uses ``../shared/datasets/flowers12`` or a generated set.
        backbone: Registry name of the backbone both pipelines use.
        weights: ``imagenet``, ``none`` or a weights file, for both.
        image_size: Input size; None uses the backbone's.
        batch_size: Images per step, for both.
        epochs: Frozen-base epochs, for both.
        learning_rate: Frozen-base learning rate (fine-tuning uses a tenth), for both.
        warm_epochs: Epochs of the warm-cache head retraining.
        warm_learning_rate: Its (new) learning rate.
        fine_tune_epochs: Fine-tuning epochs, for both; 0 skips the fine-tuning stages.
        unfreeze: What fine-tuning unfreezes (tltools' ``unfreeze`` setting), for both.
        augment: Augment during fine-tuning, for both (tltools then trains on images).
        seed: Split, shuffle and initialisation seed.
        val_fraction: Validation share when the data has no val split.
        test_fraction: Test share when the data has no test split.
        ceiling_images: Images the ceiling's ``predict`` runs on.
        scale_images: Also train tltools on a generated set of this many images (0: no).
        compile_options: Also measure ``jit_compile`` and ``steps_per_execution``.
        isolate: Run each stage in its own process (exact peak memory per stage).
        auto_budget: Also run auto mode within this many seconds, from an empty feature cache (0: no).
    """

    data: str | None = None
    backbone: str = "efficientnet_lite0"
    weights: str = "imagenet"
    image_size: int | None = None
    batch_size: int = 32
    epochs: int = 10
    learning_rate: float = 1e-3
    warm_epochs: int = 20
    warm_learning_rate: float = 3e-3
    fine_tune_epochs: int = 2
    unfreeze: str = "30"
    augment: bool = False
    seed: int = 42
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    ceiling_images: int = 256
    scale_images: int = 0
    compile_options: bool = False
    isolate: bool = True
    auto_budget: float = 0.0


def run_benchmark(settings: BenchSettings, *, progress=None) -> dict:
    """Run the stages and return machine, settings, per-stage results, ratios and targets.

    Args:
        settings: What to run.
        progress: Optional ``callable(str)`` told about each stage as it starts.

    Raises:
        TLToolsError: Unusable settings or data, or a stage that failed (with its error).
    """
    say = progress or (lambda text: None)
    spec = get_backbone(settings.backbone)
    size = settings.image_size or spec.default_size
    if settings.epochs < 1 or settings.warm_epochs < 1 or settings.fine_tune_epochs < 0:
        raise TLToolsError("epochs and warm epochs must be at least 1 and fine-tune epochs at least 0")
    machine_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="tltools-bench-"))
    try:
        context = _context(settings, size, work, say)
        results = {}
        names = ["ceiling", "baseline_frozen", "tltools_frozen_cold", "tltools_frozen_warm"]
        if settings.fine_tune_epochs:
            names += ["baseline_fine_tune", "tltools_fine_tune"]
        if settings.compile_options:
            names.append("compile_options")
        if settings.scale_images:
            say(f"generating {settings.scale_images} images of {size} px")
            context["scale_data"] = str(generate_dataset(work / "scale", images=settings.scale_images,
                                                         image_size=size, seed=settings.seed))
            names.append("scale")
        for name in names:
            say(f"running {name}")
            results[name] = run_stage(name, context, isolate=settings.isolate)
        if settings.auto_budget > 0:  # its own empty feature cache: the budget includes extracting features
            say(f"running tltools_auto ({settings.auto_budget:g} s budget)")
            results["tltools_auto"] = run_stage("tltools_auto", {**context, "cache": _empty_cache(work / "auto")},
                                                isolate=settings.isolate)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "machine": _machine(machine_before),
        "settings": {**dataclasses.asdict(settings), "data": context["data"], "image_size": size,
                     "images": context["counts"]},
        "stages": results,
    }
    report["ratios"] = ratios(results)
    report["targets"] = targets(results, report["ratios"])
    return report


def run_stage(name: str, context: dict, *, isolate: bool = True) -> dict:
    """Run one stage, in a new process when ``isolate``, and return its result with ``peak_rss_mb``.

    Without isolation the stage runs here; its peak memory is then measured by
    resetting the kernel's high-water mark (Linux), else it is the process's peak so far.

    Raises:
        TLToolsError: The stage failed; the message ends with its error output.
    """
    environment = {"TLTOOLS_HOME": context["home"], "TLTOOLS_CACHE": context["cache"]}
    if isolate:
        completed = subprocess.run(
            [sys.executable, "-m", "tltools.bench.stages", name], input=json.dumps(context), capture_output=True,
            text=True, env={**os.environ, **environment, "TF_CPP_MIN_LOG_LEVEL": "3"}, check=False,
        )
        if completed.returncode != 0:
            tail = "\n".join(completed.stderr.strip().splitlines()[-15:])
            raise TLToolsError(f"benchmark stage {name} failed (exit status {completed.returncode}):\n{tail}")
        return json.loads(completed.stdout.strip().splitlines()[-1])
    with _environment(environment), contextlib.redirect_stdout(sys.stderr):  # Keras prints ("Found N images")
        reset = _reset_peak_rss()
        result = stages.STAGES[name](context)
    result["peak_rss_mb"] = _vm_hwm_mb() if reset else stages.peak_rss_mb()
    return result


def ratios(results: dict) -> dict:
    """Return the comparisons the targets are about (None where a stage did not run; memory in MiB)."""
    def get(stage, key):
        return results.get(stage, {}).get(key)

    def divide(a, b):
        return round(a / b, 2) if a is not None and b else None

    baseline_epoch = get("baseline_fine_tune", "epoch_seconds")
    return {
        "frozen_speedup": divide(get("baseline_frozen", "seconds"), get("tltools_frozen_cold", "seconds")),
        "frozen_val_accuracy_difference": (
            None if get("tltools_frozen_cold", "val_accuracy") is None
            else round(get("tltools_frozen_cold", "val_accuracy") - get("baseline_frozen", "val_accuracy"), 4)),
        "warm_retrain_seconds": get("tltools_frozen_warm", "seconds"),
        "extraction_vs_ceiling": divide(get("tltools_frozen_cold", "extract_images_per_second"),
                                        get("ceiling", "images_per_second")),
        "fine_tune_epoch_speedup": divide(statistics.mean(baseline_epoch) if baseline_epoch else None,
                                          get("tltools_fine_tune", "mean_epoch_seconds")),
        "fine_tune_total_speedup": divide(get("baseline_fine_tune", "seconds"), get("tltools_fine_tune", "seconds")),
        "scale_peak_rss_mb": get("scale", "peak_rss_mb"),
        "auto_budget_share": divide(get("tltools_auto", "seconds"), get("tltools_auto", "budget_seconds")),
    }


def targets(results: dict, ratio: dict) -> list[dict]:
    """Return the issue's targets with the measured value and whether it was met (None: not measured)."""
    def check(value, ok):
        return None if value is None else bool(ok(value))

    rows = [
        ("frozen-base training end to end vs baseline", ">= 5x faster", ratio["frozen_speedup"],
         lambda v: v >= 5),
        ("frozen-base val accuracy vs baseline", ">= baseline", ratio["frozen_val_accuracy_difference"],
         lambda v: v >= 0),
        ("warm-cache head retraining (new LR)", "< 5 s", ratio["warm_retrain_seconds"], lambda v: v < 5),
        ("feature extraction vs ceiling images/s", ">= 80 %", ratio["extraction_vs_ceiling"], lambda v: v >= 0.8),
        ("fine-tuning epoch time vs baseline", ">= 1.5x faster", ratio["fine_tune_epoch_speedup"],
         lambda v: v >= 1.5),
        ("peak RSS training the scale dataset", "< 4 GB", ratio["scale_peak_rss_mb"],
         lambda v: v * 2**20 < 4e9),
        ("auto mode's wall time vs its budget", "<= 110 %", ratio["auto_budget_share"], lambda v: v <= 1.1),
    ]
    return [{"target": name, "goal": goal, "measured": value, "met": check(value, ok)}
            for name, goal, value, ok in rows]


def _context(settings: BenchSettings, size: int, work: Path, say) -> dict:
    """Prepare data, split folders and work folders; return what every stage needs."""
    from tltools.data import load_dataset

    data = Path(settings.data) if settings.data else default_data()
    if data is None:
        say(f"../shared/datasets/flowers12 not found: generating {GENERATED_IMAGES} images of {size} px")
        data = generate_dataset(work / "generated", images=GENERATED_IMAGES, image_size=size, seed=settings.seed)
    if not Path(data).is_dir():
        raise TLToolsError(f"benchmark data {data} is not a folder of images")
    dataset = load_dataset(data, val_fraction=settings.val_fraction, test_fraction=settings.test_fraction,
                           seed=settings.seed)
    cache = work / "cache"
    backbones = paths.cache_dir() / "backbones"
    backbones.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True)
    (cache / "backbones").symlink_to(backbones.resolve(), target_is_directory=True)
    folders = split_folders(dataset, work / "splits")
    context = {
        **{key: value for key, value in dataclasses.asdict(settings).items() if key not in ("data", "isolate")},
        "data": str(Path(data).resolve()), "image_size": size, "classes": dataset.classes,
        "folders": {split: str(folder) for split, folder in folders.items()},
        "counts": {split: int((dataset.items["split"] == split).sum()) for split in ("train", "val", "test")},
        "home": str(work / "home"), "cache": str(cache), "frozen_run": str(work / "home" / "frozen-run"),
        "baseline_weights": str(work / "baseline.weights.h5"),
    }
    return context


def _empty_cache(folder: Path) -> str:
    """Return a new, empty cache folder that shares the converted backbone weights (not features)."""
    folder.mkdir(parents=True)
    (folder / "backbones").symlink_to((paths.cache_dir() / "backbones").resolve(), target_is_directory=True)
    return str(folder)


def _machine(load_before) -> dict:
    """Describe the machine: CPU, cores, memory, library versions and the load around the run."""
    import keras
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = None
    with contextlib.suppress(OSError, ValueError):
        memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1)
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gb": memory, "python": platform.python_version(),
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


@contextlib.contextmanager
def _environment(values: dict):
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux ``clear_refs``); return whether it worked."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return stages.peak_rss_mb()


def format_report(report: dict) -> str:
    """Return the report as a table with the ratios and targets."""
    stages_ = report["stages"]
    settings = report["settings"]
    machine = report["machine"]
    epochs, warm, tune = settings["epochs"], settings["warm_epochs"], settings["fine_tune_epochs"]
    rows = [
        ("1. baseline: ImageDataGenerator + fit, frozen base", "baseline_frozen", f"{epochs} epochs"),
        ("2a. tltools frozen base, cold cache (incl. dataset check)", "tltools_frozen_cold", f"{epochs} epochs"),
        ("2b. tltools frozen base, warm cache, new LR", "tltools_frozen_warm", f"{warm} epochs"),
        (f"3a. baseline fine-tuning (unfreeze {settings['unfreeze']})", "baseline_fine_tune", f"{tune} epochs"),
        (f"3b. tltools fine-tuning (unfreeze {settings['unfreeze']})", "tltools_fine_tune", f"{tune} epochs"),
        ("4. ceiling: base predict on in-memory tensors", "ceiling",
         f"{stages_.get('ceiling', {}).get('images')} images"),
        (f"tltools from scratch on {stages_.get('scale', {}).get('images')} generated images", "scale",
         f"{epochs}+{tune} epochs"),
        (f"5. tltools auto mode, {settings.get('auto_budget', 0):g} s budget, empty cache", "tltools_auto",
         f"{stages_.get('tltools_auto', {}).get('trials')} trials"),
    ]
    lines = [
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB; TensorFlow "
        f"{machine['tensorflow']}, Keras {machine['keras']}; load average {machine['load_average_before'][0]} before, "
        f"{machine['load_average_after'][0]} after",
        f"Data: {settings['data']} ({settings['images']['train']} train / {settings['images']['val']} val / "
        f"{settings['images']['test']} test); {settings['backbone']} ({settings['weights']}), "
        f"{settings['image_size']} px, batch {settings['batch_size']}",
        "",
        f"{'path':<58} {'work':>10} {'wall s':>8} {'s/epoch':>8} {'img/s':>8} {'peak RSS MiB':>12} {'val acc':>8} "
        f"{'test acc':>8}",
    ]
    for label, key, work in rows:
        result = stages_.get(key)
        if result is not None:
            lines.append(
                f"{label:<58} {work:>10} {result['seconds']:>8.1f} {_cell(result.get('mean_epoch_seconds'), '.1f'):>8} "
                f"{_cell(result.get('images_per_second'), '.1f'):>8} {result['peak_rss_mb']:>12.0f} "
                f"{_cell(result.get('val_accuracy'), '.4f'):>8} {_cell(result.get('test_accuracy'), '.4f'):>8}")
    if "tltools_auto" in stages_:
        auto = stages_["tltools_auto"]
        lines.append(f"auto mode chose: {auto['chosen']}; fine-tuning {auto['fine_tuning']}; test macro F1 "
                     f"{_cell(auto['test_macro_f1'], '.4f')}")
    cold, warm_result = stages_.get("tltools_frozen_cold", {}), stages_.get("tltools_frozen_warm", {})
    lines += [
        "",
        f"Feature extraction (cold): {cold.get('feature_images')} images in {cold.get('feature_seconds')} s = "
        f"{cold.get('extract_images_per_second')} images/s (decode + base + write); warm retrain again in the "
        f"same process: {warm_result.get('seconds_again')} s",
        "",
        f"{'target':<46} {'goal':>16} {'measured':>10}  result",
    ]
    for row in report["targets"]:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[row["met"]]
        measured = "-" if row["measured"] is None else f"{row['measured']:g}"
        lines.append(f"{row['target']:<46} {row['goal']:>16} {measured:>10}  {verdict}")
    if "compile_options" in stages_:
        lines += ["", "jit_compile / steps_per_execution:"]
        for part, runs in stages_["compile_options"].items():
            if part == "peak_rss_mb":
                continue
            for run in runs:
                lines.append(f"  {part:<10} jit_compile={run['jit_compile']!s:<5} steps_per_execution="
                             f"{run['steps_per_execution']:<3} total {run['seconds']:>7.2f} s, first epoch "
                             f"{run['first_epoch_seconds']:.2f} s, later epochs {run['later_epoch_seconds']} s")
    return "\n".join(lines)


def _cell(value, spec: str) -> str:
    """Format a table cell; ``-`` for a missing value."""
    return "-" if value is None else format(value, spec)
