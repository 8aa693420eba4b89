"""Reply templates and the rules every reply obeys."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures.store import enriched_tweet
from tweetdesk.records import SENTIMENTS, TOPICS, UNCLASSIFIABLE
from tweetdesk.reply.templates import (
    ReplyTemplates,
    ReplyTextError,
    TemplateError,
    check_reply_text,
    find_mentions,
    find_urls,
    weighted_length,
)


@pytest.fixture(scope="module")
def shipped():
    return ReplyTemplates.load()


def test_weighted_length_follows_x_counting():
    assert weighted_length("hello") == 5
    assert weighted_length("café") == 4  # Latin-1: weight 1
    assert weighted_length("cafe\u0301") == 4  # NFC first: e + combining accent = é
    assert weighted_length("日本") == 4  # CJK: weight 2
    assert weighted_length("😀") == 2  # an emoji counts 2
    assert weighted_length("👩\u200d💻") >= 2  # X counts a ZWJ sequence as 2; we may only over-count
    assert weighted_length("—") == 1  # U+2014 is in the 8208–8223 range


def test_url_and_mention_detection():
    assert find_urls("visit united.com now") == ["united.com"]
    assert find_urls("see https://x.co/abc") == ["https://x.co/abc"]
    assert find_urls("www.example.org") == ["www.example.org"]
    assert find_urls("e.g. the U.S. at 3.5 hrs, ref BAG-7KQ4M2XZ-H") == []
    assert find_mentions("@bob hi @Al_1 mail me@host.com") == ["bob", "Al_1"]


@pytest.mark.parametrize("sentiment", [*SENTIMENTS, UNCLASSIFIABLE])
@pytest.mark.parametrize("topic", [*TOPICS, UNCLASSIFIABLE])
def test_every_combination_renders_a_safe_reply(shipped, sentiment, topic):
    tw = enriched_tweet("123456789", topic=topic, sentiment=sentiment, author="a" * 15)
    text = shipped.render(tw)
    assert weighted_length(text) <= 280
    assert tw.ticket_id in text and text.startswith("@" + "a" * 15)
    assert find_urls(text) == [] and find_mentions(text) == ["a" * 15]


def test_specific_templates_are_chosen(shipped):
    bag = shipped.render(enriched_tweet("1", topic="Baggage Issue"))
    delay = shipped.render(enriched_tweet("2", topic="Delay and Customer Service"))
    happy = shipped.render(enriched_tweet("3", sentiment="positive", topic="Baggage Issue"))
    assert "bag" in bag and "delay on UA1234" in delay and "Thank you" in happy


def test_never_echoes_the_tweet(shipped):
    tw = enriched_tweet(
        "1",
        text="@united @scammer visit free-money.example http://spam.example #win",
        entities=[{"text": "@scammer", "label": "FLIGHT", "start": 8, "end": 16}],  # a hostile "entity"
    )
    text = shipped.render(tw)
    assert "scammer" not in text and "example" not in text and "http" not in text and "#win" not in text


def test_an_invalid_handle_is_not_mentioned(shipped):
    # Records refuse such an author at ingest; the templates stay safe for one built around that check.
    text = shipped.render(enriched_tweet("1").model_copy(update={"author": "not a handle!"}))
    assert find_mentions(text) == [] and not text.startswith("@")


@given(author=st.from_regex(r"[A-Za-z0-9_]{1,15}", fullmatch=True), tweet_id=st.integers(1, 10**19))
@settings(max_examples=100, deadline=None)
def test_any_handle_and_id_fit(author, tweet_id):
    text = ReplyTemplates.load().render(enriched_tweet(str(tweet_id), author=author))
    assert weighted_length(text) <= 280 and find_mentions(text) == [author]


def _write(tmp_path, body: str):
    p = tmp_path / "t.toml"
    p.write_text(body, encoding="utf-8")
    return p


def test_settings_override_the_shipped_file(tmp_path):
    from tweetdesk.config import Settings

    p = _write(tmp_path, '[default]\ndefault = "{{ mention }} Hi from the desk, ticket {{ ticket_id }}"\n')
    t = ReplyTemplates.from_settings(Settings(reply_templates=p))
    assert t.render(enriched_tweet("1")).startswith("@jane_doe Hi from the desk, ticket ")


@pytest.mark.parametrize(
    "body, message",
    [
        ('[default]\ndefault = "{{ mention }} see help.example.com {{ ticket_id }}"', "URL"),
        ('[default]\ndefault = "{{ mention }} ask @support {{ ticket_id }}"', "@support"),
        ('[default]\ndefault = "{{ mention }} ' + "x" * 260 + ' {{ ticket_id }}"', "280"),
        ('[default]\ndefault = "{{ mention }} no id here"', "ticket_id"),
        ('[default]\ndefault = "{{ mention }} {{ ticket_id }} {{ text }}"', "undefined"),
        ('[default]\ndefault = "{{ mention } {{ ticket_id }}"', "template default / default"),
        ('[negative]\ndefault = "{{ mention }} {{ ticket_id }}"', "[default]"),
        ("[default\n", "not valid TOML"),
        ('[default]\ndefault = "{{ mention }} {{ ticket_id }} {{ \'\'.__class__.__mro__ }}"', "unsafe|access"),
    ],
)
def test_bad_templates_are_refused_at_load(tmp_path, body, message):
    import re

    with pytest.raises(TemplateError) as e:
        ReplyTemplates.load(_write(tmp_path, body))
    assert re.search(message, str(e.value)), str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(TemplateError, match="not found"):
        ReplyTemplates.load(tmp_path / "nope.toml")


def test_check_reply_text():
    assert check_reply_text("  @Jane hi  ", author="jane") == "@Jane hi"
    for bad in ("", "a" * 281, "see bit.ly/x", "@jane and @bob"):
        with pytest.raises(ReplyTextError):
            check_reply_text(bad, author="jane")
