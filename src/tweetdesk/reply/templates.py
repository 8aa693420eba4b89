"""Reply texts: Jinja2 templates per sentiment × topic (``templates.toml``, English), one file per other
language beside it (``templates.es.toml``, ``templates.pt.toml``, ``templates.fr.toml``: the same format; an
operator adds ``templates.<lang>.toml``), and the rules every reply obeys, whoever wrote it (template or agent):

* at most 280 characters **as X counts them** (``weighted_length``);
* no URL — X charges 20× for a post with a link, and auto-links bare domains;
* no @mention but the customer's own: we never amplify other accounts or spam named in a tweet.

A tweet gets a reply in its own language (``EnrichedTweet.lang``; English and undetermined read the English
file) or none: ``render`` gives None for a language without a file, and the ticket says why
(``tickets.policy.NO_TEMPLATE``). A reply apologises ([negative]) or thanks ([positive]) only when the sentiment
model was at least ``tone_min_confidence`` sure; below it the [uncertain] wording answers (docs/replies.md).

The templates see only vetted variables (handle, ticket ID, topic, sentiment, a flight number), never
the customer's text, and run in Jinja's sandbox because a support lead edits them.
"""

from __future__ import annotations

import logging
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined
from jinja2 import TemplateError as JinjaError
from jinja2.sandbox import SandboxedEnvironment

from tweetdesk.errors import InputError, TweetdeskError
from tweetdesk.nlp.lang import MODEL_LANGUAGE, is_model_language
from tweetdesk.records import EnrichedTweet
from tweetdesk.x.rules import is_handle

log = logging.getLogger(__name__)

SHIPPED_TEMPLATES = Path(__file__).with_name("templates.toml")
MAX_WEIGHTED_LENGTH = 280
# Below this sentiment score an automatic reply neither apologises nor thanks (chosen on the validation split:
# docs/replies.md; the service reads settings.reply.tone_min_confidence, whose default this is).
TONE_MIN_CONFIDENCE = 0.65
# The sentiments whose wording takes a side (an apology, a thank-you): only when the model is sure.
TONED = frozenset({"negative", "positive"})
UNCERTAIN = "uncertain"
_LANG_CODE = re.compile(r"[a-z]{2,3}")

# X's counting (twitter-text config v3): code points in these ranges weigh 1, all others 2; text is
# NFC-normalised first. X counts a whole emoji sequence as 2; we count each code point, which only
# ever over-counts: safe. (The twitter-text port on PyPI needs pkg_resources, gone from setuptools.)
_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))

# Anything X would turn into a link: a scheme, "www.", or a bare dotted name ending in a TLD-like
# word ("example.com", "bit.ly/x"), in any script: internationalised domains ("пример.рф", "例え.テスト",
# "xn--e1afmkfd.xn--p1ai") and the dots IDNA reads as '.' (。．｡) included. Deliberately broader than X's
# TLD list: a false alarm costs an agent a rewording, a missed link $0.20 and a spam-like post.
_DOT = "[.\u3002\uff0e\uff61]"
_LABEL = r"[^\W_](?:[\w-]*[^\W_])?"  # letters or digits of any script, inner '-' and '_'
_TLD = r"(?:[^\W\d_]{2,63}|xn--[a-z0-9-]{2,59})"
_URL = re.compile(
    rf"(?i)(?:\b[a-z][a-z0-9+.-]*://\S+|\bwww{_DOT}\S+|(?<!\w){_LABEL}(?:{_DOT}{_LABEL})*{_DOT}{_TLD}(?![\w-])(?:/\S*)?)"
)
# X's mention rule: @ + 1–15 word characters, not preceded by a word character or another @.
_MENTION = re.compile(r"(?<![A-Za-z0-9_!@#$%&*])[@＠]([A-Za-z0-9_]{1,15})")
# Both used with ``fullmatch`` (never "$", which also matches before a final newline).
_FLIGHT = re.compile(r"[A-Z][A-Z0-9][0-9]{1,4}")


class TemplateError(TweetdeskError):
    """A reply template is malformed or could break a reply rule."""


class ReplyTextError(InputError):
    """A reply text breaks a rule (too long, a URL, a foreign @mention, empty)."""


