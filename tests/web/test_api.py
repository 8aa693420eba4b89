"""The JSON API: public lookup, admin endpoints, bad input, OpenAPI document (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.store import enriched_tweet
from tweetdesk.app import create_app
from tweetdesk.config import Settings
from tweetdesk.reply.templates import ReplyTemplates
from tweetdesk.tickets.ids import ALPHABET
from tweetdesk.tickets.intake import Intake
from tweetdesk.tickets.store import TicketStore
from tweetdesk.web.api import MAX_BODY_BYTES

KEY = "s3cret-admin-key-for-the-json-api-tests"
ADMIN = {"X-API-Key": KEY}


@pytest.fixture
def app_store(tmp_path, store):
    settings = Settings(work_dir=tmp_path, api_key=KEY)
    app = create_app(settings, store)
    tweets = [
        enriched_tweet("1001"),
        enriched_tweet("1002", topic="Online Booking", sentiment="neutral"),
        enriched_tweet("1003", topic="Online Booking", sentiment="positive"),
    ]
    store.add_tickets(tweets, ReplyTemplates.load().render, intake=Intake.from_settings(settings))
    return app.test_client(), store, tweets


def _mistype(tid: str) -> str:
    """Change one body character: the check character must catch it."""
    i = 5
    c = tid[i]
    repl = ALPHABET[(ALPHABET.index(c) + 1) % len(ALPHABET)]
    return tid[:i] + repl + tid[i + 1 :]


def test_public_lookup_shows_no_personal_data(app_store):
    client, store, tweets = app_store
    r = client.get(f"/api/tickets/{tweets[0].ticket_id}")
    assert r.status_code == 200
    body = r.get_json()
    assert set(body) == {"ticket_id", "status", "topic", "created_at", "updated_at", "replied_at", "resolved_at",
                         "removed_reason", "removed_at"}  # a tombstone says so (X's data rules)
    assert body["status"] == "open" and body["topic"] == "Baggage Issue"
    raw = r.get_data(as_text=True)
    assert "jane_doe" not in raw and "lost my bag" not in raw and "1001" not in raw


def test_lookup_forgives_case_and_dashes(app_store):
    client, _, tweets = app_store
    loose = tweets[0].ticket_id.replace("-", " ").lower()
    assert client.get(f"/api/tickets/{loose}").get_json()["ticket_id"] == tweets[0].ticket_id


def test_mistyped_id_is_400_naming_the_check(app_store):
    client, _, tweets = app_store
    r = client.get(f"/api/tickets/{_mistype(tweets[0].ticket_id)}")
    assert r.status_code == 400
    body = r.get_json()
    assert body["kind"] == "check" and "check character" in body["error"]
    r = client.get("/api/tickets/BAG-0O1I0000-A")
    assert r.status_code == 400 and r.get_json()["kind"] == "format"
    r = client.get("/api/tickets/ZZZ-22222222-2")
    assert r.status_code == 400 and r.get_json()["kind"] == "prefix"


def test_unknown_valid_id_is_404(app_store):
    from tweetdesk.tickets.ids import ticket_id_for

    client, _, _ = app_store
    r = client.get(f"/api/tickets/{ticket_id_for('999999', 'Baggage Issue', key=b'test')}")
    assert r.status_code == 404 and r.is_json and r.get_json()["kind"] == "unknown"


def test_admin_sees_the_full_ticket_and_a_wrong_key_is_refused(app_store):
    client, _, tweets = app_store
    full = client.get(f"/api/tickets/{tweets[0].ticket_id}", headers={"Authorization": f"Bearer {KEY}"}).get_json()
    assert full["author"] == "jane_doe" and full["entities"][0]["label"] == "FLIGHT"
    assert full["replies"][0]["status"] == "queued" and tweets[0].ticket_id in full["replies"][0]["text"]
    r = client.get(f"/api/tickets/{tweets[0].ticket_id}", headers={"X-API-Key": "nope"})
    assert r.status_code == 401


def test_list_is_admin_only_filtered_and_paged(app_store):
    client, _, tweets = app_store
    assert client.get("/api/tickets").status_code == 401
    assert client.get("/api/tickets", headers={"X-API-Key": KEY + "x"}).status_code == 401
    r = client.get("/api/tickets?topic=Online Booking&limit=1", headers=ADMIN)
    body = r.get_json()
    assert r.status_code == 200 and body["total"] == 2 and len(body["items"]) == 1 and body["next_offset"] == 1
    page2 = client.get("/api/tickets?topic=Online Booking&limit=1&offset=1", headers=ADMIN).get_json()
    assert page2["next_offset"] is None
    assert {body["items"][0]["ticket_id"], page2["items"][0]["ticket_id"]} == {tweets[1].ticket_id, tweets[2].ticket_id}
    only = client.get("/api/tickets?sentiment=positive&status=open", headers=ADMIN).get_json()
    assert [t["ticket_id"] for t in only["items"]] == [tweets[2].ticket_id]
    for bad in ("status=closed", "topic=Weather", "sentiment=angry", "limit=0", "limit=x", "offset=-1"):
        r = client.get(f"/api/tickets?{bad}", headers=ADMIN)
        assert r.status_code == 400 and r.is_json, bad


def test_admin_api_disabled_without_a_key(tmp_path, sqlite_store):
    client = create_app(Settings(work_dir=tmp_path), sqlite_store).test_client()
    r = client.get("/api/tickets", headers=ADMIN)
    assert r.status_code == 403 and "TWEETDESK_API_KEY" in r.get_json()["error"]


def test_resolve(app_store):
    client, store, tweets = app_store
    tid = tweets[0].ticket_id
    assert client.post(f"/api/tickets/{tid}/resolve").status_code == 401
    r = client.post(f"/api/tickets/{tid}/resolve", headers=ADMIN, json={"note": "bag delivered"})
    assert r.status_code == 200 and r.get_json()["status"] == "resolved"
    first = store.get_ticket(tid).resolved_at
    assert client.post(f"/api/tickets/{tid}/resolve", headers=ADMIN).status_code == 200
    assert store.get_ticket(tid).resolved_at == first  # resolving twice changes nothing
    assert client.post(f"/api/tickets/{_mistype(tid)}/resolve", headers=ADMIN).get_json()["kind"] == "check"


def test_manual_reply(app_store):
    client, store, tweets = app_store
    body = {"tweet_id": "1001", "text": "@jane_doe Your bag is on its way, ref " + tweets[0].ticket_id}
    r = client.post("/api/replies", headers={**ADMIN, "Idempotency-Key": "k-1"}, json=body)
    assert r.status_code == 202 and r.get_json()["status"] == "queued" and r.get_json()["created"]
    again = client.post("/api/replies", headers={**ADMIN, "Idempotency-Key": "k-1"}, json=body)
    assert again.status_code == 200 and again.get_json()["id"] == r.get_json()["id"]
    assert len(store.replies_for(tweets[0].ticket_id)) == 2  # the auto reply + one manual reply


def test_manual_reply_goes_through_the_desk_stale_view_check_and_audit(app_store):
    """POST /api/replies is the desk's reply path: with the view stamp it was written against, a ticket changed
    since gets a 409 naming the change and nothing is queued; the reply that goes is in the audit trail."""
    client, store, tweets = app_store
    tid = tweets[0].ticket_id
    seen = client.get(f"/api/tickets/{tid}", headers=ADMIN).get_json()["seen"]
    assert client.post(f"/api/tickets/{tid}/notes", json={"text": "called the station"}, headers=ADMIN).status_code == 201
    body = {"tweet_id": "1001", "text": "@jane_doe Your bag is on its way, ref " + tid, "seen": seen}
    r = client.post("/api/replies", headers=ADMIN, json=body)
    assert r.status_code == 409 and r.get_json()["kind"] == "stale" and any("note" in c for c in r.get_json()["changes"])
    assert len(store.replies_for(tid)) == 1  # only the automatic reply
    body["seen"] = r.get_json()["seen"]
    r = client.post("/api/replies", headers=ADMIN, json=body)
    assert r.status_code == 202
    audit = client.get(f"/api/tickets/{tid}/audit", headers=ADMIN).get_json()["items"]
    assert any(a["action"] == "replied" and a["detail"]["reply"] == r.get_json()["id"] for a in audit)


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ({"tweet_id": "1001", "text": "see https://help.example.com"}, "URL"),
        ({"tweet_id": "1001", "text": "call us at united.com"}, "URL"),
        ({"tweet_id": "1001", "text": "@jane_doe ask @otherbrand"}, "@otherbrand"),
        ({"tweet_id": "1001", "text": "x" * 281}, "280"),
        ({"tweet_id": "1001", "text": "😀" * 141}, "280"),  # emoji count double on X
        ({"tweet_id": "1001", "text": "   "}, "empty"),
        ({"tweet_id": 1001, "text": "hi"}, "tweet_id"),
        ({"tweet_id": "1001"}, "text"),
    ],
)
def test_manual_reply_rules(app_store, payload, fragment):
    client, _, _ = app_store
    r = client.post("/api/replies", headers=ADMIN, json=payload)
    assert r.status_code == 400 and fragment in r.get_json()["error"]


def test_manual_reply_to_unknown_tweet_is_404(app_store):
    client, _, _ = app_store
    r = client.post("/api/replies", headers=ADMIN, json={"tweet_id": "42", "text": "hello"})
    assert r.status_code == 404


def test_malformed_and_oversized_json_are_400_json(app_store):
    client, _, _ = app_store
    for data in ("{not json", "[1, 2]", "", "\xff\xfe"):
        r = client.post("/api/replies", headers={**ADMIN, "Content-Type": "application/json"}, data=data)
        assert r.status_code == 400 and r.is_json, data
    big = json.dumps({"tweet_id": "1001", "text": "x" * (MAX_BODY_BYTES + 10)})
    r = client.post("/api/replies", headers={**ADMIN, "Content-Type": "application/json"}, data=big)
    assert r.status_code == 400 and r.get_json()["kind"] == "too_large"
    # Even a route without a body handler never answers with an HTML page.
    r = client.get("/nope")
    assert r.status_code == 404 and r.is_json
    r = client.delete("/api/replies", headers=ADMIN)
    assert r.status_code == 405 and r.is_json


def test_healthz(app_store):
    client, _, _ = app_store
    r = client.get("/healthz")
    assert r.status_code == 200 and r.get_json() == {"status": "ok"}  # the details are for the admin key
    r = client.get("/healthz", headers=ADMIN)
    assert r.status_code == 200 and r.get_json()["status"] == "ok" and r.get_json()["store"]["ok"]


def test_healthz_reports_a_dead_store(tmp_path):
    store = TicketStore(f"sqlite:///{tmp_path / 't.db'}")
    client = create_app(Settings(work_dir=tmp_path), store).test_client()
    store.engine.dispose()
    (tmp_path / "t.db").unlink()
    (tmp_path / "t.db").mkdir()  # the file is gone and cannot be recreated
    r = client.get("/healthz")
    assert r.status_code == 503 and r.get_json()["status"] == "degraded"


def test_openapi_document_is_valid_and_covers_every_route(app_store):
    from openapi_spec_validator import validate

    client, _, _ = app_store
    doc = client.get("/api/openapi.json").get_json()
    validate(doc)
    app = client.application
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = rule.rule.replace("<", "{").replace(">", "}")
            assert path in doc["paths"], path
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert method.lower() in doc["paths"][path], (path, method)
