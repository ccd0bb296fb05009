"""Which backbones auto mode tries, in which order, and what it says about the others."""

import pytest

from tltools.auto.budget import Deadline
from tltools.auto.candidates import extract_candidates, keras_weights_cached, order_candidates
from tltools.backbones import get_backbone
from tltools.errors import TLToolsError


def test_offline_backbones_come_first_and_undownloaded_ones_are_skipped_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5").write_bytes(b"")

    names, skipped = order_candidates(["resnet50", "mobilenet_v2", "efficientnet_lite0", "vgg16"], "imagenet")

    assert names == ["efficientnet_lite0", "mobilenet_v2"]
    assert {item.backbone for item in skipped} == {"resnet50", "vgg16"}
    assert all("not downloaded" in item.reason for item in skipped)
    assert order_candidates(["resnet50", "efficientnet_lite0"], "none") == (["resnet50", "efficientnet_lite0"], [])


def test_downloaded_weights_are_recognised_by_their_own_names_only(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"")
    (tmp_path / "models" / "efficientnetv2-b0_notop.h5").write_bytes(b"")

    assert keras_weights_cached(get_backbone("resnet50_v2"))
    assert keras_weights_cached(get_backbone("efficientnet_v2_b0"))
    assert not keras_weights_cached(get_backbone("resnet50"))  # resnet50v2's file is not resnet50's
    assert not keras_weights_cached(get_backbone("efficientnet_b0"))


@pytest.mark.slow
def test_a_budget_too_small_for_any_features_is_refused_with_what_would_do(colours):
    ticks = iter(range(0, 10_000, 1))  # a clock where every look at the time costs a second

    with pytest.raises(TLToolsError, match=r"no backbone whose features fit the 3 s budget.*would do"):
        extract_candidates(colours, Deadline(3, clock=lambda: next(ticks)), backbones=["efficientnet_lite0"],
                           image_size=72, min_keep=1.0)
