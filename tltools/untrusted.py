"""Checks shared by the loaders of untrusted files: uploaded models and weights files.

Two things are checked here, before Keras or h5py read any data:

- **Size.** A model or weights file larger than ``Limits.max_model_bytes``
  (``TLTOOLS_MAX_MODEL_BYTES``, default 1 GiB) is refused, and so is a
  ``.keras`` archive whose members unpack to more.
- **HDF5 files that reach outside themselves.** An external link names
  another file, a dataset with external storage reads its values from any
  file path, a virtual dataset maps other files' datasets. Loading such a
  "weights" file would copy bytes of files on this computer into a model. A
  model or weights file never needs any of that.
"""

import h5py

from tltools.errors import TLToolsError
from tltools.fileio import format_bytes
from tltools.limits import Limits, default_limits

SIZE_VARIABLE = "TLTOOLS_MAX_MODEL_BYTES"


def check_model_size(what: str, size: int, limits: Limits | None = None) -> None:
    """Refuse a model or weights file of more than ``limits.max_model_bytes``.

    Args:
        what: How to name the file in the message, e.g. its path or upload name.
        size: Its size in bytes (for an archive: the size it unpacks to).
        limits: Defaults to :func:`tltools.limits.default_limits`.

    Raises:
        TLToolsError: ``size`` is over the limit; the message names the size,
            the limit and the variable that raises it.
    """
    limit = (limits or default_limits()).max_model_bytes
    if size > limit:
        raise TLToolsError(
            f"{what} is {_describe(size)}, over the {_describe(limit)} limit for model and weights files; "
            f"set {SIZE_VARIABLE} to a larger number of bytes if the file is genuine"
        )


def check_self_contained(file: h5py.Group, source: str) -> None:
    """Refuse an HDF5 file that links to or reads from other files.

    Args:
        file: The open file (or a group of it); every object reachable from it
            is visited, links themselves are not followed.
        source: How to name the file in the message (usually its path).

    Raises:
        TLToolsError: For an external link, a dataset stored in external
            files, or a virtual dataset; the message names the object.
        OSError: h5py cannot read the file's structure (damaged or truncated).
    """
    # h5py stops visiting at the first callback that returns something; raising inside one breaks h5py.
    def external_link(name: str, link):
        return (name, link.filename) if isinstance(link, h5py.ExternalLink) else None

    def foreign_dataset(name: str, item):
        if isinstance(item, h5py.Dataset) and (item.is_virtual or item.external):
            return name, "a virtual dataset" if item.is_virtual else "stored in external files"
        return None

    link = file.visititems_links(external_link)
    if link is not None:
        raise TLToolsError(
            f"{source} links its object {short(link[0])} to another file ({short(link[1])}); a model or "
            "weights file must hold its own data: save it again with Keras"
        )
    dataset = file.visititems(foreign_dataset)
    if dataset is not None:
        raise TLToolsError(
            f"{source}: dataset {short(dataset[0])} is {dataset[1]}, reading other files' data; a model or "
            "weights file must hold its own data: save it again with Keras"
        )


def short(value, limit: int = 80) -> str:
    """Return ``repr(value)`` cut to ``limit`` characters, for messages quoting untrusted names."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def first_line(error: BaseException, limit: int = 240) -> str:
    """Return an exception's message as one line of at most ``limit`` characters.

    Keras' loading errors run over several lines and quote whole layer
    configs; a user needs the first sentence.
    """
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(size: int) -> str:
    """``1536`` -> ``"1.5 KiB (1,536 bytes)"``; below 1 KiB just ``"1,000 bytes"``."""
    return f"{format_bytes(size)} ({size:,} bytes)" if size >= 1024 else f"{size:,} bytes"
