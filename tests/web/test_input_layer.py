"""Hostile input at the app's door: a NUL (or another control character) anywhere in a request, a huge or
overflowing `seen` stamp, CR/LF in the sign-in's `next` — each a 400 with the reason (JSON or a page), never a
500, on SQLite and PostgreSQL alike (PostgreSQL cannot store a NUL)."""

from __future__ import annotations

import re

import pytest

from tests.fixtures.store import enriched_tweet
from tweetdesk.app import create_app
from tweetdesk.config import Settings
from tweetdesk.desk.core import Desk
from tweetdesk.reply.templates import ReplyTemplates
from tweetdesk.tickets.intake import Intake

KEY = "s3cret-admin-key-for-the-input-layer-tests"
ADMIN = {"X-API-Key": KEY}
STAMPS = ["9" * 5000 + ".1.open.1", "1" * 30 + ".1.open.1", "1." + "9" * 40 + ".open.1", "x" * 100_000]


@pytest.fixture
def app_client(tmp_path, store):
    settings = Settings(work_dir=tmp_path, api_key=KEY)
    app = create_app(settings, store)
    tweet = enriched_tweet("3001", text="@united lost my bag on UA 1234")
    store.add_tickets([tweet], ReplyTemplates.load().render, intake=Intake.from_settings(settings))
    Desk(store, settings).accounts.add("ann", "agent", actor="test")
    return app.test_client(), store, tweet.ticket_id


def _is_400(r) -> None:
    assert r.status_code == 400, (r.status_code, r.get_data(as_text=True)[:300])
    body = r.get_json(silent=True)
    assert (body and body["error"]) or "Bad request" in r.get_data(as_text=True)


@pytest.mark.parametrize("seen", STAMPS)
def test_a_huge_seen_stamp_is_a_400(app_client, seen):
    client, store, tid = app_client
    _is_400(client.post(f"/api/tickets/{tid}/reply", json={"text": "@jane_doe on it", "seen": seen}, headers=ADMIN))
    _is_400(client.post(f"/api/tickets/{tid}/resolve", json={"seen": seen}, headers=ADMIN))
    assert store.get_ticket(tid).status.value == "open"


def _signed_in(client):
    html = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    assert client.post("/login", data={"api_key": KEY, "csrf_token": csrf, "next": "/"}).status_code == 303
    return csrf


@pytest.mark.parametrize("seen", STAMPS[:3])
def test_a_huge_seen_stamp_on_presence_is_a_400(app_client, seen):
    client, _store, tid = app_client
    _signed_in(client)
    _is_400(client.get(f"/desk/api/tickets/{tid}/presence", query_string={"seen": seen}))


def test_nul_in_a_note_canned_title_assignee_or_opt_out_is_a_400(app_client):
    client, store, tid = app_client
    good = {"title": "bag", "text": "{mention} we are on it, ticket {ticket_id}"}
    for method, path, body in [
        ("post", f"/api/tickets/{tid}/notes", {"text": "rang ORD\x00"}),
        ("post", "/api/canned-replies", {**good, "title": "bag\x00"}),
        ("post", f"/api/tickets/{tid}/assign", {"assignee": "ann\x00"}),
        ("post", f"/api/tickets/{tid}/notes", {"text": ["nested", {"k\x00": 1}]}),
        ("delete", "/api/opt-outs/jane%00doe", None),
        ("get", "/api/tickets?topic=Bag%00", None),
    ]:
        r = getattr(client, method)(path, json=body, headers=ADMIN)
        _is_400(r)
        assert r.get_json()["kind"] == "bad_character", path
    full = client.get(f"/api/tickets/{tid}", headers=ADMIN).get_json()
    assert full["notes"] == [] and full["assignee"] is None


def test_nul_in_a_signed_in_page_form_is_a_400(app_client):
    client, _store, tid = app_client
    csrf = _signed_in(client)
    _is_400(client.post(f"/tickets/{tid}/resolve", data={"csrf_token": csrf, "seen": "1\x00"}))


@pytest.mark.parametrize("nxt", ["/\r\nSet-Cookie: a=b", "/desk\r\n", "/%0d%0aX: y", "/" + "a" * 10_000])
def test_crlf_in_next_never_makes_a_500(app_client, nxt):
    client, _store, _tid = app_client
    r = client.get("/login", query_string={"next": nxt})
    assert r.status_code in (200, 400), r.status_code
    _signed_in(client)
    r = client.get("/login", query_string={"next": nxt})  # signed in: redirected to next, if it is safe
    assert r.status_code in (302, 400), r.status_code
    assert "\n" not in r.headers.get("Location", "") and "Set-Cookie: a=b" not in str(r.headers)
