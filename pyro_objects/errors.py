"""The error types the command line turns into a one-line message."""


class InputError(ValueError):
    """Bad input from the user: an unknown dataset, a missing or corrupt file, a wrong image size."""


class TrainingError(RuntimeError):
    """Training cannot go on (its loss stays non-finite); what is on disk is left as it was."""
