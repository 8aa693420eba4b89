"""Replies in the customer's language or not at all, and a wording that fits the model's certainty (issue 30),
with the real models, the shipped templates and the ticket store (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from tests.fixtures.store import enriched_tweet
from tweetdesk.config import Settings
from tweetdesk.desk.core import Desk
from tweetdesk.desk.inbox import InboxFilters, inbox, languages
from tweetdesk.desk.timers import Timers
from tweetdesk.models.enrich import enrich_batch
from tweetdesk.records import NOT_INFERRED, Tweet
from tweetdesk.reply.templates import TONE_MIN_CONFIDENCE, ReplyTemplates, TemplateError
from tweetdesk.tickets.intake import Intake
from tweetdesk.tickets.policy import no_template
from tweetdesk.tickets.priority import LANGUAGE, URGENT, desk_class, priority_of
from tweetdesk.tickets.reports import Filters, ticket_figures
from tweetdesk.tickets.schema import replies

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
SETTINGS = Settings()
INTAKE = Intake(our_handles=frozenset({"tweetdesk"}), summoned_only=True, opt_out_phrases=("stop",))
NEUTRAL_EN = "Thanks for reaching out — we've opened ticket"


def _enrich(*texts: str):
    return enrich_batch([Tweet(id=str(500 + i), text=t, author=f"cust{i}", created_at=NOW + timedelta(seconds=i))
                         for i, t in enumerate(texts)], SETTINGS)


def _queued(store) -> dict[str, str]:
    with store.transaction() as conn:
        return dict(conn.execute(sa.select(replies.c.ticket_id, replies.c.text)).all())


def test_spanish_mention_gets_a_spanish_reply_and_german_none(store, tmp_path):
    es, de, en = _enrich("@tweetdesk mi vuelo fue cancelado y nadie contesta el teléfono",
                         "@tweetdesk gibt es in Frankfurt eine Lounge für Gäste der Economy Class?",
                         "@tweetdesk you lost my bag on UA 1234 from ORD, nobody can tell me where it is")
    assert (es.lang, de.lang, en.lang) == ("es", "de", "en")
    res = store.add_tickets([es, de, en], ReplyTemplates.load().render, intake=INTAKE)
    assert len(res.created) == 3
    queued = _queued(store)
    assert queued[es.ticket_id].startswith("@cust0 Gracias por escribirnos. Hemos abierto el caso " + es.ticket_id)
    assert de.ticket_id not in queued  # no German templates: no automatic reply ...
    assert "sorry" in queued[en.ticket_id].lower()
    ticket = store.get_ticket(de.ticket_id)
    assert ticket.lang == "de" and ticket.sentiment == NOT_INFERRED
    assert ticket.no_reply_reason == no_template("de") and "(de)" in ticket.no_reply_reason  # ... and it says why
    # ... and it waits in the language queue, with that queue's own first-response timer.
    desk = Desk(store, Settings(work_dir=tmp_path, desk_due_minutes={"language": 30}))
    assert desk_class(ticket) == LANGUAGE
    tm = Timers(desk).for_ticket(ticket, now=ticket.created_at)
    assert tm["class"] == LANGUAGE and tm["due_at"] == ticket.created_at + timedelta(minutes=30)
    got = inbox(desk, InboxFilters.parse({"class": LANGUAGE}))
    assert [i["ticket"].ticket_id for i in got["items"]] == [de.ticket_id]  # the Spanish one is urgent (cancelado)
    assert [i["ticket"].ticket_id for i in inbox(desk, InboxFilters.parse({"lang": "es"}))["items"]] == [es.ticket_id]
    assert languages(desk) == ["de", "en", "es"]
    # The reports count them apart: by language, and as "not inferred", never as a sentiment.
    figures = ticket_figures(store, Filters())
    assert figures.by_lang == {"de": 1, "en": 1, "es": 1}
    assert figures.by_sentiment[NOT_INFERRED] == 2 and "negative" in figures.by_sentiment
    assert ticket_figures(store, Filters.parse(None, None, "de")).tickets == 1
    assert store.stats()["tickets_by_lang"] == {"de": 1, "en": 1, "es": 1}


def test_urgency_of_an_unread_language_rests_on_its_words_not_a_guessed_sentiment():
    es, de = _enrich("@tweetdesk mi vuelo fue cancelado y nadie contesta", "@tweetdesk wo ist die Lounge in Frankfurt?")
    assert es.sentiment == de.sentiment == NOT_INFERRED
    assert priority_of(es) == URGENT and desk_class(es) == "urgent"
    assert desk_class(de) == LANGUAGE and priority_of(de) == 2  # its reply is ordered with the negative ones


def test_uncertain_english_tweet_gets_the_neutral_wording():
    (seat,) = _enrich("@tweetdesk seat 8C on the new planes has real legroom, I'm 6'4 and comfortable for once")
    assert seat.sentiment in ("negative", "positive") and seat.sentiment_score < TONE_MIN_CONFIDENCE
    text = ReplyTemplates.load().render(seat)
    assert text.startswith(f"@cust0 {NEUTRAL_EN} {seat.ticket_id}")
    assert "sorry" not in text.lower() and "thank you" not in text.lower()


@pytest.mark.parametrize("sentiment", ["negative", "positive"])
def test_tone_follows_the_threshold(sentiment):
    t = ReplyTemplates.load()
    sure = t.render(enriched_tweet("1", sentiment=sentiment, sentiment_score=TONE_MIN_CONFIDENCE))
    unsure = t.render(enriched_tweet("1", sentiment=sentiment, sentiment_score=TONE_MIN_CONFIDENCE - 0.01))
    assert NEUTRAL_EN not in sure and NEUTRAL_EN in unsure
    # An operator's threshold of 0 keeps every apology and thank-you.
    lenient = ReplyTemplates.load(tone_min_confidence=0.0)
    assert NEUTRAL_EN not in lenient.render(enriched_tweet("1", sentiment=sentiment, sentiment_score=0.34))
    # Neutral never apologises or thanks, whatever the score.
    assert NEUTRAL_EN not in t.render(enriched_tweet("1", sentiment="neutral", sentiment_score=0.34))


@pytest.mark.parametrize("lang, opening", [("es", "Gracias por escribirnos"), ("pt", "Obrigado por entrar em contato"),
                                           ("fr", "Merci de nous avoir écrit"), ("en", "Thanks for getting in touch")])
def test_shipped_languages_render_with_the_ticket_id(lang, opening):
    t = ReplyTemplates.load()
    assert t.languages == ["en", "es", "fr", "pt"]
    tw = enriched_tweet("1", lang=lang, sentiment=NOT_INFERRED, sentiment_score=0.0, topic=NOT_INFERRED,
                        topic_score=0.0)
    text = t.render(tw)
    assert text.startswith(f"@jane_doe {opening}") and text.count(tw.ticket_id) == 2
    assert t.render(tw.model_copy(update={"lang": "de"})) is None


def test_operators_add_a_language_beside_the_english_file(tmp_path):
    en = tmp_path / "replies.toml"
    en.write_text('[default]\ndefault = "{{ mention }} ticket {{ ticket_id }}"\n', encoding="utf-8")
    (tmp_path / "replies.de.toml").write_text(
        '[default]\ndefault = "{{ mention }} Danke, Ticket {{ ticket_id }} ist eröffnet."\n', encoding="utf-8")
    t = ReplyTemplates.from_settings(Settings(reply_templates=en))
    assert t.languages == ["en", "de"]
    assert t.render(enriched_tweet("1", lang="de")).startswith("@jane_doe Danke, Ticket ")
    # A language file is checked like the English one, and must be named for a language.
    (tmp_path / "replies.it.toml").write_text('[default]\ndefault = "{{ mention }} grazie"\n', encoding="utf-8")
    with pytest.raises(TemplateError, match=r"replies\.it\.toml.*ticket_id"):
        ReplyTemplates.load(en)
    (tmp_path / "replies.it.toml").unlink()
    (tmp_path / "replies.Deutsch.toml").write_text('[default]\ndefault = "{{ ticket_id }}"\n', encoding="utf-8")
    with pytest.raises(TemplateError, match="language code"):
        ReplyTemplates.load(en)
