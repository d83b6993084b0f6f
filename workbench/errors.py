"""The one exception type that carries a user-facing message."""


class UserError(Exception):
    """A problem the user can fix (bad file, missing column, impossible setting).

    The message is one plain sentence, shown as is in the UI and as `error: ...` by the CLI.
    """


def storage_error_message(exc: BaseException) -> str | None:
    """A plain sentence for a storage failure the user can act on (full disk, read-only files)."""
    import errno

    text = str(exc).lower()
    if getattr(exc, "errno", None) == errno.ENOSPC or "disk is full" in text or "no space left" in text:
        return "The disk is full; free some space and try again. Nothing was saved."
    if getattr(exc, "errno", None) in (errno.EROFS, errno.EACCES, errno.EPERM) or "readonly" in text \
            or "read-only" in text:
        return "The workbench folder or its database is read-only; nothing was saved."
    return None
