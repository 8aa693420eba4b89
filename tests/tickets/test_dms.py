"""Direct messages in the ticket store and the desk (issue 29), on the real store (SQLite and PostgreSQL): one
ticket per customer case, DMs answered by DM with the privacy link, X's DM rules and caps. The path through the
broker, the stream and the X stand-in is tested in tests/reply/test_dm_flow.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.fixtures.store import enriched_tweet
from tweetdesk.config import Settings
from tweetdesk.desk.accounts import DeskError, bootstrap_admin
from tweetdesk.desk.core import Desk
from tweetdesk.records import ReplyStatus
from tweetdesk.reply.budget import ReplyBudget
from tweetdesk.reply.consumer import ReplyConsumer
from tweetdesk.reply.templates import ReplyTemplates
from tweetdesk.tickets.intake import OPENED, THREADED, Intake
from tweetdesk.tickets.policy import NO_PRIVACY_LINK
from tweetdesk.tickets.priority import priority_of
from tweetdesk.tickets.store import TicketStatus

T0 = datetime(2026, 3, 3, 18, 0, tzinfo=timezone.utc)
PRIVACY = "https://example.com/privacy"
ADMIN = bootstrap_admin()


def settings(**kw) -> Settings:
    return Settings(**{"privacy_policy_url": PRIVACY, **kw})


def post(tweet_id, *, at=0, author="ana", author_id="35151341", **kw):
    kw.setdefault("text", "@united my bag never arrived on UA 1234")
    return enriched_tweet(tweet_id, author=author, author_id=author_id, created_at=T0 + timedelta(seconds=at),
                          conversation_id=kw.pop("conv", str(tweet_id)), **kw)


def dm(event_id, text, *, at=60, author="ana", author_id="35151341", **kw):
    return enriched_tweet(event_id, text=text, author=author, author_id=author_id, channel="dm",
                          dm_conversation_id=f"{author_id}-999", source="dms", mentions=[],
                          created_at=T0 + timedelta(seconds=at), **kw)


def take(store, tweets, s=None):
    s = s or settings()
    consumer = ReplyConsumer.__new__(ReplyConsumer)  # its reply_text only: no broker needed for the store's side
    consumer.settings, consumer.templates = s, ReplyTemplates.load()
    return store.add_tickets(tweets, consumer.reply_text, intake=Intake.from_settings(s), priority=priority_of)


@pytest.fixture
def desk(store, tmp_path):
    return Desk(store, settings(work_dir=tmp_path))


def test_a_dm_joins_its_customers_open_ticket_and_a_public_reply_never_answers_it(store):
    opener = post("100")
    take(store, [opener])
    r = take(store, [dm("9001", "my booking code is QX7RT2, bag tag UA123456")])
    assert r.threaded == ["9001"] and not r.created and not r.replies
    t = store.get_ticket(opener.ticket_id)
    assert t.message_count == 2 and t.last_tweet_id == "9001" and t.channel == "public"
    conv = store.conversation(opener.ticket_id)
    assert [(m["tweet_id"], m["channel"]) for m in conv if m["kind"] == "customer"] == [("100", "public"), ("9001", "dm")]
    # The automatic public reply still answers the public tweet, never the DM.
    (auto,) = store.replies_for(opener.ticket_id)
    assert auto.tweet_id == "100" and auto.channel == "public"
    assert store.tweet_disposition("9001")["disposition"] == THREADED


def test_a_dm_without_an_open_ticket_opens_one_answered_by_dm_with_the_privacy_link(store):
    r = take(store, [dm("9002", "hi, I need to change the name on my booking")])
    (tid,) = r.created
    t = store.get_ticket(tid)
    assert t.channel == "dm" and t.private and store.tweet_disposition("9002")["disposition"] == OPENED
    (ack,) = store.replies_for(tid)
    assert ack.channel == "dm" and ack.to_user_id == "35151341" and ack.tweet_id == "9002"
    assert tid in ack.text and ack.text.endswith(f"Privacy: {PRIVACY}")


def test_without_a_privacy_link_no_dm_is_queued_and_the_ticket_says_why(store):
    r = take(store, [dm("9003", "hello?")], settings(privacy_policy_url=None))
    (tid,) = r.created
    assert store.replies_for(tid) == []
    assert store.get_ticket(tid).no_reply_reason == NO_PRIVACY_LINK


def test_a_quoted_ticket_id_links_the_dm_to_that_ticket_but_only_for_its_own_customer(store):
    first, second = post("200", conv="200"), post("201", at=30, conv="201", text="@united and now my seat is gone")
    other = post("202", author="bo", author_id="777", conv="202")
    take(store, [first, second, other])
    # Ana's newest open ticket is the second; quoting the first joins the first.
    take(store, [dm("9004", f"about {first.ticket_id.lower()}: the bag is at LAX")])
    assert store.tweet_disposition("9004")["ticket_id"] == first.ticket_id
    # Quoting Bo's ticket does not put Ana's DM into Bo's case: it joins Ana's newest.
    take(store, [dm("9005", f"re {other.ticket_id}", at=120)])
    assert store.tweet_disposition("9005")["ticket_id"] == second.ticket_id


def test_stop_by_dm_opts_out_and_the_desk_can_no_longer_dm(store, desk):
    take(store, [dm("9006", "where is my refund?")])
    tid = store.tweet_disposition("9006")["ticket_id"]
    take(store, [dm("9007", "STOP", at=120)])
    assert store.opt_out_of("ana", "35151341") is not None
    # The queued acknowledgement is cancelled; an agent's DM is refused with the reason.
    assert [r.status for r in store.replies_for(tid)] == [ReplyStatus.cancelled]
    with pytest.raises(DeskError) as e:
        desk.send_reply(tid, "Your refund is on its way", ADMIN, channel="dm")
    assert e.value.status == 409 and e.value.kind == "opted_out"


def test_the_desk_answers_by_dm_only_a_customer_who_dmed_us(store, desk):
    opener = post("300")
    take(store, [opener])
    tid = opener.ticket_id
    with pytest.raises(DeskError) as e:
        desk.send_reply(tid, "Please send us your booking code", ADMIN, channel="dm")
    assert e.value.kind == "never_dmed" and desk.dm_block(store.get_ticket(tid)) is not None
    take(store, [dm("9008", "here: QX7RT2")])
    reply, created = desk.send_reply(tid, "Thanks, your bag is on its way to you", ADMIN, channel="dm", key="k1")
    assert created and reply.channel == "dm" and reply.to_user_id == "35151341" and reply.tweet_id == "9008"
    assert reply.text.endswith(f"Privacy: {PRIVACY}") and reply.priority == 0
    # A retry with the same key returns the same DM; the audit trail has it.
    again, created = desk.send_reply(tid, "Thanks, your bag is on its way to you", ADMIN, channel="dm", key="k1")
    assert again.id == reply.id and not created
    assert [a["action"] for a in desk.audit(tid)].count("replied") == 1
    # A public reply still answers the public tweet, never the DM.
    public, _ = desk.send_reply(tid, "@ana We have sent you a DM", ADMIN)
    assert public.channel == "public" and public.tweet_id == "300"


def test_a_public_reply_to_a_dm_ticket_is_refused(store, desk):
    take(store, [dm("9009", "my card was charged twice")])
    tid = store.tweet_disposition("9009")["ticket_id"]
    with pytest.raises(DeskError) as e:
        desk.send_reply(tid, "@ana sorry about that", ADMIN)
    assert e.value.kind == "private"


def test_no_dm_without_the_privacy_link(store, tmp_path):
    desk = Desk(store, Settings(work_dir=tmp_path))
    take(store, [dm("9010", "hello")], settings(privacy_policy_url=None))
    tid = store.tweet_disposition("9010")["ticket_id"]
    with pytest.raises(DeskError) as e:
        desk.send_reply(tid, "hi", ADMIN, channel="dm")
    assert e.value.kind == "no_privacy_link"


def test_dm_sends_are_held_back_before_xs_caps_apart_from_posts(store):
    s = settings(reply_dm_limit=2, reply_dm_window_seconds=900, reply_dm_daily_limit=3, reply_budget_dry_run=True)
    now = T0 + timedelta(hours=1)
    budget = ReplyBudget(s, store, clock=lambda: now.timestamp(), live=False)
    assert budget.dm_allowance(now).posts == 2
    take(store, [dm(str(9100 + i), f"case {i}", author=f"c{i}", author_id=str(500 + i)) for i in range(4)], s)
    for rid in [r.id for r in store.list_replies(ReplyStatus.queued)][:2]:
        store.record_dry_run([rid])
    # record_dry_run stamps the store's clock: read the budget at that time.
    at = store.clock() + timedelta(seconds=1)
    a = budget.dm_allowance(at)
    assert a.posts == 0 and a.binding == "window" and 0 < a.wait <= 900
    assert budget.allowance(at).posts > 0  # the posts' budget is X's other limit, untouched by DMs
    fig = budget.figures(at)["dms"]
    assert fig["sent_this_window"] == 2 and fig["limit"] == 2 and fig["next_dm_in_seconds"] > 0
    assert store.get_ticket(store.list_replies(ReplyStatus.dry_run)[0].ticket_id).status == TicketStatus.replied


def test_erasure_removes_dm_text_everywhere_and_compliance_never_sends_dm_ids_as_posts(store, desk):
    from tests.fixtures.store import everything_stored
    from tweetdesk.tickets.compliance import stored_ids
    from tweetdesk.tickets.erase import erase_author

    opener = post("400", text="@united where is my bag")
    take(store, [opener, dm("9400", "booking QX7RT2, passport ending 4471", at=30)])
    desk.send_reply(opener.ticket_id, "We found it: delivery tonight to 12 Elm St", ADMIN, channel="dm")
    with store.engine.connect() as conn:
        posts, users = stored_ids(conn)
    assert "400" in posts and "9400" not in posts and "35151341" in users
    erase_author(store, "ana", actor="admin", key=b"k" * 32)
    everything = everything_stored(store)
    for secret in ("QX7RT2", "4471", "12 Elm St", "where is my bag", "35151341"):
        assert secret not in everything
