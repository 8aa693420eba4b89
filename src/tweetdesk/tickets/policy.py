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
# A tweet's channel, and how a direct message "summoned" us: X lets us DM whoever DMed us first.
DM = "dm"
NO_PRIVACY_LINK = ("no DM sent: X's guidelines require a privacy-policy link in support DMs and none is set "
                   "(TWEETDESK_PRIVACY_POLICY_URL)")
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
    def dm_refusal(store, ticket, privacy_policy_url: str | None) -> Refusal | None:
        """Why an agent may not answer ``ticket``'s customer by direct message now, or None. X's guidelines:
        only someone who DMed us first (their DM is in the store), never one who opted out, and every support
        DM carries the operator's privacy-policy link."""
        if not privacy_policy_url:
            return Refusal("no_privacy_link", NO_PRIVACY_LINK)
        if not ticket.author_id or store.last_dm(ticket.ticket_id, ticket.author, ticket.author_id) is None:
            return Refusal("never_dmed", f"@{ticket.author} never sent us a direct message: X allows a DM only to "
                           "someone who DMed us first (invite them to DM us in a public reply)")
        barred = store.opt_out_of(ticket.author, ticket.author_id)
        if barred:
            return Refusal("opted_out", f"no DM: {barred['why']} (an admin can lift it: DELETE /api/opt-outs/<author>)")
        return None

    @staticmethod
    def refusal(store, ticket, tweet_id: str) -> Refusal | None:
        """Why an agent may not answer ``tweet_id`` of ``ticket`` now, or None."""
        seen = store.tweet_disposition(tweet_id) or {}
        if seen.get("channel") == DM:
            return Refusal("private", f"{tweet_id} is a direct message: answer it by DM, never in public")
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
