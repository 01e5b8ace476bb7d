"""Errors a user can act on: the CLI prints their message (no traceback) and exits with their code."""

import difflib
from collections.abc import Iterable


class W2SError(Exception):
    """A runtime failure explained in one paragraph (exit code 1)."""

    exit_code = 1


class InputError(W2SError):
    """Bad input from the user: a recipe, a file, a name (exit code 2)."""

    exit_code = 2


def did_you_mean(value: object, choices: Iterable[str], aliases: dict[str, str] | None = None) -> str:
    """' (did you mean 'x'?)' naming the closest choice (or a known alias of the value), else ''."""
    choices = list(choices)
    alias = (aliases or {}).get(str(value))
    close = [alias] if alias in choices else difflib.get_close_matches(str(value), choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
