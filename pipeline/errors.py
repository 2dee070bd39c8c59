"""Errors the user can act on: bad input (:class:`InputError`), work stopped on request
(:class:`Cancelled`), and the short reason a library gave (:func:`short_reason`)."""


class InputError(ValueError):
    """Input the pipeline cannot use. The message says what is wrong and what to do.

    The CLI prints it as one line and exits with code 2; the explorer shows it as an alert.
    """


class Cancelled(Exception):
    """Long work stopped because the user asked; nothing was written."""


def short_reason(exc: Exception) -> str:
    """The first line of a library's exception (or its type), cut to 160 characters: enough to
    say why a file could not be read, inside a message that says what to do."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]
