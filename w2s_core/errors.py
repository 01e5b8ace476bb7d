"""Errors a user can act on: the CLI prints their message (no traceback) and exits with their code."""


class W2SError(Exception):
    """A runtime failure explained in one paragraph (exit code 1)."""

    exit_code = 1


class InputError(W2SError):
    """Bad input from the user: a recipe, a file, a name (exit code 2)."""

    exit_code = 2
