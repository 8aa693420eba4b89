"""Where the stream job writes: local folders under the work dir by default, or URIs (``s3://bucket/prefix`` on
EMR) from ``TWEETDESK_PARQUET_URI`` / ``TWEETDESK_CHECKPOINT_URI``. Spark takes either; only local folders get
the housekeeping that needs a file system (removing what a killed writer left behind)."""

from __future__ import annotations

import re
from pathlib import Path

from tweetdesk.config import Settings

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_uri(location: str | Path) -> bool:
    return isinstance(location, str) and bool(_URI.match(location))


def parquet_location(settings: Settings) -> str | Path:
    """The Parquet root: the URI as given, or the absolute local folder."""
    if settings.parquet_uri:
        return settings.parquet_uri.rstrip("/") if is_uri(settings.parquet_uri) else Path(settings.parquet_uri).resolve()
    return Path(settings.parquet_dir).resolve()


def checkpoint_location(settings: Settings, query_name: str) -> str | Path:
    """The checkpoint folder of one streaming query."""
    if settings.checkpoint_uri:
        if is_uri(settings.checkpoint_uri):
            return f"{settings.checkpoint_uri.rstrip('/')}/{query_name}"
        return (Path(settings.checkpoint_uri) / query_name).resolve()
    return (Path(settings.checkpoint_dir) / query_name).resolve()
