"""Where tltools writes files.

``TLTOOLS_HOME`` (default: the current directory) holds ``runs/`` and
``datasets/`` (extracted uploads). ``TLTOOLS_CACHE`` (default:
``~/.cache/tltools``) holds derived data that can be rebuilt at any time:
converted backbone weights and decoded-image / feature caches.
"""

import os
from pathlib import Path


def home_dir() -> Path:
    """Return the folder that holds runs and extracted datasets."""
    return Path(os.environ.get("TLTOOLS_HOME", ".")).expanduser()


def runs_dir() -> Path:
    """Return the folder that holds one sub-folder per training run."""
    return home_dir() / "runs"


def datasets_dir() -> Path:
    """Return the folder that uploaded archives are extracted into."""
    return home_dir() / "datasets"


def cache_dir() -> Path:
    """Return the folder for rebuildable caches (converted weights, features)."""
    default = Path.home() / ".cache" / "tltools"
    return Path(os.environ.get("TLTOOLS_CACHE", default)).expanduser()


def make_folder(path: Path | str, *, exist_ok: bool = True) -> Path:
    """Create ``path`` and its parents, and return it.

    Args:
        path: A folder under ``TLTOOLS_HOME`` or ``TLTOOLS_CACHE`` (or anywhere else).
        exist_ok: Accept a folder that already exists; when False an existing one
            raises ``FileExistsError`` as ``Path.mkdir`` does (callers use it to pick new names).

    Raises:
        TLToolsError: The folder cannot be created: a file is in the way, a parent is
            not writable, the disk is read-only or full. The message names the folder
            and the variable that moves it (``TLTOOLS_HOME`` or ``TLTOOLS_CACHE``).
    """
    from tltools.errors import TLToolsError

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=exist_ok)
    except FileExistsError:
        if not exist_ok and path.is_dir():
            raise
        problem = "a file is in the way"
    except OSError as error:
        problem = error.strerror or str(error)
    else:
        return path
    variable = _variable_for(path)
    value = os.environ.get(variable)
    setting = f"{variable}={value!r}" if value is not None else f"{variable} is unset (default {_default(variable)})"
    raise TLToolsError(
        f"cannot create the folder {path} ({problem}); {setting}: set {variable} to a folder you can write to"
    ) from None


def _variable_for(path: Path) -> str:
    """Return the environment variable that decides where ``path`` is: ``TLTOOLS_CACHE`` or ``TLTOOLS_HOME``."""
    absolute = Path(os.path.abspath(path))
    return "TLTOOLS_CACHE" if absolute.is_relative_to(os.path.abspath(cache_dir())) else "TLTOOLS_HOME"


def _default(variable: str) -> str:
    return "~/.cache/tltools" if variable == "TLTOOLS_CACHE" else "the current folder"
