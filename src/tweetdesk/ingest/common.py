"""What the tweet sources share: the brand a tweet is about, the replay file check, the X token hint."""

from __future__ import annotations

import re
from pathlib import Path

from tweetdesk.errors import InputError

# The data set's airline column, as the airlines' X handles (lower case, like a brand taken from an @mention).
AIRLINE_HANDLES = {
    "virgin america": "virginamerica",
    "united": "united",
    "southwest": "southwestair",
    "delta": "delta",
    "us airways": "usairways",
    "american": "americanair",
}
_MENTION = re.compile(r"(?<![\w@])@(\w{1,15})")


def brand_of(text: str, airline: str | None = None) -> str | None:
    """The brand a tweet is about: the CSV's airline column when given, else the first @mention (lower case)."""
    if airline and airline.strip():
        a = airline.strip().lower()
        return AIRLINE_HANDLES.get(a, re.sub(r"\W+", "", a)) or None
    m = _MENTION.search(text or "")
    return m.group(1).lower() if m else None


def check_file(path: Path) -> Path:
    """``path`` as a Path, once it is an existing file: a one-line ``InputError`` otherwise."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"replay file not found: {path}")
    if not path.is_file():
        raise InputError(f"replay path is not a file: {path}")
    return path


def bearer_token_hint() -> str:
    return "set TWEETDESK_X_BEARER_TOKEN to the app's bearer token (developer portal: Keys and tokens)"
