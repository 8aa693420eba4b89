"""Where the stream job writes: local folders under the work dir by default, or URIs (``s3://bucket/prefix`` on
EMR) from ``TWEETDESK_PARQUET_URI`` / ``TWEETDESK_CHECKPOINT_URI``. Spark takes either; only local folders get
the housekeeping that needs a file system (removing what a killed writer left behind)."""

from __future__ import annotations

import re
from pathlib import Path

from tweetdesk.config import Settings, StreamSettings

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_uri(location: str | Path) -> bool:
    return isinstance(location, str) and bool(_URI.match(location))


def parquet_location(settings: StreamSettings | Settings) -> str | Path:
    """The Parquet root: the URI as given, or the absolute local folder."""
    stream = StreamSettings.of(settings)
    if stream.parquet_uri:
        return stream.parquet_uri.rstrip("/") if is_uri(stream.parquet_uri) else Path(stream.parquet_uri).resolve()
    return Path(stream.parquet_dir).resolve()


def checkpoint_location(settings: StreamSettings | Settings, query_name: str) -> str | Path:
    """The checkpoint folder of one streaming query."""
    stream = StreamSettings.of(settings)
    if stream.checkpoint_uri:
        if is_uri(stream.checkpoint_uri):
            return f"{stream.checkpoint_uri.rstrip('/')}/{query_name}"
        return (Path(stream.checkpoint_uri) / query_name).resolve()
    return (Path(stream.checkpoint_dir) / query_name).resolve()
