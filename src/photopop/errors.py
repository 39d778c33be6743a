"""Exception types shared across photopop.

`PhotopopError` is what the CLI turns into a one-line message and a non-zero exit:
raise it (or a subclass) for any problem with the user's input, never a bare Exception.
"""


class PhotopopError(Exception):
    """A problem with user input or data that photopop reports as a clear message."""


class InputError(PhotopopError, ValueError):
    """Bad input data: wrong units, NaN, missing columns or bands, corrupt files, duplicates.

    The message names the problem (file, column, value); the CLI prints it as one line and exits 2.
    A `ValueError`, so ``except ValueError`` callers keep working.
    """


class MismatchError(InputError):
    """Inputs that disagree with what a saved model or table expects (bands, filter system)."""


class OutputError(InputError):
    """An output path photopop may not or cannot write: a file or foreign folder in the way, the
    command's own input, a folder in use by another run, or an OS refusal (permission, full disk)."""
