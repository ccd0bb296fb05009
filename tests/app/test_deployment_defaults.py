"""The served app's safety defaults, and the README section that documents every limit."""

import dataclasses
import re
import tomllib
from pathlib import Path

from tltools.limits import Limits

REPO = Path(__file__).resolve().parents[2]


def _config() -> dict:
    return tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())


def _security_section() -> str:
    readme = (REPO / "README.md").read_text()
    match = re.search(r"^## Security and limits\n(.*?)(?=^## )", readme, flags=re.S | re.M)
    assert match, "README.md has a '## Security and limits' section"
    return match.group(1)


def test_xsrf_protection_stays_on_and_nothing_is_sent_home():
    config = _config()
    assert config["server"]["enableXsrfProtection"] is True
    assert config["server"].get("enableCORS", True) is True, "Streamlit turns XSRF off when CORS is off"
    assert config["browser"]["gatherUsageStats"] is False


def test_the_browser_upload_limit_is_the_one_the_readme_states():
    megabytes = _config()["server"]["maxUploadSize"]
    assert f"`server.maxUploadSize`" in _security_section()
    assert f"{megabytes} MB" in _security_section()


def test_every_limit_and_its_variable_is_documented():
    section = _security_section()
    for field in dataclasses.fields(Limits):
        assert f"TLTOOLS_{field.name.upper()}" in section, field.name
    for variable in ("TLTOOLS_DATASETS_MAX_BYTES", "TLTOOLS_CACHE_MAX_BYTES", "TLTOOLS_MAX_AGE_DAYS",
                     "TLTOOLS_MAX_CONCURRENT_JOBS", "TLTOOLS_HOME", "TLTOOLS_CACHE"):
        assert variable in section, variable


def test_the_readme_says_there_are_no_user_accounts():
    section = _security_section()
    assert "no built-in user accounts" in section and "OIDC" in section and "proxy" in section
