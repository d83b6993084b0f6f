"""The one exception type that carries a user-facing message."""


class UserError(Exception):
    """A problem the user can fix (bad file, missing column, impossible setting).

    The message is one plain sentence, shown as is in the UI and as `error: ...` by the CLI.
    """
