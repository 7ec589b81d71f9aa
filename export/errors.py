"""The one exception type the CLI turns into a one-line message and an exit code."""


class ExportError(Exception):
    """A problem the user can fix (bad input) or must know about (a failed check).

    The message is shown as is, on one line, without a traceback.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
