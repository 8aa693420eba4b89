"""X's rules, in one place: what a handle is, what counts as a mention, who summoned us, who opted out.

Since 23 February 2026 a self-serve X API app may reply only to a post whose author @mentioned or quoted
the replying account (X answers 403 otherwise), and X's developer guidelines allow automated replies only
to people who engaged first, at most one per interaction, with opt-outs honoured at once. tweetdesk
therefore answers automatically only a tweet that *summoned* one of our accounts
(``settings.our_handles``):

* it @mentions the handle by X's mention rule (X's ``entities.mentions`` when the source gives them,
  else the text read with the same rule: ``x@delta.com`` is an e-mail address, not a mention);
* it quotes one of our tweets; or
* it replies to one of our tweets.

Everything else a listening rule matched is *listening only*: ticketed for the agents, never answered
automatically. The mention rule below follows twitter-text (X's own extractor, config v3).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from tweetdesk.records import HANDLE_RE, is_handle  # noqa: F401 (X's handle rule, kept in the record's schema)

# twitter-text's validMentionOrList: '@' (or the full-width '＠') not preceded by a letter, digit, '_' or
# one of !#$%&*@＠ (so e-mail addresses and '#@x' are not mentions), except right after "RT" / "RT:".
_MENTION = re.compile(
    r"(?:^|[^A-Za-z0-9_!#$%&*@＠]|(?:^|[^A-Za-z0-9_+~.-])(?:rt|RT|rT|Rt):?)"
    r"[@＠](?P<name>[A-Za-z0-9_]{1,20})(?P<list>/[A-Za-z][A-Za-z0-9_-]{0,24})?"
)
# ... and twitter-text's endMentionMatch: a mention followed by '@', a Latin letter or '://' is none.
_END_OF_MENTION = re.compile(r"[@＠A-Za-z0-9_\u00C0-\u024F\u1E00-\u1EFF]|://")

SUMMONED_BY = ("mention", "quote", "reply")


def normalise_handle(name: str) -> str:
    return name.lstrip("@").lower()


def mentions_of(text: str) -> list[str]:
    """The user names ``text`` @mentions by X's rule, in order, each once (lists like ``@x/list`` excluded)."""
    found: list[str] = []
    for m in _MENTION.finditer(text or ""):
        if m.group("list") or _END_OF_MENTION.match(text, m.end()):
            continue
        name = m.group("name")
        if len(name) <= 15 and name not in found:
            found.append(name)
    return found


def tweet_mentions(tweet) -> list[str]:
    """The tweet's mentions: X's own ``entities.mentions`` when the source gave them, else from its text."""
    return list(tweet.mentions) if tweet.mentions is not None else mentions_of(tweet.text)


def summoned_by(tweet, our_handles: Iterable[str], our_tweet_ids: Iterable[str] = ()) -> str | None:
    """How ``tweet`` summoned one of our accounts: ``"mention"``, ``"quote"`` or ``"reply"``; None when it
    did not (a listening-only tweet). ``our_tweet_ids``: ids of tweets we know we wrote (our posted
    replies, our own tweets seen by the stream), for references whose author the record does not name."""
    ours = {normalise_handle(h) for h in our_handles}
    if any(normalise_handle(m) in ours for m in tweet_mentions(tweet)):
        return "mention"
    ids = set(our_tweet_ids)
    refs = list(tweet.referenced_tweets or ())

    def by_us(ref) -> bool:
        return ref.id in ids or (ref.author is not None and normalise_handle(ref.author) in ours)

    if any(r.type == "quoted" and by_us(r) for r in refs):
        return "quote"
    if any(r.type == "replied_to" and by_us(r) for r in refs) or (
        tweet.in_reply_to_tweet_id is not None and tweet.in_reply_to_tweet_id in ids
    ):
        return "reply"
    return None


_POLITE = {"please", "pls", "plz", "now", "thanks", "thx"}


