"""The served app's safety defaults, and the README section that documents every limit."""

import re
import tomllib
from pathlib import Path


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


def _written(name: str, value) -> str:
    """A default as the README writes it: bytes in GiB or MiB, from 10 000 on spaces between thousands."""
    if name.endswith("bytes"):
        return f"{value / 1024**3:g} GiB" if value >= 1024**3 else f"{value / 1024**2:g} MiB"
    return f"{value:,}".replace(",", " ") if value >= 10_000 else f"{value:g}"


def test_every_limit_is_documented_with_its_variable_and_its_real_default():
    from tltools.settings import Settings

    rows = [line for line in _security_section().splitlines() if line.startswith("| ")]
    for variable, default in Settings.defaults().items():
        name = variable.removeprefix("TLTOOLS_").lower()
        (row,) = [row for row in rows if f"`{variable}`" in row] or [None]
        assert row is not None, f"{variable} has no row in the README's limits table"
        assert _written(name, default) in row, f"{variable}: the README does not give its default {_written(name, default)}"
    for variable in ("TLTOOLS_HOME", "TLTOOLS_CACHE"):
        assert variable in _security_section(), variable


def test_the_readme_says_there_are_no_user_accounts():
    section = _security_section()
    assert "no built-in user accounts" in section and "OIDC" in section and "proxy" in section
