"""Canned replies are text with named placeholders, nothing else: template code is refused when saved (400 with
the reason), rendering is plain substitution (bounded time, whatever was typed), and canned replies stored as
Jinja before schema v7 are converted by the migration."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from tests.fixtures.store import enriched_tweet
from tweetdesk.app import create_app
from tweetdesk.config import Settings
from tweetdesk.desk.accounts import DeskError, bootstrap_admin
from tweetdesk.desk.canned import render
from tweetdesk.desk.core import Desk
from tweetdesk.tickets import schema
from tweetdesk.tickets.schema import from_jinja

KEY = "s3cret-admin-key-for-the-canned-reply-tests"
ADMIN = {"X-API-Key": KEY}
GOOD = "{mention} we traced your bag{flight}. Ticket {ticket_id}"


@pytest.fixture
def client_and_desk(tmp_path, store):
    settings = Settings(work_dir=tmp_path, api_key=KEY)
    app = create_app(settings, store)
    store.add_tickets([enriched_tweet("4001", text="@united lost my bag on UA 1234")], lambda tw: None)
    return app.test_client(), Desk(store, settings), store


@pytest.mark.parametrize("text,why", [
    ("{{ (9 ** (9 ** 7)) % 7 }} {{ mention }} {{ ticket_id }}", "template code"),
    ("{% for i in range(10**9) %}x{% endfor %} {mention} {ticket_id}", "template code"),
    ("{mention} {ticket_id} {# a comment #}", "template code"),
    ("{mention} {ticket_id} {text}", "unknown placeholder {text}"),
    ("{mention} {ticket_id} {ticket_id.__class__}", "unknown placeholder"),
    ("{mention} {ticket_id:>99999999}", "unknown placeholder"),
    ("{mention} {ticket_id!r}", "unknown placeholder"),
    ("{mention} {ticket_id} {0}", "unknown placeholder"),
    ("{mention} {ticket_id", "brace"),
    ("{mention} ticket_id} {ticket_id}", "brace"),
    ("{mention} we are on it", "ticket_id"),
    ("{mention} " + "x" * 2000 + " {ticket_id}", "limit"),
])
def test_template_code_and_unknown_placeholders_are_refused_with_the_reason(client_and_desk, text, why):
    client, desk, _store = client_and_desk
    r = client.post("/api/canned-replies", json={"title": "t", "text": text}, headers=ADMIN)
    assert r.status_code == 400 and r.get_json()["kind"] == "bad_canned_reply", r.get_json()
    assert why in r.get_json()["error"], r.get_json()["error"]
    assert desk.canned.list() == []


def test_placeholders_are_substituted_for_the_ticket(client_and_desk):
    client, desk, store = client_and_desk
    r = client.post("/api/canned-replies", json={"title": "Bag", "text": "{mention} bag of {author} ({topic}, "
                                                 "{sentiment}) on {flight}. Ticket {ticket_id}"}, headers=ADMIN)
    assert r.status_code == 201, r.get_json()
    t = store.get_ticket_by_tweet("4001")
    (c,) = desk.canned.for_ticket(t)
    assert c["rendered"] == (f"@jane_doe bag of jane_doe (Baggage Issue, negative) on UA1234. Ticket {t.ticket_id}")


def test_rendering_takes_bounded_time_whatever_the_text():
    # What used to be computed is now text: substitution is linear in the length.
    text = "{mention} " + "{ticket_id}" * 80
    t0 = time.perf_counter()
    for _ in range(100):
        out = render(text, {"mention": "@a", "ticket_id": "BAG-WWWWWWWW-W"})
    assert out.count("BAG-WWWWWWWW-W") == 80
    assert time.perf_counter() - t0 < 5  # generous: 100 renders; a Jinja 9**(9**8) took 78 s for one


def test_from_jinja_converts_what_the_shipped_form_used():
    assert from_jinja("{{ mention }} sorry{% if flight %} on {{ flight }}{% endif %}. Ticket {{ticket_id}}") == \
        "{mention} sorry. Ticket {ticket_id}"
    assert from_jinja("{{ 9 ** 9 }} {{ mention }}") == "{{ 9 ** 9 }} {mention}"  # left for an admin; never run


def test_migration_v7_converts_stored_jinja_canned_replies(store):
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with store.transaction(write=True) as conn:
        conn.execute(schema.canned_replies.insert().values(
            title="old", text="{{ mention }} we are on it. Ticket {{ ticket_id }}", updated_by="admin",
            updated_at=now))
        conn.execute(schema.canned_replies.insert().values(
            title="evil", text="{{ (9 ** (9 ** 7)) % 7 }} {{ ticket_id }}", updated_by="admin", updated_at=now))
        # As a v6 database holds them: created at v6, not yet migrated.
        conn.execute(schema.schema_version.delete())
        conn.execute(schema.schema_version.insert().values(version=6, applied_at=now))
    assert store.schema_version() == 6
    assert store.migrate() == schema.SCHEMA_VERSION  # v7 converts them; the later steps run too
    with store.transaction() as conn:
        texts = dict(conn.execute(sa.select(schema.canned_replies.c.title, schema.canned_replies.c.text)).all())
    assert texts["old"] == "{mention} we are on it. Ticket {ticket_id}"
    desk = Desk(store, Settings())
    store.add_tickets([enriched_tweet("4101")], lambda tw: None)
    t = store.get_ticket_by_tweet("4101")
    # The unconvertible one is left out of the suggestions (never evaluated), the converted one offered.
    assert [c["title"] for c in desk.canned.for_ticket(t)] == ["old"]
    with pytest.raises(DeskError, match="template code"):
        desk.canned.save({"title": "evil", "text": texts["evil"]}, bootstrap_admin())