_HEAVY = re.compile("[^%s]" % "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in _LIGHT_RANGES))


def weighted_length(text: str) -> int:
    """Length of ``text`` as X counts it (conservative: never below X's own count)."""
    text = unicodedata.normalize("NFC", text)
    return len(text) + len(_HEAVY.findall(text))


def find_urls(text: str) -> list[str]:
    return _URL.findall(text)


def find_mentions(text: str) -> list[str]:
    return _MENTION.findall(text)


def valid_handle(author: str | None) -> str | None:
    """The X handle to @mention, or None when ``author`` is not a valid handle."""
    if not author:
        return None
    a = author.lstrip("@")
    return a if is_handle(a) else None


def check_reply_text(text: str, *, author: str | None = None) -> str:
    """Return ``text`` normalised (NFC, trimmed) or raise ReplyTextError naming the broken rule.

    The only @mention allowed is ``author``'s (case-insensitive, as X handles are)."""
    if not isinstance(text, str):
        raise ReplyTextError("reply text must be a string")
    text = unicodedata.normalize("NFC", text).strip()
    if not text:
        raise ReplyTextError("reply text is empty")
    n = weighted_length(text)
    if n > MAX_WEIGHTED_LENGTH:
        raise ReplyTextError(f"reply is {n} characters as X counts them; the limit is {MAX_WEIGHTED_LENGTH}")
    urls = find_urls(text)
    if urls:
        raise ReplyTextError(f"reply must not contain a URL or domain name (found {urls[0]!r})")
    allowed = (author or "").lstrip("@").lower()
    foreign = [m for m in find_mentions(text) if m.lower() != allowed]
    if foreign:
        raise ReplyTextError(f"reply must not @mention anyone but the customer (found @{foreign[0]})")
    return text


# A direct message's own limit (X: 10,000 characters) and the link X's guidelines require in support DMs.
MAX_DM_LENGTH = 10_000
INVITE_DM = re.compile(r"\bDMs?\b")  # a public reply that invites the customer to DM us says "DM"
DM_ACK = ("Thanks for your message. We've opened ticket {ticket_id} and an agent will answer you here in this "
          "conversation. Quote {ticket_id} if you contact us again. Reply STOP to stop our messages.")


def dm_text(text: str, privacy_policy_url: str | None) -> str:
    """A direct message as sent: ``text`` (NFC, trimmed, within X's DM limit) followed by the privacy-policy
    link X's guidelines require (raises ``ReplyTextError`` without one). Links are fine in a DM: X prices a
    DM per message; a DM is private, so no @mention rule applies."""
    if not isinstance(text, str):
        raise ReplyTextError("reply text must be a string")
    text = unicodedata.normalize("NFC", text).strip()
    if not text:
        raise ReplyTextError("reply text is empty")
    if not privacy_policy_url:
        raise ReplyTextError("no DM without the privacy-policy link X requires (TWEETDESK_PRIVACY_POLICY_URL)")
    footer = f"Privacy: {privacy_policy_url}"
    if footer not in text:
        text = f"{text}\n\n{footer}"
    if len(text) > MAX_DM_LENGTH:
        raise ReplyTextError(f"a DM is at most {MAX_DM_LENGTH:,} characters; this one is {len(text):,}")
    return text


@dataclass(frozen=True)
class _Entry:
    key: str  # "negative / Baggage Issue", for messages
    source: str
    template: Any


class ReplyTemplates:
    """Loaded, checked templates. ``render(tweet)`` gives a reply that obeys every rule."""

    # Worst-case values for the load-time check: the longest handle, ticket ID and flight number.
    _WORST = {"author": "W" * 15, "ticket_id": "BAG-WWWWWWWW-W", "flight": "UA9999"}

    def __init__(self, table: dict[str, Any], origin: str = "<templates>", *, lang: str = MODEL_LANGUAGE,
                 others: dict[str, "ReplyTemplates"] | None = None,
                 tone_min_confidence: float = TONE_MIN_CONFIDENCE, invite_dm: bool = False):
        self.origin = origin
        self.lang = lang
        self.tone_min_confidence = tone_min_confidence
        self._others = dict(others or {})
        # ``{% if dm %}``: templates may invite the customer to DM us (booking codes, payments) when we can
        # answer DMs: the operator allows it and set the privacy-policy link X requires in support DMs.
        self.invite_dm = invite_dm
        self._env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True)
        self._entries: dict[tuple[str, str], _Entry] = {}
        for section, body in table.items():
            if not isinstance(body, dict):
                raise TemplateError(f"{origin}: [{section}] must be a table of \"topic\" = \"template\" lines")
            for topic, source in body.items():
                if not isinstance(source, str):
                    raise TemplateError(f"{origin}: [{section}] \"{topic}\" must be a string")
                key = f"{section} / {topic}"
                try:
                    tpl = self._env.from_string(source)
                except JinjaError as e:
                    raise TemplateError(f"{origin}: template {key}: {e}") from None
                self._entries[(section, topic)] = _Entry(key, source, tpl)
        if ("default", "default") not in self._entries:
            raise TemplateError(f"{origin}: a [default] table with a `default` template is required")
        for entry in self._entries.values():
            self._check(entry)

    @classmethod
    def load(cls, path: Path | str | None = None, *, tone_min_confidence: float = TONE_MIN_CONFIDENCE,
             invite_dm: bool = False) -> "ReplyTemplates":
        """The English templates of ``path`` (default: the shipped ones) and every ``<stem>.<lang>.toml``
        beside it, each language checked like English."""
        path = Path(path) if path else SHIPPED_TEMPLATES
        others = {}
        for f in sorted(path.parent.glob(f"{path.stem}.*{path.suffix}")):
            lang = f.name[len(path.stem) + 1 : -len(path.suffix)]
            if not _LANG_CODE.fullmatch(lang) or lang == MODEL_LANGUAGE:
                raise TemplateError(f"reply templates file {f}: name it {path.stem}.<language code>{path.suffix} "
                                    f"(a lower-case ISO 639 code other than {MODEL_LANGUAGE}, e.g. {path.stem}.de{path.suffix})")
            others[lang] = cls(_read(f), origin=str(f), lang=lang, tone_min_confidence=tone_min_confidence,
                               invite_dm=invite_dm)
        return cls(_read(path), origin=str(path), others=others, tone_min_confidence=tone_min_confidence,
                   invite_dm=invite_dm)

    @classmethod
    def from_settings(cls, settings) -> "ReplyTemplates":
        return cls.load(settings.reply_templates, tone_min_confidence=settings.reply_tone_min_confidence,
                        invite_dm=settings.reply_invite_dm and bool(settings.privacy_policy_url))

    @property
    def languages(self) -> list[str]:
        """The languages an automatic reply can be written in."""
        return [self.lang, *sorted(self._others)]

    def for_language(self, lang: str | None) -> "ReplyTemplates | None":
        """The templates for a tweet in ``lang`` (English for English and undetermined), or None."""
        if is_model_language(lang):
            return self
        return self._others.get(lang or "")

    def _check(self, entry: _Entry) -> None:
        section, topic = entry.key.split(" / ", 1)
        for flight, dm in (("", False), (self._WORST["flight"], False), ("", True), (self._WORST["flight"], True)):
            ctx = self._context(self._WORST["author"], self._WORST["ticket_id"], topic, section, flight, dm)
            try:
                text = self._render(entry, ctx)
                if ctx["ticket_id"] not in text:
                    raise ReplyTextError("it must include {{ ticket_id }}")
                check_reply_text(text, author=ctx["author"])
            except (ReplyTextError, JinjaError) as e:
                raise TemplateError(f"{self.origin}: template {entry.key}: {e}") from None

    @staticmethod
    def _context(author: str | None, ticket_id: str, topic: str, sentiment: str, flight: str,
                 dm: bool = False) -> dict[str, Any]:
        handle = valid_handle(author)
        return {
            "dm": dm,
            "author": handle or "",
            "mention": f"@{handle}" if handle else "",
            "ticket_id": ticket_id,
            "topic": topic,
            "sentiment": sentiment,
            "flight": flight,
        }

    @staticmethod
    def _render(entry: _Entry, ctx: dict[str, Any]) -> str:
        return " ".join(entry.template.render(**ctx).split())

    def entry_for(self, sentiment: str, topic: str) -> _Entry:
        for key in ((sentiment, topic), (sentiment, "default"), ("default", "default")):
            if key in self._entries:
                return self._entries[key]
        raise AssertionError("unreachable: [default] default is required")

    def wording(self, sentiment: str, score: float) -> str:
        """The section a reply's wording comes from: the sentiment, or [uncertain] for an apology or a thank-you
        the model is not sure enough of."""
        return UNCERTAIN if sentiment in TONED and score < self.tone_min_confidence else sentiment

    def render(self, tweet: EnrichedTweet) -> str | None:
        """The reply to ``tweet`` in its language: personalised, ≤ 280 (X-weighted), no URL, no foreign
        mention; None when there are no templates for its language (an agent answers)."""
        templates = self.for_language(tweet.lang)
        return None if templates is None else templates._render_tweet(tweet)

    def _render_tweet(self, tweet: EnrichedTweet) -> str:
        ctx = self._context(tweet.author, tweet.ticket_id, tweet.topic, tweet.sentiment, flight_of(tweet),
                            self.invite_dm)
        entry = self.entry_for(self.wording(tweet.sentiment, tweet.sentiment_score), tweet.topic)
        try:
            return check_reply_text(self._render(entry, ctx), author=ctx["author"])
        except (ReplyTextError, JinjaError) as e:
            # The load-time check covers the worst case, so this means a bug: say so, stay safe.
            log.error("template %s failed for ticket %s (%s); using the generic reply", entry.key, tweet.ticket_id, e)
            return check_reply_text(self._render(self._entries[("default", "default")], ctx), author=ctx["author"])

    def keys(self) -> list[str]:
        return [e.key for e in self._entries.values()]


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TemplateError(f"reply templates file {path} not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise TemplateError(f"reply templates file {path} is not valid TOML: {e}") from None


def flight_of(tweet: EnrichedTweet) -> str:
    """A flight number from the tweet's entities, only if it has the plain shape 'UA1234'."""
    for e in tweet.entities:
        if e.label == "FLIGHT":
            value = (getattr(e, "norm", None) or e.text or "").replace(" ", "").upper()
            if _FLIGHT.fullmatch(value):
                return value
    return ""
