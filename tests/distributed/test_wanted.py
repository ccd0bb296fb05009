"""Which runs train through tltools.distributed: several workers, or several GPUs unless distilling."""

import pytest

import tltools.distributed as distributed
from tltools.errors import TLToolsError
from tltools.training import TrainConfig


@pytest.mark.parametrize(("workers", "gpus", "teacher", "expected"), [
    (1, 0, None, False),
    (1, 1, None, False),
    (2, 0, None, True),
    (1, 4, None, True),         # MirroredStrategy over the local GPUs
    (1, 4, "teacher", False),   # distillation trains on one device, not refused
])
def test_distributed_when_there_is_more_than_one_device_to_use(monkeypatch, workers, gpus, teacher, expected):
    monkeypatch.setattr(distributed, "local_gpus", lambda: gpus)
    config = TrainConfig.model_construct(**{**TrainConfig().model_dump(), "workers": workers, "teacher_run": teacher})
    assert distributed.wanted(config) is expected


def test_several_workers_with_a_teacher_is_one_line(monkeypatch):
    monkeypatch.setattr(distributed, "local_gpus", lambda: 0)
    config = TrainConfig.model_construct(**{**TrainConfig().model_dump(), "workers": 2, "teacher_run": "t"})
    with pytest.raises(TLToolsError, match="^workers=2: distillation .* set workers=1$"):
        distributed.wanted(config)
