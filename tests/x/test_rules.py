"""X's rules of 2026 (issue 11): who gets an automatic reply, opt-outs, X's refusals, what X charges.

Store tests run on SQLite and PostgreSQL; the poster talks to the X API stand-in; the service tests run on the
session's broker."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from tests.fixtures.store import enriched_tweet
from tests.fixtures.xapi import Answer, _problem
from tweetdesk.app import create_app
from tweetdesk.config import Settings
from tweetdesk.records import ReferencedTweet, ReplyStatus, Tweet
from tweetdesk.reply.poster import Poster
from tweetdesk.reply.templates import ReplyTemplates
from tweetdesk.tickets.intake import Intake
from tweetdesk.tickets.policy import LISTENING_ONLY
from tweetdesk.tickets.priority import priority_of
from tweetdesk.tickets.store import TicketStore
from tweetdesk.x.rules import Prices, mentions_of, opt_out_phrase, summoned_by

T0 = datetime(2026, 3, 3, 18, 0, tzinfo=timezone.utc)
SETTINGS = Settings(our_handles=["tweetdesk", "united"])
INTAKE = Intake.from_settings(SETTINGS)
RENDER = ReplyTemplates.load().render
KEY = "an-admin-key-long-enough-for-the-tests-0123456789"


def tw(tweet_id, text, *, at=0, author="ana", author_id="35151341", **kw):
    return enriched_tweet(tweet_id, text=text, author=author, author_id=author_id,
                          created_at=T0 + timedelta(seconds=at), **kw)


def take(store, tweets):
    return store.add_tickets(tweets, RENDER, intake=INTAKE, priority=priority_of)


# --- X's mention rule -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, mentions", [
    ("@united my bag", ["united"]),
    ("hey @United, my bag", ["United"]),
    ("emailed help@united.com twice", []),  # an e-mail address is not a mention
    ("RT @united: delays today", ["united"]),
    ("＠united full-width at sign", ["united"]),  # X accepts the full-width '＠'
    ("#@united is no mention", []),
    ("@united/lists is a list, not a mention", []),
    ("@united@evil is no mention", []),
    ("@a_handle_longer_than_15 is not a user", []),
    ("(@united) and @tweetdesk.", ["united", "tweetdesk"]),
])
def test_mentions_follow_x_rule(text, mentions):
    assert mentions_of(text) == mentions


def test_summoned_by_mention_quote_or_reply_only():
    def t(**kw):
        return Tweet(id="1", text=kw.pop("text", "my bag is lost"), author="ana", created_at=T0, **kw)

    ours = ["united"]
    assert summoned_by(t(text="@united my bag"), ours) == "mention"
    assert summoned_by(t(text="united lost my bag"), ours) is None  # keyword only
    assert summoned_by(t(text="mail to x@united.com"), ours) is None
    assert summoned_by(t(mentions=["united"]), ours) == "mention"  # X's entities.mentions win over the text
    assert summoned_by(t(text="@united hi", mentions=[]), ours) is None
    assert summoned_by(t(referenced_tweets=[ReferencedTweet(type="quoted", id="9", author="United")]), ours) == "quote"
    assert summoned_by(t(referenced_tweets=[ReferencedTweet(type="quoted", id="9")]), ours, {"9"}) == "quote"
    assert summoned_by(t(referenced_tweets=[ReferencedTweet(type="quoted", id="9", author="delta")]), ours) is None
    assert summoned_by(t(in_reply_to_tweet_id="7"), ours, {"7"}) == "reply"
    assert summoned_by(t(referenced_tweets=[ReferencedTweet(type="replied_to", id="7", author="united")]), ours) == "reply"
    assert summoned_by(t(referenced_tweets=[ReferencedTweet(type="retweeted", id="9", author="united")]), ours) is None


@pytest.mark.parametrize("text, phrase", [
    ("@united STOP", "stop"), ("@united stop!!", "stop"), ("please stop 🙏 @united", "stop"),
    ("@united Unsubscribe.", "unsubscribe"), ("@united stop replying to me", "stop replying"),
    ("@united my final stop is Orlando", None), ("@united is there a ground stop at BOS?", None),
    ("@united stop losing my bags", None), ("@united nonstop flights please", None),
])
def test_opt_out_phrases(text, phrase):
    assert opt_out_phrase(text, SETTINGS.opt_out_phrases) == phrase


# --- who gets an automatic reply (store) ------------------------------------------------------------------------
def test_keyword_only_is_a_listening_ticket_and_a_mention_gets_one_reply(store):
    quiet = tw("10", "united lost my bag again, third time", author="bo", author_id="2")
    loud = tw("11", "@united lost my bag again", at=5)
    r = take(store, [quiet, loud])
    assert sorted(r.created) == sorted([quiet.ticket_id, loud.ticket_id]) and len(r.replies) == 1
    t = store.get_ticket(quiet.ticket_id)
    assert t.listening_only and t.no_reply_reason == LISTENING_ONLY and t.reply_text is None
    assert not store.replies_for(quiet.ticket_id)
    assert store.get_ticket(loud.ticket_id).summoned_by == "mention"
    assert [x.ticket_id for x in store.list_tickets(listening_only=True).items] == [quiet.ticket_id]


def test_a_quote_and_a_reply_to_our_tweet_summon_us(store):
    first = tw("20", "@united where is my bag")
    rid = take(store, [first]).replies[0]
    store.claim(rid)
    store.record_posted(rid, "29", cost_usd=0.01, cost_kind="summoned_reply")
    reply = tw("21", "still nothing, any news?", at=600, author="cy", author_id="3", in_reply_to_tweet_id="29",
               conversation_id="21")  # answers our posted reply (another customer, own conversation)
    quote = tw("22", "this is exactly my problem too", at=700, author="di", author_id="4",
               referenced_tweets=[{"type": "quoted", "id": "29"}])
    email = tw("23", "wrote to bags@united.com, nothing", at=800, author="ed", author_id="5")
    r = take(store, [reply, quote, email])
    assert len(r.created) == 3 and len(r.replies) == 2
    assert store.get_ticket(reply.ticket_id).summoned_by == "reply"
    assert store.get_ticket(quote.ticket_id).summoned_by == "quote"
    assert store.get_ticket(email.ticket_id).listening_only


def test_a_listening_thread_gets_its_one_reply_when_the_customer_asks_us(store):
    a = tw("30", "united cancelled my flight", conversation_id="30")
    b = tw("31", "@united can you rebook me?", at=60, conversation_id="30", in_reply_to_tweet_id="30")
    c = tw("32", "@united hello??", at=120, conversation_id="30", in_reply_to_tweet_id="31")
    assert not take(store, [a]).replies
    r = take(store, [b, c])
    assert r.threaded == ["31", "32"] and len(r.replies) == 1
    (reply,) = store.replies_for(a.ticket_id)
    assert reply.tweet_id == "32" and a.ticket_id in reply.text  # answers the newest tweet that asked, with the ticket
    t = store.get_ticket(a.ticket_id)
    assert t.summoned_by == "mention" and t.no_reply_reason is None
    assert not take(store, [b, c]).replies  # re-delivered: nothing new


def test_stop_cancels_queued_replies_and_bars_later_ones_across_a_restart(store_url):
    store = TicketStore(store_url)
    try:
        ask = tw("40", "@united my bag is lost")
        other = tw("41", "@united also my seat was broken", at=30, conversation_id="41")
        r = take(store, [ask, other])
        assert len(r.replies) == 2
        stop = tw("42", "@united STOP", at=60, conversation_id="42")
        r = take(store, [stop])
        assert r.opted_out == ["42"] and not r.replies
        for t in (ask, other):
            (reply,) = store.replies_for(t.ticket_id)
            assert reply.status == ReplyStatus.cancelled and "opted out" in reply.error
            assert "opted out" in store.get_ticket(t.ticket_id).no_reply_reason
        assert [o["author"] for o in store.list_opt_outs()] == ["ana"]
    finally:
        store.close()
    store = TicketStore(store_url)  # a restart: the opt-out is in the store
    try:
        later = tw("43", "@united my bag is still lost", at=3600, conversation_id="43")
        r = take(store, [later])
        assert r.created == [later.ticket_id] and not r.replies
        assert "opted out" in store.get_ticket(later.ticket_id).no_reply_reason
        assert store.opt_out_of("ana", "35151341")
        assert store.lift_opt_out("@ana") and not store.list_opt_outs()
        assert take(store, [tw("44", "@united hello again", at=7200, conversation_id="44")]).replies
    finally:
        store.close()


def test_one_automatic_reply_per_interaction_across_threads_redeliveries_and_restarts(store_url):
    thread = [tw(str(50 + i), f"@united update {i} on my lost bag", at=60 * i, conversation_id="50",
                 in_reply_to_tweet_id=str(49 + i) if i else None) for i in range(4)]
    for round_ in range(3):  # the same tweets again, each time through a fresh store (a restart)
        store = TicketStore(store_url)
        try:
            for t in thread:
                take(store, [t])
            take(store, thread)
            assert len(store.replies_for(thread[0].ticket_id)) == 1
            assert store.stats()["tickets"] == 1
        finally:
            store.close()


def test_reads_are_priced_by_source_per_day(store):
    # The store's clock is pinned: reads recorded at 23:59:59.999 and summed at 00:00 would fall on two days.
    day = datetime(2026, 1, 31, 23, 59, 59, tzinfo=timezone.utc)
    store.clock = lambda: day
    tweets = [tw(str(60 + i), "@united hi", author=f"u{i}", author_id=str(600 + i), source=src)
              for i, src in enumerate(["mentions", "mentions", "x", "replay"])]
    take(store, tweets)
    take(store, tweets)  # re-delivered: read once
    u = store.usage(day)
    assert u["today"] == {"owned_read": {"count": 2, "cost_usd": 0.002}, "post_read": {"count": 1, "cost_usd": 0.005}}
    assert u["month"] == u["today"]


# --- the poster and X's refusals --------------------------------------------------------------------------------
def _live(tmp_path, store, xapi):
    from pydantic import SecretStr

    creds = {k: SecretStr("x") for k in ("x_consumer_key", "x_consumer_secret", "x_access_token", "x_access_token_secret")}
    settings = SETTINGS.model_copy(update={"work_dir": tmp_path, "x_api_base": xapi.base_url, **creds})
    return Poster(settings, store, backoff_base=0.01)


NOT_SUMMONED = ("Reply to this conversation is not allowed because you have not been mentioned or otherwise "
                "engaged by the author of the post you are replying to.")


def test_a_403_fails_the_reply_once_and_bars_the_author_for_the_cooldown(tmp_path, sqlite_url, xapi):
    now = [datetime.now(timezone.utc)]
    store = TicketStore(sqlite_url, clock=lambda: now[0])
    try:
        r = take(store, [tw("70", "@united my bag", conversation_id="70"),
                         tw("71", "@united and my seat", at=10, conversation_id="71")])
        poster = _live(tmp_path, store, xapi)
        xapi.script(Answer(403, _problem(403, "Forbidden", NOT_SUMMONED)))
        first = poster.attempt(r.replies[0])
        assert first.kind == "failed" and "not allowed" in first.detail
        assert poster.attempt(r.replies[0]).kind == "skipped"  # never retried
        assert len(xapi.post_requests()) == 1
        # The other queued reply to the same customer is cancelled: X refused us their replies.
        other = store.get_reply(r.replies[1])
        assert other.status == ReplyStatus.cancelled and "X refused" in other.error
        (bar,) = store.list_opt_outs()
        assert bar["kind"] == "refused" and bar["until"] is not None
        assert not take(store, [tw("72", "@united hello?", at=20, conversation_id="72")]).replies
        # Once the cooldown (7 days) is over, the customer is answered again.
        now[0] += timedelta(seconds=SETTINGS.reply_refused_cooldown_seconds + 1)
        assert not store.list_opt_outs()
        assert len(take(store, [tw("73", "@united hello again", at=30, conversation_id="73")]).replies) == 1
    finally:
        store.close()


def test_a_blocked_author_is_barred_for_good(tmp_path, sqlite_store, xapi):
    store = sqlite_store
    r = take(store, [tw("80", "@united help")])
    poster = _live(tmp_path, store, xapi)
    xapi.script(Answer(403, _problem(403, "Forbidden", "You have been blocked from replying to this user's posts.")))
    assert poster.attempt(r.replies[0]).kind == "failed"
    (bar,) = store.list_opt_outs()
    assert bar["kind"] == "blocked" and bar["until"] is None


# --- the API ----------------------------------------------------------------------------------------------------
@pytest.fixture
def api(tmp_path, store):
    settings = SETTINGS.model_copy(update={"work_dir": tmp_path})
    from pydantic import SecretStr
    settings = settings.model_copy(update={"api_key": SecretStr(KEY)})
    take(store, [tw("90", "united is the worst", conversation_id="90", author="fay", author_id="9"),
                 tw("91", "@united my bag", at=5, conversation_id="91")])
    return create_app(settings, store).test_client(), store


def test_api_refuses_a_reply_x_would_refuse_and_lists_opt_outs(api):
    client, store = api
    admin = {"X-API-Key": KEY}
    quiet = store.get_ticket_by_tweet("90")
    r = client.post("/api/replies", headers=admin, json={"tweet_id": "90", "text": f"@fay sorry, ticket {quiet.ticket_id}"})
    assert r.status_code == 409 and r.get_json()["kind"] == "not_summoned" and "listening only" in r.get_json()["error"]
    full = client.get(f"/api/tickets/{quiet.ticket_id}", headers=admin).get_json()
    assert full["listening_only"] is True and full["no_reply_reason"] == LISTENING_ONLY and full["opt_out"] is None
    listing = client.get("/api/tickets?listening_only=true", headers=admin).get_json()
    assert [t["ticket_id"] for t in listing["items"]] == [quiet.ticket_id]
    take(store, [tw("92", "@united stop", at=60, conversation_id="92")])
    loud = store.get_ticket_by_tweet("91")
    r = client.post("/api/replies", headers=admin, json={"tweet_id": "91", "text": f"@ana ticket {loud.ticket_id}"})
    assert r.status_code == 409 and r.get_json()["kind"] == "opted_out"
    (o,) = client.get("/api/opt-outs", headers=admin).get_json()["items"]
    assert o["author"] == "ana" and o["kind"] == "opt_out"
    assert client.get(f"/api/tickets/{loud.ticket_id}", headers=admin).get_json()["opt_out"]["why"]
    assert client.delete("/api/opt-outs/ana", headers=admin).get_json() == {"author": "ana", "lifted": True}
    assert client.delete("/api/opt-outs/ana", headers=admin).status_code == 404
    assert client.get("/api/opt-outs").status_code in (401, 403)
    r = client.post("/api/replies", headers=admin, json={"tweet_id": "91", "text": f"@ana ticket {loud.ticket_id}"})
    assert r.status_code == 202


def test_only_an_admin_lifts_an_opt_out_audited_and_a_block_is_never_lifted(api):
    from tweetdesk.desk.core import Desk
    from tweetdesk.tickets.outbox import bar

    client, store = api
    admin = {"X-API-Key": KEY}
    desk = Desk(store, SETTINGS)
    desk.accounts.add("ann", "agent", actor="test")
    pw = desk.accounts.reset("ann", actor="test")
    tok = client.post("/api/tokens", json={"name": "ann", "password": pw}).get_json()["token"]
    take(store, [tw("92", "@united stop", at=60, conversation_id="92")])
    r = client.delete("/api/opt-outs/ana", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 403 and r.get_json()["kind"] == "forbidden"
    assert [o["author"] for o in store.list_opt_outs()] == ["ana"]
    assert client.delete("/api/opt-outs/ana", headers=admin).status_code == 200
    (entry,) = [e for e in desk.audit() if e["action"] == "opt_out_lifted"]
    assert entry["actor"] == "admin (API key)" and entry["detail"]["author"] == "ana"
    # A customer who blocked us stays barred: not by the API, not by a later refusal's cooldown.
    now = datetime.now(timezone.utc)
    with store.transaction(write=True) as conn:
        bar(conn, "9", "fay", "blocked", "X refused our reply (they blocked us)", None, None, now)
        bar(conn, "9", "fay", "refused", "X refused our reply", None, now + timedelta(days=7), now)
    r = client.delete("/api/opt-outs/fay", headers=admin)
    assert r.status_code == 409 and r.get_json()["kind"] == "blocked"
    (o,) = store.list_opt_outs()
    assert o["author"] == "fay" and o["kind"] == "blocked" and o["until"] is None


def test_budget_reports_what_x_charged(api):
    client, store = api
    f = client.get("/api/budget", headers={"X-API-Key": KEY}).get_json()
    assert f["enforced"] is False and f["monthly_read_cap"] == 3_000_000 and f["read_cap_warning"] is None
    assert f["x_usage"] == {"today": {}, "month": {}} and f["spend_month_usd"] == 0  # replayed tweets: no X read
    assert Prices().post_price(has_url=False) == ("summoned_reply", 0.01)
    assert Prices().post_price(has_url=True) == ("url_post", 0.20)


# --- the classify command ---------------------------------------------------------------------------------------
def test_classify_json_says_whether_a_tweet_summoned_us(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(json.dumps({"id": str(i), "text": t}) for i, t in enumerate(
        ["@Delta my bag is lost", "delta lost my bag", "mail me at x@delta.com"])) + "\n")
    env = {"TWEETDESK_OUR_HANDLES": '["Delta"]', "TWEETDESK_CONFIG": str(tmp_path / "absent.toml"),
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "tweetdesk.cli", "classify", "--file", str(f), "--json"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    got = [json.loads(line)["summoned"] for line in out.stdout.splitlines()]
    assert got == [True, False, False]


def test_through_the_x_stand_in_only_tweets_that_summoned_us_get_a_reply(tmp_path, sqlite_store):
    """X enforces the rule (the strict stand-in refuses a reply to any tweet that did not summon us): a mention, a
    quote of our post and a reply to it get one reply each, a keyword-only tweet none and no call to X."""
    from tests.fixtures.xapi import ACCOUNT_HANDLE, XApiStandIn

    x = XApiStandIn(strict=True).start()
    try:
        store = sqlite_store
        intake = Intake.from_settings(Settings(our_handles=[ACCOUNT_HANDLE]))
        poster = _live(tmp_path, store, x)

        def enriched(tid, by, **kw):
            t = x.tweets[tid]
            return tw(tid, t["text"], author=by, author_id=t["author_id"], conversation_id=tid, **kw)

        def post_all(tweets):
            for rid in store.add_tickets(tweets, RENDER, intake=intake, priority=priority_of).replies:
                assert poster.attempt(rid).kind == "posted"

        mention = x.add_tweet(f"@{ACCOUNT_HANDLE} my bag is lost", author="ana")
        keyword = x.add_tweet(f"{ACCOUNT_HANDLE} lost my bag again", author="bo")
        post_all([enriched(mention, "ana"), enriched(keyword, "bo")])
        ours = x.posts[0]["id"]
        quote = x.add_tweet("same here, no bag since Friday", author="cy", quote_of=ours)
        reply = x.add_tweet("thanks, any news?", author="di", reply_to=ours)
        post_all([enriched(quote, "cy", referenced_tweets=[{"type": "quoted", "id": ours}]),
                  enriched(reply, "di", in_reply_to_tweet_id=ours)])
        assert sorted(p["in_reply_to_tweet_id"] for p in x.posts) == sorted([mention, quote, reply])
        assert all(r.body["reply"]["in_reply_to_tweet_id"] != keyword for r in x.post_requests())
        assert store.get_ticket_by_tweet(keyword).listening_only
    finally:
        x.stop()
