"""The two kinds of error a command ends with: the user's input (exit 2) or the world (exit 1).

Modules raise a subclass with a one-line message that names the bad value and what is accepted;
the CLI turns them into click errors in one place.
"""


class UsageError(ValueError):
    """Input we cannot accept (a flag, a config value, a study name, a --module target); exit 2."""


class SweepFailed(RuntimeError):
    """The command could not do its work for a reason outside the input (storage down, a worker died); exit 1."""
