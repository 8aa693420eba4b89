"""Our account's mentions timeline as a tweet source: ``tweetdesk ingest mentions``.

``GET /2/users/:id/mentions`` (user context) lists the posts that @mention our account: exactly the customers who
asked us, the ones X lets an automated account answer, at X's *owned read* price ($0.001 a post against $0.005
for a post read through the filtered stream). It is the live source for replying; the filtered stream stays for
listening (keyword rules).

One poll asks for everything newer than ``since_id`` (the first poll: the last ``backfill_hours``), with the
tweet fields and expansions the record needs (``ingest.xpayload``: author, referenced tweets and their authors,
mentions, conversation, long-post text), follows ``meta.next_token`` across pages (X answers newest first), then
publishes the poll's tweets to ``tweets.raw`` oldest first as ``Tweet(source="mentions")``.

* **Neither skip nor repeat across restarts**: ``since_id`` lives in ``<work_dir>/x_mentions_state.json``
  (written atomically) and moves only after Kafka acknowledged every message of the poll. A poll that could not
  read all its pages (a malformed page) publishes what it read, keeps ``since_id`` and remembers the ids it
  handled, so the next poll fills the gap without publishing them again. Only a crash between Kafka's
  acknowledgement and the state write repeats a poll (at least once; downstream dedupes by tweet id).
* **Bad input**: a tweet that cannot make a record, or a page that cannot be read (not JSON, wrong shapes), goes
  to ``tweets.dead`` with the reason; the poll goes on.
* **Rate limits**: X's ``x-rate-limit-remaining`` / ``x-rate-limit-reset`` on every answer; at 0 (or on a 429)
  the source sleeps until the reset, interruptibly (``stop``). 5xx or X unreachable: the poll is abandoned
  (nothing published, nothing lost) and retried after a back-off.
* **Credentials**: ``tweetdesk.x.auth.user_client`` (OAuth 2.0 from ``tweetdesk x-login``, or OAuth 1.0a). A
  refresh token X refuses ends the source with one line (``run tweetdesk x-login again``), since_id untouched.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from tweetdesk.config import Settings
from tweetdesk.errors import TweetdeskError
from tweetdesk.ingest.publisher import Publisher
from tweetdesk.ingest.xpoll import PollResult, UserPoller
from tweetdesk.records import DeadLetter, Tweet
from tweetdesk.x.payload import EXPANSIONS, TWEET_FIELDS, USER_FIELDS, PayloadError, parse_page

log = logging.getLogger(__name__)

STAGE = "ingest"
STATE_FILE = "x_mentions_state.json"
PAGE_SIZE = 100  # X's maximum per request


class MentionsError(TweetdeskError):
    """X refuses the mentions timeline for a reason only the user can fix."""


class MentionsSource(UserPoller):
    """Polls our mentions timeline into a ``Publisher`` (rate limits, state, loop: ``xpoll.UserPoller``)."""

    what = "mentions"
    state_file = STATE_FILE
    error = MentionsError

    def __init__(self, settings, *, page_size: int = PAGE_SIZE, backfill_hours: float = 24.0, **kw):
        super().__init__(settings, **kw)
        self.page_size = page_size
        self.backfill_hours = backfill_hours

    # --- one poll -------------------------------------------------------------------------------------------------
    def poll(self, pub: Publisher) -> PollResult:
        """Read everything new, publish it oldest first, then (Kafka having acknowledged all) save the state."""
        account = self.account()
        result = PollResult()
        if account is None:
            return result
        state = self.state
        params: dict = {"max_results": self.page_size, "tweet_fields": TWEET_FIELDS, "expansions": EXPANSIONS,
                        "user_fields": USER_FIELDS}
        if state.since_id:
            params["since_id"] = state.since_id
        elif self.backfill_hours > 0:
            params["start_time"] = datetime.fromtimestamp(self.clock(), timezone.utc) - timedelta(hours=self.backfill_hours)
        self.counts["polls"] += 1
        tweets: dict[str, Tweet] = {}
        bad: list[DeadLetter] = []
        seen: list[str] = []
        token = None
        while True:
            resp = self.call(self.client.get_users_mentions, account,
                              **params, **({"pagination_token": token} if token else {}))
            if resp is None:  # asked to stop: publish nothing of a half-read poll
                return result
            result.pages += 1
            self.counts["pages"] += 1
            where = f"X mentions page {result.pages}"
            try:
                page = parse_page(resp.content, source="mentions")
            except PayloadError as e:
                bad.append(DeadLetter.of(resp.content, f"{where}: {e}", STAGE, key=f"mentions:{account}"))
                result.complete = False  # the pages after it cannot be reached: since_id stays
                break
            for t in page.tweets:
                tweets.setdefault(t.id, t)
            for raw, reason in page.bad:
                bad.append(DeadLetter.of(raw, f"{where}: {reason}", STAGE, key=f"mentions:{account}"))
            seen += page.ids
            token = page.meta.get("next_token")
            if not token:
                break
            if not isinstance(token, str):
                bad.append(DeadLetter.of(resp.content, f"{where}: meta.next_token is not a string", STAGE,
                                         key=f"mentions:{account}"))
                result.complete = False
                break
        return self.finish_poll(pub, state, tweets, bad, seen, result, position="since_id")

def run_mentions(settings: Settings, pub: Publisher, *, interval: float = 30.0, once: bool = False,
                 limit: int | None = None, backfill_hours: float = 24.0) -> MentionsSource:
    """``tweetdesk ingest mentions``: the loop above with the settings' credentials."""
    src = MentionsSource(settings, backfill_hours=backfill_hours)
    try:
        src.run(pub, interval=interval, once=once, limit=limit)
    finally:
        pub.stats.extra.update({k: v for k, v in src.counts.items() if v})
        src.client.session.close()
    return src
