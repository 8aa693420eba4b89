"""X API v2 tweet objects -> ``records.Tweet``, once, for both X sources (the filtered stream and our mentions
timeline).

X sends a tweet as ``data`` (one object, or a list of them on a timeline page) plus ``includes``: the objects
the request's *expansions* pulled in (``users`` for authors and mentioned accounts, ``tweets`` for referenced
tweets). A record needs:

* the author's handle: ``data.author_id`` looked up in ``includes.users`` (expansion ``author_id``);
* who it @mentions: ``data.entities.mentions[].username`` (tweet field ``entities``) -> ``Tweet.mentions``
  (None when X sent no ``entities``: the reply side then reads the text with X's mention rule);
* what it replies to / quotes / retweets: ``data.referenced_tweets`` with each referenced tweet's author
  (``includes.tweets[].author_id`` via ``referenced_tweets.id`` and ``referenced_tweets.id.author_id``, the
  handle from ``includes.users``): that is how "a reply to / a quote of one of our tweets" is recognised;
* the thread: ``in_reply_to_user_id``, ``conversation_id``; the full text of a long post: ``note_tweet.text``.

Anything that cannot make a valid record raises ``PayloadError`` (a ``ValueError``) with a reason fit for a
dead letter: a missing field, an author the includes do not hold (an expansion missing or unknown), a
malformed ``includes`` or ``entities``. An unresolvable *referenced* tweet (deleted, protected) is not an
error: its author is simply unknown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from tweetdesk.records import Tweet, brand_of, error_reason

TWEET_FIELDS = [
    "created_at", "lang", "author_id", "conversation_id", "in_reply_to_user_id", "referenced_tweets",
    "entities",  # entities.mentions: who the tweet @mentions, by X's own reading
    "note_tweet",  # the full text of a long post (data.text stops at 280 characters)
]
EXPANSIONS = [
    "author_id", "referenced_tweets.id", "referenced_tweets.id.author_id", "entities.mentions.username",
    "in_reply_to_user_id",
]
USER_FIELDS = ["username"]


class PayloadError(ValueError):
    """An X payload that cannot make a ``Tweet``; the message is the dead letter's reason."""


@dataclass
class Includes:
    """``includes.users`` and ``includes.tweets`` by id."""

    users: dict[str, dict] = field(default_factory=dict)
    tweets: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def of(cls, includes: Any) -> "Includes":
        if includes is None:
            return cls()
        if not isinstance(includes, dict):
            raise PayloadError(f"'includes' is not an object but {type(includes).__name__}")
        out = cls()
        for key, into in (("users", out.users), ("tweets", out.tweets)):
            items = includes.get(key, [])
            if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
                raise PayloadError(f"includes.{key} is not a list of objects")
            for x in items:
                if x.get("id") is not None:
                    into[str(x["id"])] = x
        return out

    def username(self, user_id: Any) -> str | None:
        u = self.users.get(str(user_id)) if user_id is not None else None
        name = u.get("username") if u else None
        return name if isinstance(name, str) and name else None


def _mentions(data: dict) -> list[str] | None:
    entities = data.get("entities")
    if entities is None:
        return None
    if not isinstance(entities, dict):
        raise PayloadError("data.entities is not an object")
    found = entities.get("mentions", [])
    if not isinstance(found, list) or not all(isinstance(m, dict) and isinstance(m.get("username"), str)
                                              for m in found):
        raise PayloadError("data.entities.mentions is not a list of {username} objects")
    return list(dict.fromkeys(m["username"] for m in found))


def _references(data: dict, includes: Includes) -> list[dict]:
    refs = data.get("referenced_tweets") or []
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        raise PayloadError("data.referenced_tweets is not a list of objects")
    out = []
    for r in refs:
        ref_id = r.get("id")
        seen = includes.tweets.get(str(ref_id)) if ref_id is not None else None
        author_id = seen.get("author_id") if seen else None
        out.append({
            "type": r.get("type"), "id": None if ref_id is None else str(ref_id),
            "author_id": None if author_id is None else str(author_id), "author": includes.username(author_id),
        })
    return out


