"""Tweet ids in X's snowflake layout: 41 bits of milliseconds since the X epoch, 10 bits of worker, 12 bits of
sequence. Ids sort by time like real ones, and for any date since 2022 they have 19 digits.

Used for the ids a looping replay invents (each pass needs ids no earlier pass used, or downstream dedup on the
tweet id would swallow them) and by scripts/make_sample.py for the shipped sample.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime

X_EPOCH_MS = 1288834974657  # 2010-11-04T01:42:54.657Z, X's snowflake epoch
_SEQ_BITS, _WORKER_BITS = 12, 10


def snowflake(ms: int, worker: int = 0, sequence: int = 0) -> str:
    """The id X would give a tweet created at ``ms`` (Unix milliseconds)."""
    return str(((ms - X_EPOCH_MS) << (_WORKER_BITS + _SEQ_BITS)) | ((worker & 0x3FF) << _SEQ_BITS) | (sequence & 0xFFF))


def snowflake_at(when: datetime, worker: int = 0, sequence: int = 0) -> str:
    return snowflake(int(when.timestamp() * 1000), worker, sequence)


def snowflake_time(tweet_id: str) -> datetime:
    """When a snowflake id was minted (UTC)."""
    from datetime import timezone

    ms = (int(tweet_id) >> (_WORKER_BITS + _SEQ_BITS)) + X_EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


class SnowflakeGenerator:
    """Fresh, strictly increasing ids minted now. The worker bits come from the process id, so two replays
    running side by side do not mint the same id; within one process the sequence (and, past 4,096 ids in one
    millisecond, a borrowed future millisecond) keeps them unique."""

    def __init__(self, worker: int | None = None, clock=time.time):
        self.worker = (os.getpid() if worker is None else worker) & 0x3FF
        self._clock = clock
        self._lock = threading.Lock()
        self._last_ms = 0
        self._seq = 0

    def __call__(self) -> str:
        with self._lock:
            ms = int(self._clock() * 1000)
            if ms <= self._last_ms:
                ms = self._last_ms
                self._seq += 1
                if self._seq > 0xFFF:
                    ms, self._seq = ms + 1, 0
            else:
                self._seq = 0
            self._last_ms = ms
            return snowflake(ms, self.worker, self._seq)
