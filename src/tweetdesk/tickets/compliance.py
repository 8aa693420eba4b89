"""``tweetdesk compliance``'s cycle: every stored post and author through X's batch compliance jobs
(``x.compliance``), each result applied through the one removal path (``tickets.removal``).

What we do with a result line (the stricter reading where X leaves a choice):
- tweets, ``action`` delete (reason deleted | suspended | protected | deactivated | edited) or withheld → the post
  is removed; ``edited``: the version named is an old one, X's newest version is the one we may keep.
- users, ``action`` delete | protect | suspend | deactivate | withheld → every post of the account is removed.
- ``scrub_geo`` → the place names we extracted go, the post stays.
A malformed line is logged with the reason; the other lines are applied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from tweetdesk.tickets import removal
from tweetdesk.tickets.schema import tickets, tweets_table
from tweetdesk.x.compliance import ComplianceClient, ComplianceError, parse_results

log = logging.getLogger(__name__)


@dataclass
class CycleReport:
    checked: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    malformed: list[str] = field(default_factory=list)
    removed_posts: set[str] = field(default_factory=set)

    def line(self) -> str:
        return (f"compliance: checked {self.checked.get('tweets', 0)} posts and {self.checked.get('users', 0)} "
                f"accounts; {len(self.removed_posts)} posts removed; "
                f"{len(self.malformed)} malformed result lines (logged)")


def stored_ids(conn) -> tuple[list[str], list[str]]:
    """The post IDs and the author IDs we still hold content of. A direct message's id is a DM event, not a post:
    X's batch compliance checks posts and users, so DMs go through their authors (a deleted, suspended or
    protected account takes its DMs with it) and erasure on request."""
    public = sa.or_(tweets_table.c.channel.is_(None), tweets_table.c.channel != "dm")
    posts = {r[0] for r in conn.execute(sa.select(tweets_table.c.tweet_id).where(tweets_table.c.text != "", public))}
    posts |= {r[0] for r in conn.execute(sa.select(tickets.c.tweet_id).where(
        tickets.c.removed_at.is_(None), sa.or_(tickets.c.channel.is_(None), tickets.c.channel != "dm")))}
    users = {r[0] for r in conn.execute(sa.select(tickets.c.author_id).distinct().where(
        tickets.c.removed_at.is_(None), tickets.c.author_id.is_not(None)))}
    users |= {r[0] for r in conn.execute(sa.select(tweets_table.c.author_key).distinct()) if r[0].isdigit()}
    return sorted(p for p in posts if p.isdigit()), sorted(users)


def apply_results(store, kind: str, lines: list[dict], report: CycleReport) -> None:
    """Apply valid result lines through the removal path, one transaction."""
    with store.transaction(write=True) as conn:
        by_reason: dict[tuple[str, str], list[str]] = {}
        for line in lines:
            action = line["action"]
            report.actions[f"{kind}:{action}"] = report.actions.get(f"{kind}:{action}", 0) + 1
            reason = str(line.get("reason") or action)[:40]
            by_reason.setdefault((action, reason), []).append(line["id"])
        for (action, reason), ids in sorted(by_reason.items()):
            why = f"removed: {reason} on X" if action != "withheld" else "removed: withheld on X"
            if reason == "edited":
                why = "removed: an older version, edited on X"
            geo = action == "scrub_geo"
            if kind == "tweets":
                r = removal.remove(conn, reason=why, source="compliance", tweet_ids=ids, scrub_geo_only=geo,
                                   log_detail={"type": kind, "action": action})
            else:
                r = removal.remove(conn, reason=why, source="compliance", author_keys=ids, scrub_geo_only=geo,
                                   log_detail={"type": kind, "action": action})
            report.removed_posts |= r.tweet_ids


def run_cycle(settings, store, client: ComplianceClient | None = None,
              rewrite_parquet: Callable[[set[str]], object] | None = None) -> CycleReport:
    """One compliance cycle: every stored post and author through X's jobs, results applied."""
    if client is None:
        token = settings.x_bearer_token
        if token is None:
            raise ComplianceError("compliance needs the app's bearer token: set TWEETDESK_X_BEARER_TOKEN")
        client = ComplianceClient(settings.x_api_base, token.get_secret_value())
    report = CycleReport()
    with store.transaction() as conn:
        posts, users = stored_ids(conn)
    for kind, ids in (("tweets", posts), ("users", users)):
        report.checked[kind] = len(ids)
        if not ids:
            continue
        data = client.run_job(kind, ids)
        lines, bad = parse_results(kind, data)
        apply_results(store, kind, lines, report)
        with store.transaction(write=True) as conn:
            removal.log(conn, source="compliance", action="job", reason=f"{kind} job complete",
                        detail={"type": kind, "ids": len(ids), "results": len(lines), "malformed": len(bad)})
            for reason in bad:
                log.warning("compliance: malformed result line: %s", reason)
                removal.log(conn, source="compliance", action="malformed", reason=reason)
        report.malformed += bad
    if rewrite_parquet and report.removed_posts:
        rewrite_parquet(report.removed_posts)
    return report
