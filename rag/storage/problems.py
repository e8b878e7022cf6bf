"""What an SQLite or OS error on an index's files means to the user: one line naming the index
and the remedy (rag.errors.StorageError and its kinds), never a traceback.

`storage_errors(root)` is the boundary: rag.index.Index wraps every call in it, so the CLI prints
the line and the servers send it with a clean status, whatever query or file write failed.
SQLite says what went wrong in its (extended) result code name, which Python 3.11 exposes as
`sqlite_errorname`; the message text is the fallback for older bindings.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rag.errors import DiskFull, IndexBusy, IndexDamaged, RagError, StorageError

RETRY = "then run the command again (what was committed before is kept)"


def _sqlite_kind(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return "full"
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text:
        return "damaged"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text or "busy" in text:
        return "busy"
    if name.startswith("SQLITE_READONLY") or "readonly" in text.replace(" ", "") or "read-only" in text:
        return "read-only"
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in text:
        return "io"
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")) or "unable to open" in text:
        return "cannot-open"
    return "other"


def _os_kind(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "full"
    if exc.errno == errno.EFBIG:
        return "too-large"
    if exc.errno in (errno.EROFS,):
        return "read-only"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "cannot-open"
    if exc.errno == errno.EIO:
        return "io"
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        return "too-many-files"
    return "other"


def storage_error(exc: BaseException, root: Path | str) -> RagError | None:
    """The one-line error for an SQLite or OS error on the index at `root`; None for anything else."""
    if isinstance(exc, sqlite3.Error):
        kind, detail = _sqlite_kind(exc), str(exc)
    elif isinstance(exc, OSError):
        kind = _os_kind(exc)
        detail = exc.strerror or str(exc)
        if exc.filename is not None:
            name = os.fsdecode(exc.filename)
            if not _inside(name, root):  # a file of the user's (rag map --out): name it, not the index
                return _other_file(kind, name, detail)
            detail = f"{detail}: {name}"
    else:
        return None
    where = f"the index at {root}"
    if kind == "full":
        return DiskFull(f"disk full: no space left to write {where} ({detail}): free some space on that disk, {RETRY}")
    if kind == "damaged":
        return IndexDamaged(f"{where} is damaged ({detail}): run `rag status --check` to see what is wrong; "
                            f"then delete that folder and ingest again")
    if kind == "busy":
        return IndexBusy(f"{where} is busy ({detail}): another process holds it; try again in a moment")
    if kind == "read-only":
        return StorageError(f"{where} is read-only ({detail}): check the permissions of that folder and its files")
    if kind == "io":
        return StorageError(f"an I/O error on {where} ({detail}): check the disk (the system log says more), {RETRY}")
    if kind == "cannot-open":
        return StorageError(f"cannot open {where} ({detail}): check that the folder exists and is readable and "
                            f"writable by you")
    if kind == "too-large":
        return StorageError(f"a file of {where} grew past the size this system allows ({detail}): raise the "
                            f"file size limit (`ulimit -f`), {RETRY}")
    if kind == "too-many-files":
        return StorageError(f"too many open files while using {where} ({detail}): raise the limit (`ulimit -n`) "
                            f"or close other programs, {RETRY}")
    return StorageError(f"cannot use {where} ({detail}): {RETRY}; if it persists, run with --debug")


def _inside(name: str, root: Path | str) -> bool:
    folder = os.path.abspath(root)
    return os.path.abspath(name) == folder or os.path.abspath(name).startswith(folder + os.sep)


def _other_file(kind: str, name: str, detail: str) -> RagError:
    if kind == "full":
        return DiskFull(f"disk full: no space left to write {name} ({detail}): free some space on that disk and "
                        f"run the command again")
    return StorageError(f"cannot use {name} ({detail})")


@contextmanager
def storage_errors(root: Path | str) -> Iterator[None]:
    """Turn SQLite and OS errors raised inside into StorageError lines naming `root`."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        error = storage_error(exc, root)
        if error is None:  # pragma: no cover - storage_error knows both types
            raise
        raise error from exc
