"""Our account's direct messages as a source: ``tweetdesk ingest dms``.

Airline support on X ends in a DM ("DM us your confirmation number"); this brings those DMs into the desk.
``GET /2/dm_events`` (user context: OAuth 2.0 scopes ``dm.read`` ``tweet.read`` ``users.read``, or OAuth 1.0a
with DM access) lists the account's DM events of the last 30 days, newest first
(docs.x.com/x-api/direct-messages/lookup/introduction). Its figures, from docs.x.com:

* rate limit **15 requests / 15 min per user** (docs.x.com/x-api/fundamentals/rate-limits, "Direct Messages
  lookup"; the same for the other DM lookups): hence one poll a minute by default, and every page counts;
* price under pay-per-use **$0.010 per DM event read** (docs.x.com/x-api/getting-started/pricing, "DM Event:
  Read"): the poll asks for ``event_types=MessageCreate`` only and stops paging at the first event it already
  has (recorded downstream by source, not here);
* the Activity API pushes ``dm.received`` instead of being polled ($0.010 an event): ``web.x_webhook``.

One poll pages from the newest event down to the position saved last time (``since_id``; the lookup has no
``since_id`` parameter, so the source stops at the first page that reaches it), or on the first run down to
``backfill_hours`` ago, then publishes the customers' messages oldest first as ``DirectMessage(source="dms")``
to ``tweets.raw``, keyed by ``dm_conversation_id`` (one conversation stays in order in one partition).
Our own sent DMs and the other event types are skipped; a DM event that cannot make a record (no sender, blank
text, no handle), or a page that cannot be read, goes to ``tweets.dead`` with the reason.

Neither skip nor repeat across restarts, as ``ingest mentions`` (``ingest.xpoll``): the position lives in
``<work_dir>/x_dms_state.json`` (written atomically), moves only after Kafka acknowledged the poll; a poll cut
short by an unreadable page keeps it and remembers the ids it handled; 5xx / X unreachable abandon the poll
(nothing published) and retry after a back-off; rate limits are slept out; refused credentials end the source
with one line.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from tweetdesk.config import Settings
from tweetdesk.errors import TweetdeskError
from tweetdesk.ingest.publisher import Publisher
from tweetdesk.ingest.xpoll import PollResult, UserPoller
from tweetdesk.records import DeadLetter, DirectMessage
from tweetdesk.x.dms import DM_EVENT_FIELDS, DM_EVENT_TYPES, DM_EXPANSIONS, DM_USER_FIELDS, parse_dm_page
from tweetdesk.x.payload import PayloadError

log = logging.getLogger(__name__)

STAGE = "ingest"
STATE_FILE = "x_dms_state.json"
PAGE_SIZE = 100  # X's maximum per request
POLL_SECONDS = 60.0  # 15 lookups / 15 min per user: one poll a minute stays inside it


class DmsError(TweetdeskError):
    """X refuses our DM events for a reason only the user can fix (no DM access, no dm.read scope)."""


class DmSource(UserPoller):
    """Polls our DM events into a ``Publisher`` (rate limits, state, loop: ``xpoll.UserPoller``)."""

    what = "DM events"
    state_file = STATE_FILE
    error = DmsError

    def __init__(self, settings: Settings, *, page_size: int = PAGE_SIZE, backfill_hours: float = 24.0, **kw):
        super().__init__(settings, **kw)
        self.page_size = page_size
        self.backfill_hours = backfill_hours

    def poll(self, pub: Publisher) -> PollResult:
        """Read every new DM event, publish the customers' messages oldest first, then (Kafka having acknowledged
        all) save the position."""
        account = self.account()
        result = PollResult()
        if account is None:
            return result
        state = self.state
        since = int(state.since_id) if state.since_id else None
        cutoff = None
        if since is None and self.backfill_hours > 0:
            cutoff = datetime.fromtimestamp(self.clock(), timezone.utc) - timedelta(hours=self.backfill_hours)
        brand = self.account_handle.lower() if self.account_handle else None
        params: dict = {"max_results": self.page_size, "dm_event_fields": DM_EVENT_FIELDS, "expansions": DM_EXPANSIONS,
                        "user_fields": DM_USER_FIELDS, "event_types": DM_EVENT_TYPES}
        self.counts["polls"] += 1
        key = f"dms:{account}"
        messages: dict[str, DirectMessage] = {}
        bad: list[DeadLetter] = []
        seen: list[str] = []
        token = None

        def new(eid: str | None) -> bool:
            return eid is None or since is None or int(eid) > since

        while True:
            resp = self.call(self.client.get_direct_message_events, **params,
                             **({"pagination_token": token} if token else {}))
            if resp is None:  # asked to stop: publish nothing of a half-read poll
                return result
            result.pages += 1
            self.counts["pages"] += 1
            where = f"X DM events page {result.pages}"
            try:
                page = parse_dm_page(resp.content, account_id=account, brand=brand)
            except PayloadError as e:
                bad.append(DeadLetter.of(resp.content, f"{where}: {e}", STAGE, key=key))
                result.complete = False  # the pages after it cannot be reached: the position stays
                break
            for m in page.messages:
                if new(m.id) and (cutoff is None or m.created_at >= cutoff):
                    messages.setdefault(m.id, m)
            for raw, reason, eid in page.bad:
                if new(eid):
                    bad.append(DeadLetter.of(raw, f"{where}: {reason}", STAGE, key=key))
            result.skipped += sum(1 for i in page.skipped if new(i))
            seen += [i for i in page.ids if new(i)]
            if since is not None and any(int(i) <= since for i in page.ids):
                break  # reached what the last poll read: the rest is older
            if cutoff is not None and page.oldest is not None and page.oldest < cutoff:
                break  # the first run reads back backfill_hours only
            token = page.meta.get("next_token")
            if not token:
                break
            if not isinstance(token, str):
                bad.append(DeadLetter.of(resp.content, f"{where}: meta.next_token is not a string", STAGE, key=key))
                result.complete = False
                break
        return self.finish_poll(pub, state, messages, bad, seen, result)

def run_dms(settings: Settings, pub: Publisher, *, interval: float = POLL_SECONDS, once: bool = False,
            limit: int | None = None, backfill_hours: float = 24.0) -> DmSource:
    """``tweetdesk ingest dms``: the loop with the settings' credentials."""
    src = DmSource(settings, backfill_hours=backfill_hours)
    try:
        src.run(pub, interval=interval, once=once, limit=limit)
    finally:
        pub.stats.extra.update({k: v for k, v in src.counts.items() if v})
        src.client.session.close()
    return src