def opt_out_phrase(text: str, phrases: Iterable[str]) -> str | None:
    """The opt-out phrase ``text`` says, any case; None if none. A one-word phrase ("stop") must be the whole
    message once mentions, punctuation, emoji and a please are set aside ("@Delta STOP!!", "please stop"), since
    "my final stop is Orlando" and "ground stop at BOS" are no opt-outs; a longer one ("stop replying") counts
    anywhere as whole words. Where in doubt the rule leans to opting out: a wrong opt-out costs one automatic
    reply (an agent still sees the ticket and can lift it), a missed one breaks X's rules."""
    body = _MENTION.sub(" ", text or "").casefold()
    words = [w for w in _WORD.findall(body) if w not in _POLITE]
    for phrase, word, pattern in _phrase_rules(tuple(phrases)):
        if word is not None:
            if words == [word]:
                return phrase
        elif pattern.search(body):
            return phrase
    return None


_WORD = re.compile(r"[\w']+")


@functools.lru_cache(maxsize=16)
def _phrase_rules(phrases: tuple[str, ...]) -> list[tuple[str, str | None, re.Pattern | None]]:
    """Each phrase as (phrase, its one word, None) or (phrase, None, its whole-words pattern), compiled once: the
    reply service asks this of every tweet of every batch. A blank phrase matches nothing and is left out."""
    rules = []
    for phrase in phrases:
        want = phrase.casefold().split()
        if len(want) == 1:
            rules.append((phrase, want[0], None))
        elif want:
            rules.append((phrase, None, re.compile(r"(?<![\w'])" + r"\W+".join(map(re.escape, want)) + r"(?![\w'])")))
    return rules


# --- prices ------------------------------------------------------------------------------------------------------
OWNED_READ, POST_READ, SUMMONED_REPLY, POST, URL_POST = "owned_read", "post_read", "summoned_reply", "post", "url_post"
# Direct messages (pay-per-use, DESIGN.md "The X API"): a DM event read (``GET /2/dm_events`` or pushed by the
# Activity API) and a DM sent (``POST /2/dm_conversations/with/:participant_id/messages``).
DM_READ, DM_SEND = "dm_read", "dm_send"
READ_KINDS = (OWNED_READ, POST_READ)  # post reads: what X's monthly read cap counts
POST_KINDS = (SUMMONED_REPLY, POST, URL_POST, DM_SEND)


@dataclass(frozen=True)
class Prices:
    """X's pay-per-use prices (settings ``x_price_*``, 2026 defaults): what a read or a post costs."""

    owned_read: float = 0.001
    post_read: float = 0.005
    summoned_reply: float = 0.01
    post: float = 0.015
    url_post: float = 0.20
    dm_read: float = 0.010
    dm_send: float = 0.015
    monthly_read_cap: int = 3_000_000

    @classmethod
    def from_settings(cls, settings) -> "Prices":
        return cls(
            owned_read=settings.x_price_owned_read,
            post_read=settings.x_price_post_read,
            summoned_reply=settings.x_price_summoned_reply,
            post=settings.x_price_post,
            url_post=settings.x_price_url_post,
            dm_read=settings.x_price_dm_read,
            dm_send=settings.x_price_dm_send,
            monthly_read_cap=settings.x_monthly_read_cap,
        )

    def read(self, source: str) -> tuple[str, float] | None:
        """The kind and price of reading one tweet from ``source``; None when X was not read (a replay file)."""
        if source == "mentions":
            return OWNED_READ, self.owned_read
        if source == "x":
            return POST_READ, self.post_read
        if source in ("dms", "activity"):  # a DM event, polled or pushed: X charges the event either way
            return DM_READ, self.dm_read
        return None

    def post_price(self, *, has_url: bool, summoned: bool = True, dm: bool = False) -> tuple[str, float]:
        """The kind and price of one post: a URL costs most; a reply to a post that summoned us least. A DM is
        priced as a DM (its privacy-policy link included: X prices DMs per message, not by content)."""
        if dm:
            return DM_SEND, self.dm_send
        if has_url:
            return URL_POST, self.url_post
        return (SUMMONED_REPLY, self.summoned_reply) if summoned else (POST, self.post)
