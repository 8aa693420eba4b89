"""Erasure on request and the record of X data use, over the one removal path (tickets/removal.py)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from tweetdesk.records import utcnow
from tweetdesk.tickets import removal
from tweetdesk.tickets.schema import compliance_log, tickets, tweets_table, x_usage


def erase_author(store, handle: str, *, actor: str, key: bytes, rewrite_parquet=None) -> removal.Removal:
    """Every post of ``handle`` removed; the audit line keeps who asked and a digest of the handle, not the handle."""
    with store.transaction(write=True) as conn:
        keys = removal.author_keys_of_handle(conn, handle)
        r = removal.remove(conn, reason="removed: erased on request", source="erase", author_keys=keys,
                           log_detail={"actor": actor, "author_digest": removal.digest(handle.lstrip("@"), key)})
    if rewrite_parquet and r.tweet_ids:
        rewrite_parquet(r.tweet_ids)
    return r


def purge_older_than(store, days: float, *, rewrite_parquet=None, now=None) -> removal.Removal:
    """Retention: posts created more than ``days`` ago lose their content (tombstones stay)."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    with store.transaction(write=True) as conn:
        ids = {r[0] for r in conn.execute(sa.select(tweets_table.c.tweet_id).where(
            tweets_table.c.tweet_created_at < cutoff, tweets_table.c.text != ""))}
        ids |= {r[0] for r in conn.execute(sa.select(tickets.c.tweet_id).where(
            sa.func.coalesce(tickets.c.tweet_created_at, tickets.c.created_at) < cutoff,
            tickets.c.removed_at.is_(None)))}
        r = removal.remove(conn, reason=f"removed: older than {days:g} days (retention)", source="retention",
                           tweet_ids=ids, log_detail={"days": days})
    if rewrite_parquet and r.tweet_ids:
        rewrite_parquet(r.tweet_ids)
    return r


def record_of_use(store) -> dict:
    """What was read, stored, answered and removed, and when: for an audit by X."""
    with store.transaction() as conn:
        usage = [dict(r) for r in conn.execute(sa.select(x_usage).order_by(x_usage.c.day, x_usage.c.kind)).mappings()]
        log = [dict(r) for r in conn.execute(sa.select(compliance_log).order_by(compliance_log.c.id)).mappings()]
        held = conn.execute(sa.select(sa.func.count()).select_from(tickets).where(tickets.c.removed_at.is_(None))).scalar()
        removed = conn.execute(sa.select(sa.func.count()).select_from(tickets).where(
            tickets.c.removed_at.is_not(None))).scalar()
    return {"generated_at": utcnow().isoformat(), "x_usage": usage, "compliance_log": log,
            "tickets": {"with_content": held, "tombstones": removed}}
