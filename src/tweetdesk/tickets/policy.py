"""The one answer to "may we reply to this tweet?", with the reason when not (X's rules, DESIGN.md).

X lets an app reply only to a post that mentioned, quoted or replied to the replying account (403 otherwise),
allows automated replies only to people who engaged first, one per interaction, and requires opt-outs to be
honoured at once. ``ReplyPolicy`` applies that for every way a reply is made:

* **automatic replies** (``tickets.intake.decide``): ``summoned`` (did the tweet summon one of our accounts?),
  ``opt_out`` (is the tweet an opt-out?) and ``automatic`` (the reason a new ticket gets no automatic reply);
* **agents' replies** (``desk.core.Desk.send_reply``, which ``POST /api/replies`` and the desk's pages call):
  ``refusal`` reads what the store recorded of the tweet and of its author.

The store keeps what was decided (a tweet's ``summoned_by``, an author's bar), so the answer for an agent's reply
is the one the intake gave, whoever asks and whenever.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tweetdesk.x.rules import opt_out_phrase, summoned_by

# Why a ticket gets no automatic reply when nobody summoned us (shown to agents, in the API and on the dashboard).
LISTENING_ONLY = "listening only (not summoned): X allows automatic replies only to posts that mention or quote us"
# Why a summoned ticket gets no automatic reply when no reply templates are written in its customer's language.
NO_TEMPLATE = "no automatic reply: no reply template in the customer's language ({lang}); an agent answers"


def no_template(lang: str | None) -> str:
    return NO_TEMPLATE.format(lang=lang or "und")


@dataclass(frozen=True)
class Refusal:
    """Why a reply may not go: ``kind`` for programs (not_summoned | opted_out), ``reason`` for people."""

    kind: str
    reason: str


@dataclass(frozen=True)
class ReplyPolicy:
    our_handles: frozenset[str] = field(default_factory=frozenset)  # lower-case, without '@'
    opt_out_phrases: tuple[str, ...] = ()
    # Only a tweet that summoned us gets an automatic reply (always, in the service; off for callers of the
    # store that decided already).
    summoned_only: bool = True

    def is_ours(self, author: str) -> bool:
        return author.lstrip("@").lower() in self.our_handles

    def summoned(self, tweet, our_tweet_ids: Iterable[str] = ()) -> str | None:
        """How the tweet summoned one of our accounts (mention | quote | reply), or None: listening only."""
        return summoned_by(tweet, self.our_handles, our_tweet_ids)

    def opt_out(self, text: str, summoned: str | None) -> str | None:
        """The opt-out phrase of a tweet written to us, or None (a phrase in a tweet to someone else is not one)."""
        return opt_out_phrase(text, self.opt_out_phrases) if summoned else None

    def automatic(self, summoned: str | None, bar: str | None) -> str | None:
        """Why a new ticket gets no automatic reply (``bar``: the author's opt-out or X's refusal), or None."""
        if summoned is None and self.summoned_only:
            return LISTENING_ONLY
        return f"no automatic reply: {bar}" if bar is not None else None

    def answers_late_summons(self, summoned: str | None, barred: bool) -> bool:
        """A tweet in an open, unanswered thread gets the ticket's one reply if it summoned us."""
        return bool(summoned or not self.summoned_only) and not barred

    @staticmethod
    def refusal(store, ticket, tweet_id: str) -> Refusal | None:
        """Why an agent may not answer ``tweet_id`` of ``ticket`` now, or None."""
        seen = store.tweet_disposition(tweet_id) or {}
        # Rows from before schema v3 have no source: the ticket's own mark stands for them.
        if not (seen.get("summoned_by") if seen.get("source") else ticket.summoned_by):
            return Refusal("not_summoned", f"tweet {tweet_id} is listening only: it did not mention, quote or reply "
                           "to our account, and X refuses replies to such posts (answer the customer by other means)")
        barred = store.opt_out_of(ticket.author, ticket.author_id)
        if barred:
            return Refusal("opted_out", f"no reply: {barred['why']} (an admin can lift it: "
                           "DELETE /api/opt-outs/<author>)")
        return None


__all__ = ["LISTENING_ONLY", "NO_TEMPLATE", "Refusal", "ReplyPolicy", "no_template"]
