"""Atomic, durable file writes: a reader sees the old file or the new one, never half of
one, and once `write_atomic` returns the new file survives a power loss."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from promptascent.store.failures import file_errors


def write_atomic(path: Path, text: str) -> None:
    """Writes `text` to `path` through a synced temporary file renamed over it, then syncs
    the folder so that the rename itself is on disk. A full disk raises StorageError
    naming `path` (the old file is kept)."""
    with file_errors(path, "output"):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Syncs a folder's entries (a file created or renamed in it) to disk. A no-op where
    folders cannot be opened (Windows)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(folder, flags)
    except (PermissionError, IsADirectoryError):
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
