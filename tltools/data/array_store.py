"""Arrays too big for memory: standard ``.npy`` files written and read row by row.

The files are ordinary ``.npy`` files (``np.load(path, mmap_mode="r")`` opens
them), but tltools reads them with positioned reads (``os.pread``) rather than
a memory map: pages of a mapped file count towards the process's resident set
once touched, so a memory-mapped 8 GB cache read over an epoch would make the
process *look* 8 GB large. A :class:`NpyRows` holds only a file descriptor; each
access reads just the rows asked for, from several threads at once if need be
(``tf.data`` gathers batches in parallel).

:func:`npy_writer` writes such a file atomically: the rows go into a temporary
file beside the target, in any order, and the file is renamed onto the target
only when the block finishes without error.
"""

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tltools.fileio import atomic_path


class NpyRows:
    """Read-only, row-indexable view of a 2-D-or-more ``.npy`` file on disk.

    Supports ``len()``, ``shape``, ``dtype``, ``nbytes``, indexing by an
    integer, a slice or an integer array (returning ``numpy`` arrays), and
    ``np.asarray`` (which reads everything).

    Args:
        path: A C-ordered ``.npy`` file, e.g. written by :func:`npy_writer`.

    Raises:
        ValueError: The file is not a C-ordered ``.npy`` file.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        with open(self.path, "rb") as file:
            version = np.lib.format.read_magic(file)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran_order, dtype = read_header(file)
            self._offset = file.tell()
        if fortran_order or dtype.hasobject or not shape:
            raise ValueError(f"{self.path} is not a C-ordered numeric .npy array with rows")
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        """Size of the whole array in bytes."""
        return self._row_bytes * self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            row = int(index) + (len(self) if index < 0 else 0)
            if not 0 <= row < len(self):
                raise IndexError(f"row {index} is out of range for {len(self)} rows")
            return self._read(row, 1)[0]
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return self._read(start, max(stop - start, 0))
            return self[np.arange(start, stop, step)]
        rows = np.asarray(index)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64, copy=False).reshape(-1)
        rows = np.where(rows < 0, rows + len(self), rows)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        for position, row in enumerate(rows):
            self._read_into(out[position:position + 1], int(row))
        return out

    def __array__(self, dtype=None, copy=None):
        array = self._read(0, len(self))
        return array if dtype is None else array.astype(dtype, copy=False)

    def _read(self, start: int, count: int) -> np.ndarray:
        out = np.empty((count, *self.shape[1:]), dtype=self.dtype)
        self._read_into(out, start)
        return out

    def _read_into(self, out: np.ndarray, start: int) -> None:
        """Fill the contiguous array ``out`` with ``len(out)`` rows from row ``start`` on."""
        view, position, end = memoryview(out.reshape(-1).view(np.uint8)), 0, len(out) * self._row_bytes
        while position < end:  # straight into the array: no second copy of what was read
            offset = self._offset + start * self._row_bytes + position
            if hasattr(os, "preadv"):
                read = os.preadv(self._fd, [view[position:]], offset)
            else:  # platforms without preadv: read, then copy
                data = os.pread(self._fd, end - position, offset)
                view[position:position + len(data)] = data
                read = len(data)
            if read == 0:
                raise OSError(f"{self.path} is shorter than its header says ({position} of {end} bytes read)")
            position += read

    def close(self) -> None:
        """Close the file descriptor (also done when the object is garbage-collected)."""
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        return f"NpyRows({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"


class _RowWriter:
    """Writes rows of a preallocated ``.npy`` file at their positions (see :func:`npy_writer`)."""

    def __init__(self, fd: int, offset: int, shape: tuple, dtype: np.dtype):
        self._fd, self._offset, self.shape, self.dtype = fd, offset, shape, dtype
        self._row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize

    def write(self, start: int, rows: np.ndarray) -> None:
        """Write consecutive ``rows`` from row ``start`` on."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.shape[1:] or start < 0 or start + len(rows) > self.shape[0]:
            raise ValueError(f"rows of shape {rows.shape} at {start} do not fit an array of shape {self.shape}")
        data, offset, written = memoryview(rows.reshape(-1).view(np.uint8)), self._offset + start * self._row_bytes, 0
        while written < len(data):  # pwrite may write less than asked (a filling disk, over 2 GiB at once)
            count = os.pwrite(self._fd, data[written:], offset + written)
            if count == 0:
                raise OSError(errno.ENOSPC, f"no byte of rows {start} on could be written (is the disk full?)")
            written += count

    def write_rows(self, positions, rows: np.ndarray) -> None:
        """Write ``rows[i]`` at row ``positions[i]``, for positions in any order."""
        for position, row in zip(positions, rows):
            self.write(int(position), row[np.newaxis])


@contextlib.contextmanager
def npy_writer(path: Path | str, shape: tuple, dtype) -> Iterator[_RowWriter]:
    """Create a ``.npy`` file of ``shape`` and ``dtype`` atomically, filled row by row.

    >>> with npy_writer(path, (n, 1280), np.float32) as out:
    ...     out.write(0, first_batch)

    The file appears at ``path`` only when the block succeeds; rows never
    written read as zeros.
    """
    dtype = np.dtype(dtype)
    shape = tuple(int(side) for side in shape)
    with atomic_path(path, suffix=".npy") as temporary:
        with open(temporary, "r+b") as file:
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(file, header)
            offset = file.tell()
            file.truncate(offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
            file.flush()
            yield _RowWriter(file.fileno(), offset, shape, dtype)
            os.fsync(file.fileno())


def load_rows(path: Path | str, *, memory_budget: int) -> np.ndarray | NpyRows:
    """Open a ``.npy`` file: read into memory when it fits ``memory_budget`` bytes, else as :class:`NpyRows`."""
    rows = NpyRows(path)
    if rows.nbytes <= memory_budget:
        rows.close()
        return np.load(path)
    return rows
