"""The agents' desk on the ticket store, on SQLite and on a real PostgreSQL server (fixture ``store``):
accounts, tokens, assignment, audit trail, collision stamps, notes, corrections, canned replies, timers,
export, and the upgrade of a store at the schema before the desk."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from tests.fixtures.store import enriched_tweet
from tweetdesk.config import Settings
from tweetdesk.desk.accounts import DeskError, bootstrap_admin
from tweetdesk.desk.core import Desk
from tweetdesk.desk.inbox import EXPORT_COLUMNS, InboxFilters, export_rows, inbox, to_csv, to_parquet
from tweetdesk.desk.timers import Timers
from tweetdesk.models.corrections import labelled_examples
from tweetdesk.tickets import store as store_mod
from tweetdesk.tickets.schema import DESK_TABLES
from tweetdesk.tickets.store import TicketStore

ADMIN = bootstrap_admin()


def _reply(tw):
    return f"@{tw.author} sorry, ticket {tw.ticket_id}"


@pytest.fixture
def desk(store, tmp_path):
    return Desk(store, Settings(work_dir=tmp_path))


def _people(desk):
    ann = desk.accounts.add("ann", "agent", actor=ADMIN.name)
    bob = desk.accounts.add("bob", "agent", actor=ADMIN.name)
    vic = desk.accounts.add("vic", "viewer", actor=ADMIN.name)
    return {n: desk.accounts.authenticate(n, pw) for n, (_, pw) in (("ann", ann), ("bob", bob), ("vic", vic))}


def test_accounts_passwords_and_tokens(desk):
    user, pw = desk.accounts.add("Ann", "agent", actor=ADMIN.name)
    assert user["name"] == "ann" and user["role"] == "agent" and len(pw) >= 16
    with desk.tx() as conn:  # hashed with argon2id, never stored as given
        stored = conn.execute(sa.text("SELECT password_hash FROM desk_users")).scalar()
    assert stored.startswith("$argon2id$") and pw not in stored
    assert desk.accounts.authenticate("ann", pw).role == "agent"
    assert desk.accounts.authenticate("ann", pw + "x") is None
    assert desk.accounts.authenticate("nobody", pw) is None
    with pytest.raises(DeskError, match="exists already"):
        desk.accounts.add("ann", "viewer", actor=ADMIN.name)
    with pytest.raises(DeskError, match="unknown role"):
        desk.accounts.add("zed", "boss", actor=ADMIN.name)
    with pytest.raises(DeskError, match="bad user name"):
        desk.accounts.add("a b", "agent", actor=ADMIN.name)
    info, token = desk.accounts.create_token("ann", "laptop", actor="ann")
    assert token.startswith("tdk_") and desk.accounts.token_principal(token).name == "ann"
    assert desk.accounts.token_principal(token + "x") is None
    new_pw = desk.accounts.reset("ann", actor=ADMIN.name)
    assert desk.accounts.authenticate("ann", pw) is None and desk.accounts.authenticate("ann", new_pw)
    desk.accounts.revoke_token(info["id"], actor=ADMIN)
    assert desk.accounts.token_principal(token) is None
    _, token2 = desk.accounts.create_token("ann", actor="ann")
    desk.accounts.disable("ann", actor=ADMIN.name)
    assert desk.accounts.authenticate("ann", new_pw) is None and desk.accounts.token_principal(token2) is None
    assert [e["action"] for e in desk.audit()] == ["user_added", "token_created", "password_reset", "token_revoked",
                                                    "token_created", "user_disabled"]


def test_assignment_audit_and_viewers(desk, store):
    p = _people(desk)
    store.add_tickets([enriched_tweet("1")], reply_text=_reply)
    tid = store.get_ticket_by_tweet("1").ticket_id
    assert desk.assign(tid, "ann", p["ann"]) == "ann"
    assert desk.assign(tid, "bob", p["ann"]) == "bob"
    with pytest.raises(DeskError, match="no user 'zed'"):
        desk.assign(tid, "zed", p["ann"])
    with pytest.raises(DeskError, match="cannot take tickets"):
        desk.assign(tid, "vic", p["ann"])
    with pytest.raises(DeskError) as e:
        desk.assign(tid, "vic", p["vic"])
    assert e.value.status == 403
    assert desk.assignees() == {tid: "bob"}
    assert inbox(desk, InboxFilters(assignee="bob"))["total"] == 1
    assert inbox(desk, InboxFilters(assignee="none"))["total"] == 0
    desk.assign(tid, None, p["bob"])
    assert [(e["actor"], e["text"]) for e in desk.audit(tid)] == [
        ("ann", "assigned the ticket to ann"), ("ann", "assigned the ticket to bob (was ann)"),
        ("bob", "unassigned the ticket from bob")]
    assert desk.touch_view(tid, "ann") == []
    assert desk.touch_view(tid, "bob") == ["ann"]
    later = desk.clock() + timedelta(seconds=60)
    desk._clock = lambda: later
    assert desk.viewers(tid, besides="bob") == []  # ann stopped polling


def test_a_stale_view_is_refused_with_what_changed(desk, store):
    p = _people(desk)
    store.add_tickets([enriched_tweet("1")], reply_text=_reply)
    tid = store.get_ticket_by_tweet("1").ticket_id
    seen = desk.snapshot(tid)
    desk.add_note(tid, "called the customer", p["bob"])
    store.add_tickets([enriched_tweet("2", conversation_id="1", in_reply_to_tweet_id="1")], reply_text=_reply)
    with pytest.raises(DeskError) as e:
        desk.resolve(tid, p["ann"], seen=seen)
    assert e.value.status == 409 and e.value.kind == "stale"
    changes = e.value.extra["changes"]
    assert any(c.startswith("bob added a note") for c in changes) and "the customer wrote 1 more tweet" in changes
    assert store.get_ticket(tid).status.value == "open"  # nothing applied
    desk.resolve(tid, p["ann"], seen=e.value.extra["seen"])
    assert store.get_ticket(tid).status.value == "resolved"


def test_notes_corrections_and_labelled_examples(desk, store):
    p = _people(desk)
    store.add_tickets([enriched_tweet("1")], reply_text=_reply)
    tid = store.get_ticket_by_tweet("1").ticket_id
    with pytest.raises(DeskError, match="unknown topic 'Lost Dog'"):
        desk.correct(tid, p["ann"], topic="Lost Dog", sentiment="neutral")
    assert store.get_ticket(tid).topic == "Baggage Issue" and desk.corrections() == [] and desk.audit(tid) == []
    desk.correct(tid, p["ann"], topic="Extra Charges", sentiment="neutral")
    desk.correct(tid, p["bob"], topic="Online Booking")
    t = store.get_ticket(tid)
    assert (t.topic, t.sentiment) == ("Online Booking", "neutral")
    (row,) = labelled_examples(store)
    assert row["topic"] == "Online Booking" and row["airline_sentiment"] == "neutral" and row["by"] == "bob"
    assert row["model_topic"] == "Baggage Issue" and row["model_sentiment"] == "negative"
    with pytest.raises(DeskError, match="a note needs some text"):
        desk.add_note(tid, "  ", p["ann"])
    with pytest.raises(DeskError) as e:
        desk.add_note(tid, "hi", p["vic"])
    assert e.value.status == 403
    desk.add_note(tid, "refund approved by phone", p["ann"])
    assert [n["text"] for n in desk.notes(tid)] == ["refund approved by phone"]
    assert not store.replies_for(tid) or all("refund approved" not in r.text for r in store.replies_for(tid))


def test_canned_replies_are_checked_like_templates(desk, store):
    p = _people(desk)
    admin = ADMIN
    good = {"title": "Bag traced", "topic": "Baggage Issue", "sentiment": "negative",
            "text": "{mention} we traced your bag and it is on its way to you. Ticket {ticket_id}"}
    for bad, why in [
        ({**good, "text": "{mention} see example.com ({ticket_id})"}, "URL"),
        ({**good, "text": "{mention} ask @delta. Ticket {ticket_id}"}, "@mention"),
        ({**good, "text": "{mention} " + "sorry " * 50 + "{ticket_id}"}, "as X counts them"),
        ({**good, "text": "{mention} we are on it"}, "ticket_id"),
        ({**good, "topic": "Lost Dog"}, "unknown topic"),
    ]:
        with pytest.raises(DeskError, match=why):
            desk.canned.save(bad, admin)
    assert desk.canned.list() == []
    with pytest.raises(DeskError) as e:
        desk.canned.save(good, p["ann"])
    assert e.value.status == 403
    saved = desk.canned.save(good, admin)
    store.add_tickets([enriched_tweet("1")], reply_text=_reply)
    t = store.get_ticket_by_tweet("1")
    (c,) = desk.canned.for_ticket(t)
    assert c["id"] == saved["id"] and c["rendered"].startswith("@jane_doe we traced") and t.ticket_id in c["rendered"]


def test_timers_and_report(desk, store):
    now = store.clock()
    store.clock = lambda: now
    store.add_tickets([enriched_tweet("1"), enriched_tweet("2", sentiment="positive", topic="Customer Experience")],
                      reply_text=_reply)
    urgent, happy = store.get_ticket_by_tweet("1"), store.get_ticket_by_tweet("2")
    timers = Timers(desk)
    assert timers.klass(urgent) == "urgent" and timers.due_at(urgent) == urgent.created_at + timedelta(minutes=15)
    assert timers.klass(happy) == "positive"
    (rid_urgent, rid_happy) = [r.id for t in (urgent, happy) for r in store.replies_for(t.ticket_id)]
    store.claim(rid_urgent)
    store.clock = lambda: now + timedelta(minutes=20)  # 20 min: urgent breached (15 min allowed)
    store.record_posted(rid_urgent, "99", cost_usd=0.01)
    store.record_dry_run([rid_happy])
    tm = timers.for_ticket(urgent, now=now + timedelta(minutes=30))
    assert tm["breached"] and tm["first_response_by"] == "automatic reply" and tm["first_response_seconds"] >= 20 * 60
    assert not timers.for_ticket(happy, now=now + timedelta(minutes=30))["breached"]
    rep = timers.report(now=now + timedelta(minutes=30))
    assert rep["overall"]["tickets"] == 2 and rep["overall"]["responded"] == 2 and rep["overall"]["breaches"] == 1
    assert {r["topic"]: r["breaches"] for r in rep["by_topic"]} == {"Baggage Issue": 1, "Customer Experience": 0}
    day = urgent.created_at.strftime("%Y-%m-%d")
    assert [(r["day"], r["topic"], r["breaches"]) for r in rep["by_day_topic"]] == [
        (day, "Baggage Issue", 1), (day, "Customer Experience", 0)]
    assert [(r["day"], r["agent"], r["tickets"]) for r in rep["by_day_agent"]] == [(day, "automatic reply", 2)]
    assert rep["by_agent"] == [{"agent": "automatic reply", "tickets": 2, "responded": 2,
                                "p50_seconds": rep["overall"]["p50_seconds"], "p90_seconds": rep["overall"]["p90_seconds"],
                                "breaches": 1}]


def test_export_csv_and_parquet(desk, store):
    p = _people(desk)
    store.add_tickets([enriched_tweet("1", text="=cmd|' /C calc'!A0 @united lost bag"), enriched_tweet("2")],
                      reply_text=_reply)
    tid = store.get_ticket_by_tweet("1").ticket_id
    desk.correct(tid, p["ann"], topic="Extra Charges")
    desk.add_note(tid, "phoned", p["ann"])
    rows = export_rows(desk, InboxFilters(status="all"))
    assert len(rows) == 2 and set(rows[0]) == set(EXPORT_COLUMNS)
    row = next(r for r in rows if r["ticket_id"] == tid)
    assert row["topic"] == "Extra Charges" and row["model_topic"] == "Baggage Issue" and row["corrected_by"] == "ann"
    assert '"phoned"' in row["notes"] and row["due_at"]
    other = next(r for r in rows if r["ticket_id"] != tid)
    assert json.loads(other["notes"]) == []  # each ticket's own notes and conversation, read for all at once
    for r, tweet_id in ((row, "1"), (other, "2")):
        conv = json.loads(r["conversation"])
        assert [m["tweet_id"] for m in conv if m["kind"] == "customer"] == [tweet_id]
        assert [m["kind"] for m in conv] == [m["kind"] for m in store.conversation(r["ticket_id"])]
    csv_text = to_csv(rows).decode("utf-8-sig")
    assert "'=cmd" in csv_text  # no formula for a spreadsheet
    table = pq.read_table(io.BytesIO(to_parquet(rows)))
    assert table.num_rows == 2 and table.column_names == EXPORT_COLUMNS


def test_a_store_at_the_schema_before_the_desk_upgrades_in_place(store_url):
    """A database at v4 (the schema before the desk) with tickets and replies: opening it adds the desk's tables
    and loses nothing."""
    v3 = TicketStore(store_url, migrate=False)
    with v3.engine.begin() as conn:  # v4: every table but the desk's
        store_mod.metadata.create_all(conn, tables=[t for t in store_mod.metadata.sorted_tables
                                                    if t not in DESK_TABLES])
        conn.execute(store_mod.schema_version.insert(), {"version": 4, "applied_at": v3.clock()})
    v3.add_tickets([enriched_tweet("1"), enriched_tweet("2")], reply_text=_reply)
    before = v3.stats()
    rows_before = [t.model_dump() for t in v3.list_tickets(limit=10).items]
    replies_before = [r.model_dump() for r in v3.list_replies()]
    assert not {"desk_users", "desk_audit"} & set(sa.inspect(v3.engine).get_table_names())
    v3.close()
    store = TicketStore(store_url)
    try:
        assert store.schema_version() == store_mod.SCHEMA_VERSION
        assert {"desk_users", "desk_audit", "desk_assignments", "desk_notes", "desk_corrections",
                "desk_canned_replies", "desk_api_tokens"} <= set(sa.inspect(store.engine).get_table_names())
        assert store.stats() == before
        assert [t.model_dump() for t in store.list_tickets(limit=10).items] == rows_before
        assert [r.model_dump() for r in store.list_replies()] == replies_before
        desk = Desk(store)
        _, pw = desk.accounts.add("ann", "agent", actor=ADMIN.name)
        ann = desk.accounts.authenticate("ann", pw)
        tid = store.get_ticket_by_tweet("1").ticket_id
        desk.assign(tid, "ann", ann)
        assert inbox(desk, InboxFilters(assignee="ann"))["items"][0]["ticket"].ticket_id == tid
    finally:
        store.close()


def test_a_backlog_of_old_praise_never_hides_a_new_complaint(desk, store, monkeypatch):
    """The inbox scans a bounded number of tickets: the most urgent classes' first, not merely the oldest."""
    from tweetdesk.desk import inbox as inbox_mod

    monkeypatch.setattr(inbox_mod, "SCAN", 3)  # the bound, made small enough to overflow with a few tickets
    praise = [enriched_tweet(str(i), author=f"fan{i}", sentiment="positive", topic="Customer Experience",
                             text="@united lovely crew, thank you", entities=[]) for i in range(1, 5)]
    store.add_tickets(praise, reply_text=_reply)
    store.add_tickets([enriched_tweet("9", author="stuck", text="@united flight UA 1234 cancelled, stranded")],
                      reply_text=_reply)
    urgent = store.get_ticket_by_tweet("9").ticket_id
    got = inbox(desk, InboxFilters())
    assert got["scanned"] == 3 and got["items"][0]["ticket"].ticket_id == urgent and got["items"][0]["class"] == "urgent"
    assert [i["class"] for i in got["items"]] == ["urgent", "positive", "positive"]
    only = inbox(desk, InboxFilters(klass="urgent"))
    assert [i["ticket"].ticket_id for i in only["items"]] == [urgent]
    assert inbox(desk, InboxFilters(klass="positive"))["total"] == 3  # the scan's bound, positives only
