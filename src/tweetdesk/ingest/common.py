"""What the file sources share: the replay file check."""

from __future__ import annotations

from pathlib import Path

from tweetdesk.errors import InputError


def check_file(path: Path) -> Path:
    """``path`` as a Path, once it is an existing file: a one-line ``InputError`` otherwise."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"replay file not found: {path}")
    if not path.is_file():
        raise InputError(f"replay path is not a file: {path}")
    return path

