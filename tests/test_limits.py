"""Limits and budgets set through environment variables: good values apply, bad ones are named in one line."""

import pytest

from tltools.errors import TLToolsError
from tltools.limits import Limits, default_limits, env_number


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
