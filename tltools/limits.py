"""Safety limits for untrusted uploads, in one place.

Every limit can be changed through an environment variable ``TLTOOLS_<FIELD NAME>``, e.g.
``TLTOOLS_MAX_TOTAL_BYTES`` (read when
:func:`default_limits` is called) or by passing a :class:`Limits` to the
functions that take one.
"""

import dataclasses
import os

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
    """Return the limits, with any ``TLTOOLS_<FIELD>`` environment overrides applied.

    Raises:
        TLToolsError: An override is not a positive number (see :func:`env_number`).
    """
    values = {}
    for field in dataclasses.fields(Limits):
        variable = "TLTOOLS_" + field.name.upper()
        value = env_number(variable, None, kind=field.type, minimum=0, exclusive=True)
        if value is not None:
            values[field.name] = value
    return Limits(**values)


def env_number(variable: str, default, *, kind: type = int, minimum: float = 0, exclusive: bool = False):
    """Return the number in environment variable ``variable``, or ``default`` when it is unset or empty.

    Args:
        variable: The variable's name, e.g. ``TLTOOLS_MAX_ENTRIES``.
        default: Returned when the variable is unset or blank.
        kind: ``int`` (``1e9`` is accepted and becomes 1000000000) or ``float``.
        minimum: The smallest value allowed.
        exclusive: Whether ``minimum`` itself is refused (e.g. limits must be positive).

    Raises:
        TLToolsError: The value is not a number of that kind, or is below the minimum;
            the message names the variable, its value and what to set.
    """
    from tltools.errors import TLToolsError

    raw = os.environ.get(variable)
    if raw is None or raw.strip() == "":
        return default
    bound = f"a number {'>' if exclusive else '>='} {minimum:g}"
    try:
        value = kind(float(raw))
    except (ValueError, OverflowError):  # not a number, nan or inf as an int
        raise TLToolsError(f"{variable}={raw!r} is not a usable number; set it to {bound} or unset it") from None
    if not (value > minimum if exclusive else value >= minimum):  # also refuses nan
        raise TLToolsError(f"{variable}={raw!r} must be {bound}; set it to one or unset it")
    return value
