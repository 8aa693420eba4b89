"""``tweetdesk compliance``: X's batch compliance, applied through the one removal path (tickets/removal.py).

X's contract (docs.x.com → X API v2 → Compliance → Batch compliance; ``POST /2/compliance/jobs``,
``GET /2/compliance/jobs/:id``): create a job of type ``tweets`` or ``users`` (app bearer token) → ``upload_url``
(PUT the IDs, one per line, ``Content-Type: text/plain``, within 15 minutes) → poll the job until its ``status``
is ``complete`` (or ``failed`` / ``expired``) → GET ``download_url`` (valid one week): one JSON object per line
for each ID that needs action, ``{"id", "action", "reason", "created_at", "redacted_at"?,
"withheld_in_countries"?}``. X allows one concurrent job per type.

What we do with a result line (the stricter reading where X leaves a choice):
- tweets, ``action`` delete (reason deleted | suspended | protected | deactivated | edited) or withheld → the post
  is removed; ``edited``: the version named is an old one, X's newest version is the one we may keep.
- users, ``action`` delete | protect | suspend | deactivate | withheld → every post of the account is removed.
- ``scrub_geo`` → the place names we extracted go, the post stays.
A malformed line is logged with the reason; the other lines are applied.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
import sqlalchemy as sa

from tweetdesk.errors import TweetdeskError
from tweetdesk.tickets import removal
from tweetdesk.tickets.schema import tickets, tweets_table

log = logging.getLogger(__name__)

TWEET_ACTIONS = {"delete", "withheld", "scrub_geo"}
USER_ACTIONS = {"delete", "protect", "suspend", "deactivate", "withheld", "scrub_geo"}


class ComplianceError(TweetdeskError):
    pass


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


class ComplianceClient:
    """X's batch compliance endpoints over ``requests`` (tweepy has no client for them)."""

    def __init__(self, api_base: str, bearer_token: str, *, poll_seconds: float = 10.0, timeout: float = 30.0,
                 max_wait: float = 3600.0, sleep: Callable[[float], None] = time.sleep):
        self.base = api_base.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {bearer_token}"
        self.poll_seconds, self.timeout, self.max_wait, self.sleep = poll_seconds, timeout, max_wait, sleep

    def _json(self, r: requests.Response, what: str) -> dict:
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code >= 400:
            detail = body.get("detail") or (body.get("errors") or [{}])[0].get("message") or r.reason
            raise ComplianceError(f"X refused {what} ({r.status_code}): {detail}")
        return body.get("data") or {}

    def run_job(self, kind: str, ids: list[str]) -> bytes:
        """Create a job, upload the IDs, wait for it, download the result file."""
        try:
            return self._run_job(kind, ids)
        except requests.RequestException as e:
            raise ComplianceError(f"cannot reach X at {self.base} for the {kind} compliance job "
                                  f"({type(e).__name__})") from None

    def _run_job(self, kind: str, ids: list[str]) -> bytes:
        job = self._json(self.session.post(f"{self.base}/2/compliance/jobs", json={"type": kind, "name":
                         f"tweetdesk-{kind}"}, timeout=self.timeout), f"a {kind} compliance job")
        up = requests.put(job["upload_url"], data="\n".join(ids).encode(), headers={"Content-Type": "text/plain"},
                          timeout=self.timeout)
        if up.status_code >= 300:
            raise ComplianceError(f"upload of job {job['id']} refused ({up.status_code})")
        waited = 0.0
        while True:
            status = self._json(self.session.get(f"{self.base}/2/compliance/jobs/{job['id']}", timeout=self.timeout),
                                f"the status of job {job['id']}")
            if status.get("status") == "complete":
                break
            if status.get("status") in ("failed", "expired"):
                raise ComplianceError(f"compliance job {job['id']} {status['status']}")
            if waited >= self.max_wait:
                raise ComplianceError(f"compliance job {job['id']} not complete after {waited:.0f} s")
            self.sleep(self.poll_seconds)
            waited += self.poll_seconds
        down = requests.get(status.get("download_url") or job["download_url"], timeout=self.timeout)
        if down.status_code >= 300:
            raise ComplianceError(f"download of job {job['id']} refused ({down.status_code})")
        return down.content


def parse_results(kind: str, data: bytes) -> tuple[list[dict], list[str]]:
    """Result lines → (valid lines, reasons for the malformed ones)."""
    ok, bad = [], []
    allowed = TWEET_ACTIONS if kind == "tweets" else USER_ACTIONS
    for n, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError as e:
            bad.append(f"{kind} line {n}: not JSON ({e.msg})")
            continue
        if not isinstance(line, dict):
            bad.append(f"{kind} line {n}: not a JSON object")
        elif not isinstance(line.get("id"), str) or not line["id"].isdigit():
            bad.append(f"{kind} line {n}: no valid id")
        elif line.get("action") not in allowed:
            bad.append(f"{kind} line {n}: unknown action {str(line.get('action'))[:40]!r}")
        else:
            ok.append(line)
    return ok, bad


def stored_ids(conn) -> tuple[list[str], list[str]]:
    """The post IDs and the author IDs we still hold content of."""
    posts = {r[0] for r in conn.execute(sa.select(tweets_table.c.tweet_id).where(tweets_table.c.text != ""))}
    posts |= {r[0] for r in conn.execute(sa.select(tickets.c.tweet_id).where(tickets.c.removed_at.is_(None)))}
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
