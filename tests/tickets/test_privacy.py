"""The ticket store holds password and token hashes and customers' tweets: its work dir is created 0700 and
its SQLite file 0600 (with its -wal and -shm files), whatever the umask."""

from __future__ import annotations

import os
import stat

from tweetdesk.config import Settings
from tweetdesk.tickets.store import TicketStore


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_work_dir_and_database_are_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        work = tmp_path / "deep" / "work"
        store = TicketStore.from_settings(Settings(work_dir=work))
        try:
            store.stats()
            db = work / "tickets.db"
            assert _mode(work) == 0o700 and _mode(db) == 0o600
            for extra in (work / "tickets.db-wal", work / "tickets.db-shm"):
                if extra.exists():
                    assert _mode(extra) == 0o600, extra
        finally:
            store.close()
    finally:
        os.umask(old)


def test_a_world_readable_database_from_before_is_tightened(tmp_path):
    db = tmp_path / "tickets.db"
    db.touch()
    os.chmod(db, 0o644)
    TicketStore(f"sqlite:///{db}").close()
    assert _mode(db) == 0o600
