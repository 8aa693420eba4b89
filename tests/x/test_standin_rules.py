"""The X API stand-in enforces X's 2026 reply rule the way X does (403 with X's texts), through tweepy as the
poster calls it: the contract the reply side's tests rely on."""

from __future__ import annotations

import pytest
import tweepy
from pydantic import SecretStr

from tests.fixtures.xapi import ACCOUNT_HANDLE, BLOCKED, REPLY_NOT_ALLOWED, XApiStandIn
from tweetdesk.config import Settings
from tweetdesk.reply.poster import make_x_client


def client(tmp_path, x):
    return make_x_client(Settings(
        work_dir=tmp_path, x_api_base=x.base_url, x_consumer_key=SecretStr("ck"), x_consumer_secret=SecretStr("cs"),
        x_access_token=SecretStr("at"), x_access_token_secret=SecretStr("ats")))


def reply(c, tweet_id: str, text: str = "@kay_b Sorry! Ticket BAG-7KQ4M2XZ-H is open."):
    return c.create_tweet(text=text, in_reply_to_tweet_id=tweet_id, user_auth=True)


@pytest.fixture
def strict():
    server = XApiStandIn(strict=True).start()
    yield server
    server.stop()


def test_replies_only_to_posts_that_summoned_the_account(tmp_path, xapi):
    c = client(tmp_path, xapi)
    ours = xapi.add_tweet("Flights resume at 6am.", author=ACCOUNT_HANDLE)
    allowed = {
        "mention": xapi.add_tweet(f"@{ACCOUNT_HANDLE} my bag is lost", author="kay_b"),
        "quote": xapi.add_tweet("6am? it is 9 now", author="kay_b", quote_of=ours),
        "reply": xapi.add_tweet("still stuck", author="lee", reply_to=ours),  # X puts "@tweetdesk " in front
        "reply, mention not counted": xapi.add_tweet("still stuck", author="ann", reply_to=ours, mentions=[]),
    }
    refused = {
        "keyword": xapi.add_tweet("united lost my bag again", author="kay_b"),
        "e-mail": xapi.add_tweet(f"mailed support@{ACCOUNT_HANDLE}.com, nothing", author="kay_b"),
        "other brand": xapi.add_tweet("@united my bag is lost", author="kay_b"),
    }
    for i, (why, tid) in enumerate(allowed.items()):
        assert xapi.summoned(tid), why
        reply(c, tid, f"@kay_b Sorry! Ticket BAG-7KQ4M2XZ-{i} is open.")
    for why, tid in refused.items():
        assert not xapi.summoned(tid), why
        with pytest.raises(tweepy.Forbidden) as e:
            reply(c, tid, f"@kay_b Ticket for {why}")
        assert e.value.api_messages == [REPLY_NOT_ALLOWED], why
    assert [p["in_reply_to_tweet_id"] for p in xapi.posts] == list(allowed.values())
    # A customer answering our reply summoned us too (a reply to one of our posts).
    follow = xapi.add_tweet("thanks, rebooked", author="kay_b", reply_to=xapi.posts[0]["id"])
    assert xapi.summoned(follow)


def test_an_author_who_blocked_the_account_gets_no_reply(tmp_path, xapi):
    c = client(tmp_path, xapi)
    tid = xapi.add_tweet(f"@{ACCOUNT_HANDLE} and STOP replying", author="kay_b")
    xapi.block("kay_b")
    with pytest.raises(tweepy.Forbidden) as e:
        reply(c, tid)
    assert e.value.api_messages == [BLOCKED] and xapi.posts == []


def test_unknown_targets_are_accepted_unless_strict(tmp_path, xapi, strict):
    reply(client(tmp_path, xapi), "1001")  # the existing tests reply to ids the stand-in never saw
    assert len(xapi.posts) == 1
    with pytest.raises(tweepy.Forbidden) as e:
        reply(client(tmp_path, strict), "1001")
    assert e.value.api_messages == [REPLY_NOT_ALLOWED] and strict.posts == []
