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
