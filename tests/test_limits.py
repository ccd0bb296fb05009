"""Limits and budgets set through environment variables: good values apply, bad ones are named in one line."""

import pytest

from tltools import housekeeping
from tltools.data.pipeline import decode_memory_budget
from tltools.errors import TLToolsError
from tltools.limits import Limits, default_limits
from tltools.settings import Budget, Settings, env_number


def test_overrides_apply_and_unset_or_blank_variables_keep_the_defaults(monkeypatch):
    monkeypatch.setenv("TLTOOLS_MAX_ENTRIES", "1e4")
    monkeypatch.setenv("TLTOOLS_MAX_CLASSES", " ")
    limits = default_limits()
    assert limits.max_entries == 10_000 and limits.max_classes == Limits().max_classes


@pytest.mark.hostile
@pytest.mark.parametrize("raw", ["lots", "inf", "1e999", "nan", "-5", "0"])
def test_a_bad_limit_is_one_line_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("TLTOOLS_MAX_ENTRIES", raw)
    with pytest.raises(TLToolsError, match=rf"^TLTOOLS_MAX_ENTRIES='{raw}' .*> 0") as error:
        default_limits()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("raw, expected", [("2", 2), ("1e1", 10)])
def test_a_whole_number_setting_accepts_numbers_in_any_notation(monkeypatch, raw, expected):
    monkeypatch.setenv("TLTOOLS_MAX_CONCURRENT_JOBS", raw)
    assert env_number("TLTOOLS_MAX_CONCURRENT_JOBS", 1, kind=int, minimum=1) == expected


@pytest.mark.hostile
@pytest.mark.parametrize("raw", ["two", "0", "inf"])
def test_a_job_count_below_one_or_not_a_number_is_refused(monkeypatch, raw):
    monkeypatch.setenv("TLTOOLS_MAX_CONCURRENT_JOBS", raw)
    with pytest.raises(TLToolsError, match=r"TLTOOLS_MAX_CONCURRENT_JOBS=.*>= 1"):
        env_number("TLTOOLS_MAX_CONCURRENT_JOBS", 1, kind=int, minimum=1)


def test_an_unlimited_age_in_days_is_allowed(monkeypatch):
    monkeypatch.setenv("TLTOOLS_MAX_AGE_DAYS", "inf")
    assert env_number("TLTOOLS_MAX_AGE_DAYS", 30.0, kind=float) == float("inf")


@pytest.mark.parametrize(
    ("variable", "raw", "read"),
    [
        ("TLTOOLS_MAX_ENTRIES", "123", lambda: default_limits().max_entries),
        ("TLTOOLS_DECODE_MEMORY_BYTES", "1e6", decode_memory_budget),
        ("TLTOOLS_DATASETS_MAX_BYTES", "5", lambda: housekeeping.Budget.from_env().datasets_max_bytes),
        ("TLTOOLS_MAX_CONCURRENT_JOBS", "3", lambda: Settings.from_env().max_concurrent_jobs),
    ],
)
def test_every_reader_of_a_number_gets_it_from_the_one_settings_object(monkeypatch, variable, raw, read):
    monkeypatch.setenv(variable, raw)
    assert read() == int(float(raw))
    assert Settings.defaults()[variable] != read()  # the override, not the default, reached the reader


def test_the_settings_object_knows_every_tltools_number_and_its_default():
    defaults = Settings.defaults()
    assert defaults["TLTOOLS_MAX_CLASSES"] == Limits().max_classes
    assert defaults["TLTOOLS_MAX_AGE_DAYS"] == Budget().max_age_days
    assert set(defaults) >= {"TLTOOLS_DECODE_MEMORY_BYTES", "TLTOOLS_MAX_CONCURRENT_JOBS", "TLTOOLS_CACHE_MAX_BYTES"}
