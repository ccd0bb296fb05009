"""``python -m tltools clean``: what it deletes, what a dry run only lists, and its errors."""

import json
import os
import time

import pytest

import tltools.cli

DAY = 86_400


@pytest.fixture
def old_upload(tmp_path, monkeypatch):
    """A TLTOOLS_HOME holding one extracted upload unused for 40 days, and an empty cache."""
    monkeypatch.setenv("TLTOOLS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TLTOOLS_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "home" / "datasets" / "flowers-0123456789abcdef"
    (folder / "rose").mkdir(parents=True)
    (folder / "rose" / "0.jpg").write_bytes(b"j" * 500)
    manifest = folder.with_name(folder.name + ".json")
    manifest.write_text('{"source": "flowers.zip", "skipped": []}')
    for path in (folder / "rose" / "0.jpg", folder / "rose", folder, manifest):
        os.utime(path, (time.time() - 40 * DAY,) * 2)
    return folder


def test_a_dry_run_lists_what_would_go_and_deletes_nothing(old_upload, capsys):
    assert tltools.cli.main(["clean", "--dry-run"]) == 0

    out = capsys.readouterr().out
    assert f"would delete  {old_upload}" in out and "unused for 40 days" in out
    assert old_upload.is_dir() and old_upload.with_name(old_upload.name + ".json").is_file()


def test_clean_deletes_and_reports_as_json(old_upload, capsys):
    assert tltools.cli.main(["clean", "--json"]) == 0

    report = json.loads(capsys.readouterr().out)
    assert report["dry_run"] is False
    assert [(item["path"], item["kind"]) for item in report["removed"]] == [(str(old_upload), "dataset")]
    assert report["freed_bytes"] >= 500
    assert report["budget"] == {"datasets_max_bytes": 20 * 1024**3, "cache_max_bytes": 10 * 1024**3,
                                "max_age_days": 30.0}
    assert not old_upload.exists() and not old_upload.with_name(old_upload.name + ".json").exists()


def test_options_override_the_environment(old_upload, capsys, monkeypatch):
    monkeypatch.setenv("TLTOOLS_MAX_AGE_DAYS", "10")
    assert tltools.cli.main(["clean", "--max-age-days", "50", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == [] and old_upload.is_dir()


def test_a_bad_budget_is_a_one_line_error(old_upload, capsys, monkeypatch):
    monkeypatch.setenv("TLTOOLS_DATASETS_MAX_BYTES", "twenty gigs")
    assert tltools.cli.main(["clean"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: TLTOOLS_DATASETS_MAX_BYTES='twenty gigs'") and err.count("\n") == 1
    assert old_upload.is_dir()
