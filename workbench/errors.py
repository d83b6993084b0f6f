"""The one exception type that carries a user-facing message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A problem the user can fix (bad file, missing column, impossible setting).

    The message is one plain sentence, shown as is in the UI and as `error: ...` by the CLI.
    """


# A run that broke (a bug, a resource) keeps its error after this prefix; a run stopped by a UserError keeps the
# plain sentence, which is how the CLI tells the two apart for its exit status.
BROKE = "Training failed: "


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


def did_you_mean(name: str, columns: Iterable[object]) -> str:
    """" Did you mean 'X'?" for a column name that is not in the table: the column with the same name but for
    spaces and capitals (" Price " for "price"), or a close spelling; "" when none is close."""
    names = [str(c) for c in columns]
    same = [c for c in names if c.strip().casefold() == str(name).strip().casefold()]
    close = same or difflib.get_close_matches(str(name), names, n=1, cutoff=0.8)
    return f" Did you mean '{close[0]}'?" if close else ""
