"""``python -m tltools clean [--dry-run] [--json]``: delete old and over-budget datasets and caches now."""

import argparse
import dataclasses
import json

from tltools import housekeeping
from tltools.fileio import format_bytes
from tltools.errors import TLToolsError


def add_parser(subparsers) -> None:
    """Register the ``clean`` subcommand."""
    parser = subparsers.add_parser(
        "clean", help="delete old extracted datasets and caches (runs are never touched)",
        description="Delete extracted datasets and feature/decoded-image caches unused for longer than the age "
                    "limit, then the least recently used until each area is within its size budget. Anything in "
                    "use (leased by a live process, read by a running run, used within the last hour) and every "
                    "run stay. Budgets default to TLTOOLS_DATASETS_MAX_BYTES, TLTOOLS_CACHE_MAX_BYTES and "
                    "TLTOOLS_MAX_AGE_DAYS (20 GiB, 10 GiB, 30 days).")
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted; delete nothing")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--max-age-days", type=float, help="override TLTOOLS_MAX_AGE_DAYS")
    parser.add_argument("--datasets-max-bytes", type=int, help="override TLTOOLS_DATASETS_MAX_BYTES")
    parser.add_argument("--cache-max-bytes", type=int, help="override TLTOOLS_CACHE_MAX_BYTES")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Clean (or, with ``--dry-run``, report); print the report; return 0.

    Raises:
        TLToolsError: A budget (option or variable) is negative or not a number.
    """
    budget = housekeeping.Budget.from_env()
    overrides = {name: getattr(args, name) for name in ("max_age_days", "datasets_max_bytes", "cache_max_bytes")
                 if getattr(args, name) is not None}
    for name, value in overrides.items():
        if not value >= 0:
            raise TLToolsError(f"--{name.replace('_', '-')} {value} must be >= 0")
    report = housekeeping.clean(dataclasses.replace(budget, **overrides), dry_run=args.dry_run)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    size = format_bytes
    verb = "would delete" if report.dry_run else "deleted"
    for item in report.removed:
        print(f"{verb}  {item.path}  ({size(item.bytes)}; {item.reason})")
    for item in report.kept:
        print(f"kept  {item.path}  ({size(item.bytes)}; {item.reason})")
    for error in report.errors:
        print(f"error  {error}")
    print(f"{verb} {len(report.removed)} items, {size(report.freed_bytes)}")
    for area, sizes in report.areas.items():
        print(f"{area}: {size(sizes['bytes_after'])} of a {size(sizes['max_bytes'])} budget"
              + ("" if sizes["bytes_after"] <= sizes["max_bytes"] else " (still over: the rest is in use)"))
    return 0
