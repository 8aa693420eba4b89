"""The ticket store on SQLite and on a real PostgreSQL server (fixture ``store`` runs each test on both)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from tests.fixtures.store import enriched_tweet
from tweetdesk.records import ReplyStatus
from tweetdesk.tickets import schema as store_mod
from tweetdesk.tickets.store import SCHEMA_VERSION, StoreError, TicketStatus, TicketStore, normalise_url


def _text(t):
    return f"@{t.author} ticket {t.ticket_id}"


def test_schema_is_created_and_versioned(store):
    assert store.schema_version() == SCHEMA_VERSION
    insp = sa.inspect(store.engine)
    assert {"tickets", "replies", "schema_version"} <= set(insp.get_table_names())
    # Opening again migrates nothing and keeps the data.
    store.add_tickets([enriched_tweet("1")])
    again = TicketStore(store.url)
    assert again.schema_version() == SCHEMA_VERSION and again.stats()["tickets"] == 1
    again.close()


def test_a_newer_schema_is_refused(store):
    with store.engine.begin() as conn:
        conn.execute(store_mod.schema_version.insert().values(version=SCHEMA_VERSION + 1, applied_at=datetime.now(timezone.utc)))
    with pytest.raises(StoreError, match="newer than this tweetdesk"):
        TicketStore(store.url)


def test_migrations_run_in_order_on_an_older_database(store, monkeypatch):
    ran = []
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(
        store_mod.MIGRATIONS,
        SCHEMA_VERSION + 1,
        lambda conn: ran.append(conn.execute(sa.select(sa.func.count()).select_from(store_mod.tickets)).scalar()),
    )
    store.add_tickets([enriched_tweet("1")])
    assert store.migrate() == SCHEMA_VERSION + 1
    assert ran == [1] and store.schema_version() == SCHEMA_VERSION + 1
    assert store.migrate() == SCHEMA_VERSION + 1 and ran == [1]  # applied once


def test_ticket_holds_every_field(store):
    tw = enriched_tweet("42", conversation_id="40", in_reply_to_tweet_id="41", in_reply_to_user_id="7", author_id="99")
    store.add_tickets([tw], _text)
    t = store.get_ticket(tw.ticket_id)
    assert (t.tweet_id, t.author, t.text, t.sentiment, t.topic) == ("42", "jane_doe", tw.text, "negative", "Baggage Issue")
    assert t.sentiment_score == pytest.approx(0.93) and t.topic_score == pytest.approx(0.81)
    assert [e.label for e in t.entities] == ["FLIGHT"] and t.entities[0].text == "UA 1234"
    assert (t.conversation_id, t.in_reply_to_tweet_id, t.in_reply_to_user_id, t.author_id) == ("40", "41", "7", "99")
    assert t.status == TicketStatus.open and t.reply_text == _text(tw) and t.attempts == 0
    assert t.created_at.tzinfo is not None and t.tweet_created_at == tw.created_at
    assert store.get_ticket_by_tweet("42").ticket_id == tw.ticket_id


def test_redelivery_changes_nothing(store):
    tw = enriched_tweet("1")
    first = store.add_tickets([tw], _text)
    before = store.get_ticket(tw.ticket_id)
    changed = tw.model_copy(update={"text": "edited", "sentiment": "positive"})
    for _ in range(2):
        again = store.add_tickets([changed], lambda t: "another reply")
        assert again.created == [] and again.duplicates == ["1"] and again.replies == []
    assert first.created == [tw.ticket_id] and len(first.replies) == 1
    assert store.get_ticket(tw.ticket_id) == before
    assert len(store.replies_for(tw.ticket_id)) == 1
    # Duplicates inside one batch too.
    res = store.add_tickets([enriched_tweet("2"), enriched_tweet("2")], _text)
    assert len(res.created) == 1 and res.duplicates == ["2"] and len(res.replies) == 1


def test_ticket_id_collision_is_rejected_not_dropped(store):
    store.add_tickets([enriched_tweet("1")])
    clash = enriched_tweet("2").model_copy(update={"ticket_id": enriched_tweet("1").ticket_id})
    res = store.add_tickets([clash])
    assert res.created == [] and res.duplicates == [] and res.rejected[0][0] == "2"


def test_outbox_state_machine(store):
    tw = enriched_tweet("1")
    rid = store.add_tickets([tw], _text).replies[0]
    assert store.due_replies() == [rid]
    claimed = store.claim(rid)
    assert claimed.status == ReplyStatus.posting and claimed.attempts == 1
    assert store.claim(rid) is None  # one holder only
    assert [r.id for r in store.in_flight()] == [rid]
    later = datetime.now(timezone.utc) + timedelta(minutes=5)
    assert store.record_retry(rid, "X API 503", later)
    assert store.due_replies() == []  # waiting
    assert store.next_due_at() == later
    assert store.due_replies(now=later + timedelta(seconds=1)) == [rid]
    assert store.claim(rid).attempts == 2
    assert store.record_posted(rid, "555")
    assert not store.record_failed(rid, "late")  # only from 'posting'
    t = store.get_ticket(tw.ticket_id)
    assert t.status == TicketStatus.replied and t.posted_reply_id == "555" and t.attempts == 2 and t.last_error is None
    assert store.posted_since(datetime.now(timezone.utc) - timedelta(minutes=1)) == 1


def test_failed_and_unknown(store):
    a, b = enriched_tweet("1"), enriched_tweet("2")
    ra, rb = store.add_tickets([a, b], _text).replies
    store.claim(ra)
    store.record_failed(ra, "X API 503 Service Unavailable (after 5 attempts)")
    ta = store.get_ticket(a.ticket_id)
    assert ta.status == TicketStatus.failed and "503" in ta.last_error
    store.claim(rb)
    store.record_unknown(rb, "could not verify")
    assert store.get_reply(rb).status == ReplyStatus.unknown
    assert store.get_ticket(b.ticket_id).status == TicketStatus.open
    assert store.stats()["replies_by_status"] == {"failed": 1, "unknown": 1}


def test_rate_limit_retry_gives_the_attempt_back(store):
    rid = store.add_tickets([enriched_tweet("1")], _text).replies[0]
    store.claim(rid)
    store.record_retry(rid, "429", datetime.now(timezone.utc), count_attempt=False)
    assert store.get_reply(rid).attempts == 0


def test_dry_run_batch(store):
    tws = [enriched_tweet(str(i)) for i in range(10)]
    ids = store.add_tickets(tws, _text).replies
    done = store.record_dry_run(ids)
    assert sorted(r.id for r in done) == sorted(ids) and {r.tweet_id for r in done} == {t.id for t in tws}
    assert store.record_dry_run(ids) == []  # only queued replies
    assert store.stats()["tickets_by_status"]["replied"] == 10
    r = store.get_reply(ids[0])
    assert r.status == ReplyStatus.dry_run and r.dry_run and r.posted_at is not None


def test_manual_replies_are_idempotent_by_key(store):
    tw = enriched_tweet("1")
    store.add_tickets([tw], _text)
    r1, c1 = store.queue_reply("1", "hello", key="abc")
    r2, c2 = store.queue_reply("1", "hello", key="abc")
    r3, c3 = store.queue_reply("1", "hello")
    assert (c1, c2, c3) == (True, False, True) and r1.id == r2.id != r3.id
    with pytest.raises(LookupError):
        store.queue_reply("404", "hello")


def test_listing_filters_and_pages(store):
    tws = [enriched_tweet(str(i), topic="Online Booking" if i % 2 else "Baggage Issue") for i in range(7)]
    store.add_tickets(tws)
    page = store.list_tickets(topic="Online Booking", limit=2)
    assert page.total == 3 and len(page.items) == 2
    rest = store.list_tickets(topic="Online Booking", limit=2, offset=2)
    assert len(rest.items) == 1
    assert {t.ticket_id for t in page.items + rest.items} == {t.ticket_id for t in tws if t.topic == "Online Booking"}
    assert store.list_tickets(status="resolved").total == 0
    store.resolve(tws[0].ticket_id)
    assert store.list_tickets(status="resolved", sentiment="negative").total == 1
    assert store.resolve("BAG-22222222-X") is None


def test_concurrent_claims_post_each_reply_once(store):
    """Many threads racing for the same queued replies: each reply is claimed exactly once."""
    ids = store.add_tickets([enriched_tweet(str(i)) for i in range(30)], _text).replies
    won: list[int] = []
    lock = threading.Lock()

    def worker():
        for rid in ids:
            if store.claim(rid) is not None:
                with lock:
                    won.append(rid)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == sorted(ids)


def test_concurrent_ingest_of_the_same_records(store):
    tws = [enriched_tweet(str(i)) for i in range(50)]
    results = []

    def worker():
        results.append(store.add_tickets(tws, _text))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(r.created) for r in results) == 50
    assert sum(len(r.replies) for r in results) == 50
    assert store.stats()["tickets"] == 50


def test_url_forms():
    assert normalise_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalise_url("postgresql://h/db") == "postgresql+psycopg://h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_unreachable_database_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="unavailable|cannot open") as e:
        TicketStore("postgresql://nobody:secret@127.0.0.1:9/none")
    assert "secret" not in str(e.value)


def test_default_store_is_a_sqlite_file_in_work_dir(tmp_path):
    from tweetdesk.config import Settings

    s = TicketStore.from_settings(Settings(work_dir=tmp_path / "w"))
    assert s.dialect == "sqlite" and (tmp_path / "w" / "tickets.db").exists()


# ----------------------------------------------------------------------------------------------
# Schema v4: the tables made outside the migrations until then are taken in, nothing lost
# ----------------------------------------------------------------------------------------------

V4_TABLES = ("dead_letters", "web_sessions")


def _make_v3_store(url: str, *, ran_the_service: bool) -> None:
    """A store as schema v3 made it: every v3 table, without what v4 adds. ``ran_the_service``: as a v3
    service left it, with the dead letters, the agents' sessions and the chart index it made on first use
    (CREATE … IF NOT EXISTS, outside the migrations)."""
    engine = sa.create_engine(normalise_url(url))
    with engine.begin() as conn:
        store_mod.metadata.create_all(conn, tables=[t for t in store_mod.metadata.sorted_tables if t.name not in V4_TABLES])
        store_mod.CHART_INDEX.drop(conn)
        conn.execute(store_mod.schema_version.insert(), {"version": 3, "applied_at": datetime.now(timezone.utc)})
        if ran_the_service:
            for name in V4_TABLES:
                conn.execute(sa.schema.CreateTable(store_mod.metadata.tables[name], if_not_exists=True))
                for ix in store_mod.metadata.tables[name].indexes:
                    conn.execute(sa.schema.CreateIndex(ix, if_not_exists=True))
            conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_tickets_sentiment_tweet_time ON tickets (sentiment, tweet_created_at)"))
    engine.dispose()


@pytest.mark.parametrize("ran_the_service", [False, True], ids=["fresh-v3", "v3-that-ran-the-service"])
def test_a_v3_store_upgrades_to_v4_in_place(store_url, ran_the_service):
    from tweetdesk.records import DeadLetter
    from tweetdesk.tickets.intake import Intake
    from tweetdesk.web.sessions import SessionRegistry

    _make_v3_store(store_url, ran_the_service=ran_the_service)
    # One pinned clock for both stores: usage()'s "today" must be the day the reads were recorded on.
    clock = lambda: datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone.utc)  # noqa: E731
    old = TicketStore(store_url, migrate=False, clock=clock)
    assert old.schema_version() == 3
    # Data of every v3 table: tickets, tweets, replies (one posted), an opt-out, X's usage.
    t1, t2 = enriched_tweet("1"), enriched_tweet("2", author="ben", text="@tweetdesk STOP")
    intake = Intake(our_handles=frozenset({"tweetdesk"}), summoned_only=True, opt_out_phrases=("stop",))
    res = old.add_tickets([t1, enriched_tweet("3", author="cy", text="@tweetdesk where is my bag")], _text, intake=intake)
    old.add_tickets([t2], _text, intake=intake)
    rid = res.replies[0]
    old.claim(rid)
    old.record_posted(rid, "900", cost_usd=0.01, cost_kind="summoned_reply")
    letters = [DeadLetter.of(b"{oops", "invalid JSON", "parse"), DeadLetter.of(b"x", "no text", "validate")]
    sid = None
    if ran_the_service:  # what a v3 service wrote to the tables it made itself
        assert old.record_dead_letters(letters) == 2
        sid = SessionRegistry(old, 3600).start()
    before = (old.stats(), old.list_opt_outs(), old.usage(), old.intake_stats(), old.list_replies(),
              [old.get_ticket(t) for t in res.created], old.conversation(res.created[0]))
    old.close()

    store = TicketStore(store_url, clock=clock)  # opening it migrates
    try:
        assert store.schema_version() == SCHEMA_VERSION >= 4  # v4, and the desk's v5 after it
        insp = sa.inspect(store.engine)
        assert set(V4_TABLES) <= set(insp.get_table_names())
        assert "ix_tickets_sentiment_tweet_time" in {ix["name"] for ix in insp.get_indexes("tickets")}
        assert "ix_dead_letters_at" in {ix["name"] for ix in insp.get_indexes("dead_letters")}
        assert "ix_web_sessions_expires" in {ix["name"] for ix in insp.get_indexes("web_sessions")}
        after = (store.stats(), store.list_opt_outs(), store.usage(), store.intake_stats(), store.list_replies(),
                 [store.get_ticket(t) for t in res.created], store.conversation(res.created[0]))
        assert after == before and before[0]["tickets"] == 3 and before[1] and before[2]["today"]
        # The dead letters and sessions a v3 service stored are still there, and the tables work on.
        from tweetdesk.tickets.reports import dead_letter_count

        assert dead_letter_count(store) == (2 if ran_the_service else 0)
        assert store.record_dead_letters(letters) == (0 if ran_the_service else 2)
        sessions = SessionRegistry(store, 3600)
        if sid is not None:
            assert sessions.active(sid)
        assert sessions.active(sessions.start())
        assert store.migrate() == SCHEMA_VERSION and store.schema_version() == SCHEMA_VERSION  # applied once
    finally:
        store.close()


# ----------------------------------------------------------------------------------------------
# Schema v6: no automatic reply goes out for a ticket opened before X's reply rules
# ----------------------------------------------------------------------------------------------


def test_queued_automatic_replies_of_tickets_from_before_the_rules_are_cancelled(store_url):
    """v3 flagged the tickets it could not tell were summoned but left their automatic replies queued: the poster
    would have sent them. v6 cancels those, and only those."""
    from tweetdesk.tickets.intake import Intake

    _make_v3_store(store_url, ran_the_service=False)
    old = TicketStore(store_url, migrate=False)
    # The operator answers every tweet (summoned_only off), so each of these gets an automatic reply queued.
    intake = Intake(our_handles=frozenset({"tweetdesk"}), summoned_only=False, opt_out_phrases=())
    res = old.add_tickets([enriched_tweet(str(i), author=f"cust{i}", text="united lost my bag") for i in (1, 2, 3)],
                          _text, intake=intake)
    before, later, posted = res.created
    posted_reply = res.replies[2]
    old.claim(posted_reply)
    old.record_posted(posted_reply, "900", cost_usd=0.015, cost_kind="post")
    manual = old.queue_reply(old.get_ticket(before).tweet_id, "@cust1 an agent's answer")
    with old.engine.begin() as conn:  # what v3 did to a ticket of v2: who summoned us unknown, flagged
        conn.execute(
            store_mod.tickets.update().where(store_mod.tickets.c.ticket_id.in_([before, posted])).values(
                summoned_by=None, no_reply_reason="opened before X's reply rules were applied (schema v3): check "
                                                  "that the customer mentioned us before replying")
        )
    old.close()

    store = TicketStore(store_url)  # opening it migrates
    try:
        assert store.schema_version() == SCHEMA_VERSION >= 6  # v6 and every later step ran
        by_ticket = {(r.ticket_id, r.kind.value): r for r in store.list_replies()}
        assert by_ticket[(before, "auto")].status == ReplyStatus.cancelled
        assert "before X's reply rules" in by_ticket[(before, "auto")].error
        assert by_ticket[(before, "manual")].status == ReplyStatus.queued  # an agent's reply is the agent's call
        assert by_ticket[(later, "auto")].status == ReplyStatus.queued  # opened under the rules: the operator's choice
        assert by_ticket[(posted, "auto")].status == ReplyStatus.posted
        assert manual is not None
    finally:
        store.close()


def test_batch_insert_keeps_times_json_and_awkward_text_whatever_the_session_time_zone(store_url):
    """``insert_new`` sends a batch as one JSON document on PostgreSQL: an aware or naive (= UTC) time, a JSON list,
    quotes, backslashes and non-ASCII text come back as they went in, under a session time zone that is not UTC."""
    engine = sa.create_engine(normalise_url(store_url))
    meta = sa.MetaData()
    t = sa.Table("batch_probe", meta, sa.Column("k", sa.String(32), primary_key=True), sa.Column("at", store_mod.UTCDateTime()),
                 sa.Column("doc", sa.JSON), sa.Column("n", sa.Integer), sa.Column("flag", sa.Boolean),
                 sa.Column("note", sa.Text, nullable=True))
    aware = datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=-5)))
    rows = [
        {"k": "a", "at": aware, "doc": [{"text": "JFK", "label": "AIRPORT"}], "n": 1, "flag": True, "note": 'a "q" \\ é 🙂'},
        {"k": "b", "at": datetime(2026, 3, 29, 1, 30), "doc": [], "n": 2, "flag": False, "note": None},
    ]
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SET TIME ZONE 'Europe/Berlin'"))
            meta.create_all(conn)
            assert sorted(r[0] for r in store_mod.insert_new(conn, t, rows, returning=(t.c.k,))) == ["a", "b"]
            assert store_mod.insert_new(conn, t, rows, returning=(t.c.k,)) == []  # conflicts are skipped
            got = {r.k: r for r in conn.execute(sa.select(t))}
        assert got["a"].at == aware and got["b"].at == datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc)
        assert got["a"].doc == rows[0]["doc"] and got["b"].doc == [] and got["a"].note == rows[0]["note"]
        assert (got["a"].n, got["a"].flag, got["b"].flag, got["b"].note) == (1, True, False, None)
    finally:
        engine.dispose()


def test_store_connections_plan_each_batch_lookup_for_its_actual_keys(store_url):
    """On PostgreSQL every connection of the store's pool plans each execution for its actual parameters: psycopg
    prepares a statement it has run 5 times, and a generic plan of ``col = ANY($1)`` (``schema.one_of``) cannot
    hash the batch's keys, so every row is compared with every key (bench replies: 125 ms instead of 3 ms a batch)."""
    store = TicketStore(store_url)
    try:
        if store.dialect != "postgresql":
            pytest.skip("a PostgreSQL planner matter (SQLite has no generic plans)")
        with store.engine.connect() as a, store.engine.connect() as b:  # two connections of the pool
            for conn in (a, b):
                assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_custom_plan"
    finally:
        store.close()
