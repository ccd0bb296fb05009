"""Data health: likely label errors, duplicates, outliers and confused classes from cached features; dataset versions.

:func:`analyse` runs the whole analysis of a :class:`~tltools.data.Dataset`
(:class:`HealthReport`); :mod:`tltools.health.versions` writes and loads the
non-destructive dataset versions that accepted fixes become (and is light to import:
:func:`tltools.data.load_dataset` uses it, so this package imports the analysis lazily).
"""

__all__ = ["AnalysisStopped", "HealthReport", "analyse"]


def __getattr__(name: str):
    if name in __all__:
        from tltools.health import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module 'tltools.health' has no attribute {name!r}")
