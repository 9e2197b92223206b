"""The one error family the command line turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user: an unknown id, a malformed config or snapshot, and so on."""
