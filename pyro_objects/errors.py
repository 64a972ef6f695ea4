"""The one error type the command line turns into a one-line message."""


class InputError(ValueError):
    """Bad input from the user: an unknown dataset, a missing or corrupt file, a wrong image size."""
