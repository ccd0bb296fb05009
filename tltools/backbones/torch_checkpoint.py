"""Read legacy (pre-1.6) PyTorch checkpoints into numpy arrays, without torch.

A legacy checkpoint is five pickles in a row (magic number, protocol version,
system info, the pickled object, the list of storage keys) followed by each
storage as an 8-byte little-endian element count and its raw little-endian
data. Tensors in the pickled object are ``(storage, offset, size, stride)``
views into those storages.

The pickles are read with a restricted unpickler: it resolves only the few
torch and collections names a state dict needs, to numpy-producing stand-ins,
and refuses every other global, so a crafted file cannot run code.
"""

import collections
import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tltools.errors import TLToolsError

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
}


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for a ``torch.*Storage`` class: only its element dtype matters."""

    dtype: np.dtype


@dataclass(frozen=True)
class _StorageRef:
    """A storage named in the pickle, whose data follows the pickles."""

    key: str
    dtype: np.dtype
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    """A tensor as a strided view into a storage, materialised later."""

    storage: _StorageRef
    offset: int
    size: tuple
    stride: tuple


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_ignored):
    """Stand-in for ``torch._utils._rebuild_tensor_v2`` that records the view."""
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the names in ``_ALLOWED_GLOBALS``."""

    def __init__(self, file, source):
        super().__init__(file)
        self._source = source

    def find_class(self, module, name):
        """Return the stand-in for an allowed global; refuse anything else."""
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise TLToolsError(
                f"{self._source}: refusing to load global '{module}.{name}' from the "
                "checkpoint; only plain tensor state dicts are supported"
            ) from None

    def persistent_load(self, pid):
        """Turn a ``('storage', type, key, location, numel, view)`` id into a ref."""
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise TLToolsError(f"{self._source}: unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType):
            raise TLToolsError(f"{self._source}: storage {key} has an unsupported type")
        if view_metadata is not None:
            raise TLToolsError(f"{self._source}: storage views are not supported")
        return _StorageRef(str(key), storage_type.dtype, int(numel))


def read_legacy_torch_checkpoint(path) -> dict[str, np.ndarray]:
    """Read a legacy (non-zip) torch state dict checkpoint into numpy arrays.

    Args:
        path: Path of a ``.pth`` file written by ``torch.save`` before torch
            1.6 (or with ``_use_new_zipfile_serialization=False``).

    Returns:
        The state dict, in file order, as ``{name: array}`` with one
        C-contiguous numpy array per tensor (``num_batches_tracked`` counters
        included).

    Raises:
        TLToolsError: If the file is missing, zip-format, not a legacy torch
            checkpoint, refers to any global other than the torch tensor
            helpers, or is truncated or inconsistent.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TLToolsError(f"cannot read checkpoint {path}: {exc.strerror}") from exc
    if zipfile.is_zipfile(io.BytesIO(data)):
        raise TLToolsError(
            f"{path}: zip-format torch checkpoint (torch >= 1.6) is not supported; "
            "only the legacy format can be read without torch"
        )
    try:
        return _parse(data, path)
    except TLToolsError:
        raise
    except Exception as exc:  # any parse failure of untrusted bytes
        raise TLToolsError(f"{path}: not a readable legacy torch checkpoint ({exc})") from exc


def _parse(data: bytes, path: Path) -> dict[str, np.ndarray]:
    """Parse the pickles and storages of a legacy checkpoint held in memory."""
    stream = io.BytesIO(data)

    def load():
        return _RestrictedUnpickler(stream, path).load()

    if load() != _MAGIC_NUMBER:
        raise TLToolsError(f"{path}: not a legacy torch checkpoint (wrong magic number)")
    if load() != _PROTOCOL_VERSION:
        raise TLToolsError(f"{path}: unsupported legacy torch protocol version")
    sys_info = load()
    if not sys_info.get("little_endian", False):
        raise TLToolsError(f"{path}: big-endian checkpoints are not supported")
    state = load()
    if not isinstance(state, dict):
        raise TLToolsError(f"{path}: checkpoint holds {type(state).__name__}, not a state dict")
    storage_keys = load()
    storages = _read_storages(data, stream.tell(), storage_keys, _storage_refs(state), path)
    return {name: _materialise(ref, storages, name, path) for name, ref in state.items()}


def _storage_refs(state: dict) -> dict[str, _StorageRef]:
    """Return the storages the state dict's tensors refer to, by key."""
    refs = {}
    for name, value in state.items():
        if not isinstance(value, _TensorRef):
            raise TLToolsError(f"state dict entry {name!r} is not a tensor")
        refs[value.storage.key] = value.storage
    return refs


def _read_storages(data, offset, keys, refs, path) -> dict[str, np.ndarray]:
    """Read each storage (8-byte count, then raw data) in the order of ``keys``."""
    storages = {}
    for key in keys:
        if key not in refs:
            raise TLToolsError(f"{path}: storage {key} is not used by any tensor")
        ref = refs[key]
        numel = int(np.frombuffer(data, dtype="<i8", count=1, offset=offset)[0])
        offset += 8
        if numel != ref.numel or offset + numel * ref.dtype.itemsize > len(data):
            raise TLToolsError(f"{path}: storage {key} is truncated or has a wrong size")
        storages[key] = np.frombuffer(data, dtype=ref.dtype, count=numel, offset=offset)
        offset += numel * ref.dtype.itemsize
    return storages


def _materialise(ref: _TensorRef, storages, name, path) -> np.ndarray:
    """Copy a tensor's strided view out of its storage, after a bounds check."""
    storage = storages.get(ref.storage.key)
    if storage is None:
        raise TLToolsError(f"{path}: tensor {name!r} refers to a missing storage")
    if len(ref.size) != len(ref.stride) or min(ref.stride + ref.size, default=0) < 0:
        raise TLToolsError(f"{path}: tensor {name!r} has an invalid size or stride")
    if 0 in ref.size:
        return np.zeros(ref.size, dtype=storage.dtype.newbyteorder("="))
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True))
    if ref.offset < 0 or last >= storage.size:
        raise TLToolsError(f"{path}: tensor {name!r} reaches outside its storage")
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset :],
        shape=ref.size,
        strides=tuple(s * storage.itemsize for s in ref.stride),
        writeable=False,
    )
    return np.array(view, dtype=storage.dtype.newbyteorder("="), order="C")
