"""The one exception type for problems a user can act on."""


class TLToolsError(Exception):
    """A user-facing error: a one-line message naming the bad value and the remedy.

    The app shows it with ``st.error`` and the CLI prints it as ``error: ...``
    with exit status 2. Anything else escaping the library is a bug.
    """