def tweet_from_data(data: Any, includes: Includes, *, source: str, rule: str | None = None,
                    rule_value: str | None = None) -> Tweet:
    """One X tweet object (+ the message's or page's includes) -> ``Tweet``. Raises ``PayloadError``."""
    if not isinstance(data, dict):
        raise PayloadError(f"tweet is not an object but {type(data).__name__}")
    author_id = data.get("author_id")
    if author_id is None:
        raise PayloadError("tweet has no author_id (tweet.fields=author_id missing?)")
    username = includes.username(author_id)
    if not username:
        raise PayloadError(f"author {author_id!r} has no username in includes.users (expansions=author_id missing?)")
    refs = _references(data, includes)
    note = data.get("note_tweet")
    text = note.get("text") if isinstance(note, dict) and note.get("text") else data.get("text")
    try:
        return Tweet.model_validate({
            "id": data.get("id"),
            "text": text,
            "author": username,
            "author_id": str(author_id),
            "created_at": data.get("created_at"),
            "lang": data.get("lang"),
            "brand": brand_of(text if isinstance(text, str) else "") or brand_of(rule_value or rule or ""),
            "rule": rule,
            "in_reply_to_tweet_id": next((r["id"] for r in refs if r["type"] == "replied_to"), None),
            "in_reply_to_user_id": data.get("in_reply_to_user_id"),
            "conversation_id": data.get("conversation_id"),
            "mentions": _mentions(data),
            "referenced_tweets": refs,
            "source": source,
        })
    except ValidationError as e:
        raise PayloadError(f"X payload: {error_reason(e)}") from None


def tweet_from_payload(payload: Any, rules: dict[str, str] | None = None, *, source: str = "x") -> Tweet:
    """One filtered-stream message (``data`` + ``includes`` + ``matching_rules``) -> ``Tweet``.

    ``rules`` maps rule id -> rule value, for rules without a tag. Raises ``PayloadError``."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise PayloadError("payload has no 'data' object")
    rule = rule_value = None
    matching = payload.get("matching_rules") or []
    for m in matching if isinstance(matching, list) else []:
        if isinstance(m, dict):
            rule_value = (rules or {}).get(str(m.get("id")))
            rule = m.get("tag") or rule_value or (str(m["id"]) if m.get("id") is not None else None)
            break
    return tweet_from_data(payload["data"], Includes.of(payload.get("includes")), source=source, rule=rule,
                           rule_value=rule_value)


@dataclass
class Page:
    """One timeline page: each tweet as a ``Tweet`` or, when it cannot make one, ``(raw tweet JSON, reason)``."""

    tweets: list[Tweet]
    bad: list[tuple[str, str]]
    meta: dict[str, Any]
    ids: list[str]  # every tweet id on the page that X sent, good or bad (for since_id)


def parse_page(body: bytes | str, *, source: str) -> Page:
    """A timeline answer (``data`` list + ``includes`` + ``meta``) -> ``Page``. Raises ``PayloadError`` when the
    page as a whole cannot be read (not JSON, not an object, ``data``/``includes``/``meta`` malformed)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise PayloadError(f"page is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise PayloadError(f"page is not a JSON object but {type(doc).__name__}")
    meta = doc.get("meta", {})
    if not isinstance(meta, dict):
        raise PayloadError("page meta is not an object")
    data = doc.get("data", [])
    if not isinstance(data, list):
        raise PayloadError(f"page data is not a list but {type(data).__name__}")
    includes = Includes.of(doc.get("includes"))
    page = Page([], [], meta, [])
    for item in data:
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"].isdigit():
            page.ids.append(item["id"])
        try:
            page.tweets.append(tweet_from_data(item, includes, source=source))
        except PayloadError as e:
            page.bad.append((json.dumps(item, ensure_ascii=False), str(e)))
    return page
