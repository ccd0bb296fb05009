"""Safety limits for untrusted uploads, in one place.

Every limit can be changed through an environment variable ``TLTOOLS_<FIELD NAME>``, e.g.
``TLTOOLS_MAX_TOTAL_BYTES`` (read by :class:`tltools.settings.Settings` when
:func:`default_limits` is called) or by passing a :class:`Limits` to the
functions that take one.
"""

import dataclasses

GIB = 1024**3
MIB = 1024**2


@dataclasses.dataclass(frozen=True)
class Limits:
    """Limits applied when ingesting an uploaded archive or folder.

    Attributes:
        max_total_bytes: Largest total uncompressed size of an archive.
        max_entries: Most entries (files and folders) in an archive.
        max_ratio: Largest uncompressed/compressed size ratio of one entry;
            only checked for entries of at least ``ratio_min_bytes`` so that
            tiny, very compressible files (a blank CSV) are not flagged.
        ratio_min_bytes: Entry size from which ``max_ratio`` applies.
        max_image_pixels: Largest image (width * height) decoded; larger ones
            are skipped as decompression bombs.
        max_classes: Most classes a dataset may have.
        max_model_bytes: Largest model (``.keras``, ``.h5``; for ``.keras``
            also its unpacked size) or weights file loaded or kept from an upload.
    """

    max_total_bytes: int = 4 * GIB
    max_entries: int = 200_000
    max_ratio: float = 200.0
    ratio_min_bytes: int = 1 * MIB
    max_image_pixels: int = 89_478_485  # Pillow's own default warning threshold
    max_classes: int = 1000
    max_model_bytes: int = 1 * GIB


def default_limits() -> Limits:
    """Return the limits with any ``TLTOOLS_<FIELD>`` environment overrides applied (see :mod:`tltools.settings`).

    Raises:
        TLToolsError: An override is not a positive number.
    """
    from tltools.settings import Settings  # settings builds on Limits

    return Settings.from_env().limits
