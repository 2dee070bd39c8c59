"""The one exception type for bad input from a user."""


class InputError(ValueError):
    """Input the pipeline cannot use. The message says what is wrong and what to do.

    The CLI prints it as one line and exits with code 2; the explorer shows it as an alert.
    """


class Cancelled(Exception):
    """Long work stopped because the user asked; nothing was written."""
