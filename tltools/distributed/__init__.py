"""Data-parallel training with ``tf.distribute``: several worker processes (through Ray Train) or several GPUs.

- ``workers`` > 1 (``python -m tltools train DATA --workers N``): N worker processes, each
  running the run under ``MultiWorkerMirroredStrategy``, launched by Ray Train's
  ``TensorflowTrainer`` (which writes each worker's ``TF_CONFIG``) on the cluster
  ``TLTOOLS_RAY_ADDRESS`` names, or on a local Ray bound to 127.0.0.1 started for the run
  (:mod:`tltools.distributed.launch`).
- ``workers`` = 1 on a machine with several visible GPUs: ``MirroredStrategy`` in this process, no Ray.

Either way every phase trains through one custom loop (:mod:`tltools.distributed.loop`),
because Keras 3's ``fit`` fails under ``MultiWorkerMirroredStrategy``. Only the chief
(worker 0) writes the run folder and its checkpoints. ``metrics.json`` records
``workers`` and ``executor`` (``local``, ``mirrored`` or ``ray-mwms``) for every run.
"""

from tltools.errors import TLToolsError


def local_gpus() -> int:
    """Return how many GPUs TensorFlow sees in this process."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def wanted(config) -> bool:
    """Whether ``config`` trains through :mod:`tltools.distributed`: several workers, or one on several GPUs.

    A distillation on a machine with several GPUs trains on the first, as the distributed loop does not
    run the teacher's targets.

    Raises:
        TLToolsError: Several workers with a setting the distributed loop does not run (distillation).
    """
    distilling = bool(getattr(config, "teacher_run", None))
    if config.workers > 1 and distilling:
        raise TLToolsError(f"workers={config.workers}: distillation (teacher_run) trains in one process on one "
                           "device; set workers=1")
    return config.workers > 1 or (not distilling and local_gpus() > 1)  # distillation: one device, the first


def ray_installed() -> bool:
    """Whether Ray (``requirements-ray.txt``) can be imported here, so ``workers`` > 1 is offered."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def train(config, dataset, writer, **options):
    """Run ``config`` data-parallel into ``writer``'s run folder; see :func:`tltools.distributed.launch.train`."""
    from tltools.distributed.launch import train as launch_train

    return launch_train(config, dataset, writer, **options)
