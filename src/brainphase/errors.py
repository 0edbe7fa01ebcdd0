"""Exceptions that the CLI reports as a one-line error (exit status 2), without a traceback."""


class InputError(ValueError):
    """Bad user input: a file, a config value or data that cannot be used.

    The message must name the offending file or key, say what is wrong, and where possible
    how to fix it.
    """
