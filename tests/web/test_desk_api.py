"""The desk's JSON API on the real app and store (SQLite and PostgreSQL): personal tokens, roles, the audit
trail, collisions, canned replies, notes, corrections, export, and bad input (clear 4xx, nothing changed)."""

from __future__ import annotations

import io
import logging

import pyarrow.parquet as pq
import pytest

from tests.fixtures.store import enriched_tweet
from tweetdesk.app import create_app
from tweetdesk.config import Settings
from tweetdesk.desk.core import Desk
from tweetdesk.reply.templates import ReplyTemplates
from tweetdesk.tickets.intake import Intake

KEY = "s3cret-admin-key-for-the-desk-api-tests"
ADMIN = {"X-API-Key": KEY}


@pytest.fixture
def desk_app(tmp_path, store):
    settings = Settings(work_dir=tmp_path, api_key=KEY, auth_free_failures=3)
    app = create_app(settings, store)
    tweets = [
        enriched_tweet("2001", text="@united lost my bag on UA 1234"),
        enriched_tweet("2002", text="united lost my bag again, nobody answers", author="quiet_one"),  # not summoned
    ]
    store.add_tickets(tweets, ReplyTemplates.load().render, intake=Intake.from_settings(settings))
    desk = Desk(store, settings)
    pw = {n: desk.accounts.add(n, r, actor="test")[1] for n, r in (("ann", "agent"), ("bob", "agent"), ("vic", "viewer"))}
    client = app.test_client()

    def token(name):
        r = client.post("/api/tokens", json={"name": name, "password": pw[name], "label": "tests"})
        assert r.status_code == 201, r.get_json()
        return {"Authorization": f"Bearer {r.get_json()['token']}"}

    return client, store, desk, tweets, token


def test_tokens_roles_and_the_audit_trail(desk_app):
    client, store, desk, tweets, token = desk_app
    ann, vic = token("ann"), token("vic")
    tid = tweets[0].ticket_id
    # The shared key still acts as the bootstrap admin; a token acts as its account.
    assert client.get("/api/tickets?limit=5", headers=ADMIN).status_code == 200
    assert client.get("/api/tickets?limit=5", headers=vic).status_code == 200  # viewers read
    for method, path, body in [
        ("post", f"/api/tickets/{tid}/resolve", None), ("post", f"/api/tickets/{tid}/notes", {"text": "x"}),
        ("post", f"/api/tickets/{tid}/assign", {"assignee": "me"}), ("post", "/api/replies", {"tweet_id": "2001", "text": "hi"}),
        ("post", f"/api/tickets/{tid}/corrections", {"topic": "Extra Charges"}),
    ]:
        r = getattr(client, method)(path, json=body, headers=vic)
        assert r.status_code == 403 and r.get_json()["kind"] == "forbidden", path
    assert desk.audit(tid) == [] and store.get_ticket(tid).status.value == "open"
    assert client.get("/api/users", headers=ann).status_code == 403  # admins only
    assert client.post(f"/api/tickets/{tid}/assign", json={"assignee": "me"}, headers=ann).get_json()["assignee"] == "ann"
    assert client.post(f"/api/tickets/{tid}/notes", json={"text": "rang the desk at ORD"}, headers=ann).status_code == 201
    assert client.post(f"/api/tickets/{tid}/resolve", headers=ADMIN).status_code == 200
    full = client.get(f"/api/tickets/{tid}", headers=vic).get_json()
    assert [(e["actor"], e["action"]) for e in full["audit"]] == [
        ("ann", "assigned"), ("ann", "noted"), ("admin (API key)", "resolved")]
    assert full["assignee"] == "ann" and full["notes"][0]["text"] == "rang the desk at ORD"
    assert full["timer"]["class"] == "urgent" and full["seen"]
    # Tokens are revocable; a revoked one is a wrong key.
    tokens = client.get("/api/tokens", headers=ann).get_json()["items"]
    assert [t["user"] for t in tokens] == ["ann"]
    assert client.delete(f"/api/tokens/{tokens[0]['id']}", headers=ann).status_code == 200
    assert client.get("/api/tickets", headers=ann).status_code == 401


def _password_session(app, name, password):
    import re

    c = app.test_client()
    html = c.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    r = c.post("/login", data={"name": name, "password": password, "csrf_token": csrf, "next": "/"})
    assert r.status_code == 303, r.get_data(as_text=True)[:300]
    return c


def test_a_reset_or_a_disable_ends_every_session_and_token_for_good(desk_app):
    client, store, desk, tweets, token = desk_app
    app = client.application
    signed_in = lambda c: c.get("/password").status_code == 200  # noqa: E731 (a one-time password's page)
    ann = token("ann")
    pw = desk.accounts.reset("ann", actor="test")  # (the fixture's password is gone: sessions need a fresh one)
    assert client.get("/api/desk/inbox", headers=ann).status_code == 401  # a reset revokes the tokens
    ann = {"Authorization": "Bearer " + client.post("/api/tokens", json={"name": "ann", "password": pw}).get_json()["token"]}
    browser = _password_session(app, "ann", pw)
    assert signed_in(browser) and client.get("/api/desk/inbox", headers=ann).status_code == 200
    desk.accounts.disable("ann", actor="test")
    desk.accounts.disable("ann", actor="test", enable=True)
    assert client.get("/api/desk/inbox", headers=ann).status_code == 401
    assert not signed_in(browser)
    # The account itself works again: a fresh sign-in does.
    assert signed_in(_password_session(app, "ann", pw))


def test_unknown_user_and_wrong_passwords_are_throttled(desk_app, caplog):
    caplog.set_level(logging.WARNING, logger="tweetdesk.auth")
    client, store, desk, tweets, token = desk_app
    r = client.post("/api/tokens", json={"name": "nobody", "password": "guess"})
    assert r.status_code == 401 and r.get_json()["error"] == "unknown user or wrong password"
    for _ in range(2):  # 3 free failures (auth_free_failures=3)
        assert client.post("/api/tokens", json={"name": "ann", "password": "guess"}).status_code == 401
    r = client.post("/api/tokens", json={"name": "ann", "password": "guess"})
    assert r.status_code == 401
    r = client.post("/api/tokens", json={"name": "ann", "password": "guess"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 and r.get_json()["kind"] == "throttled"
    assert desk.accounts.tokens() == []  # nothing created
    assert client.post("/api/tokens", json={"name": 5, "password": "x"}).status_code == 400
    logged = [r.getMessage() for r in caplog.records if r.name == "tweetdesk.auth"]
    assert logged and all(m.startswith("wrong password from ") and "guess" not in m for m in logged)


def test_password_guesses_are_counted_per_account_across_addresses(desk_app):
    client, store, desk, tweets, token = desk_app
    codes = [client.post("/api/tokens", json={"name": "ann", "password": "guess"},
                         environ_base={"REMOTE_ADDR": f"192.0.2.{i}"}).status_code for i in range(8)]
    assert codes[:4] == [401] * 4 and set(codes[4:]) == {429}  # 3 free (+1 counted), each from a fresh address


def test_concurrent_password_tries_from_a_fresh_address_are_not_all_checked(desk_app):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    client, store, desk, tweets, token = desk_app
    app = client.application
    gate = Barrier(30)

    def guess(i):
        c = app.test_client()
        gate.wait()
        return c.post("/api/tokens", json={"name": "bob", "password": f"guess{i}"},
                      environ_base={"REMOTE_ADDR": "198.51.100.30"}).status_code

    with ThreadPoolExecutor(30) as pool:
        codes = list(pool.map(guess, range(30)))
    assert codes.count(401) <= 3 + 1 and codes.count(429) == 30 - codes.count(401), codes


def test_guessers_cannot_lock_an_agent_out_of_the_browser_she_signed_in_from(desk_app):
    """One proxy in front: the guessers and the agent share an address."""
    client, store, desk, tweets, token = desk_app
    app = client.application
    pw = desk.accounts.reset("ann", actor="test")
    office = {"REMOTE_ADDR": "10.0.0.2"}
    her_browser = app.test_client()
    assert _password_session_from(her_browser, "ann", pw, office).status_code == 303  # a Monday sign-in
    known = her_browser.get_cookie("tweetdesk_device").value
    her_browser = app.test_client()  # signed out: no session left, the browser stays known
    her_browser.set_cookie("tweetdesk_device", known)
    for _ in range(10):  # then someone at the same address guesses her password
        client.post("/api/tokens", json={"name": "ann", "password": "guess"}, environ_base=office)
    assert client.post("/api/tokens", json={"name": "ann", "password": pw}, environ_base=office).status_code == 429
    assert _password_session_from(her_browser, "ann", pw, office).status_code == 303  # she still gets in


def _csrf_of(c, path="/login", environ=None):
    import re

    html = c.get(path, environ_base=environ or {}).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _password_session_from(c, name, password, environ):
    return c.post("/login", data={"name": name, "password": password, "csrf_token": _csrf_of(c, environ=environ),
                                  "next": "/"}, environ_base=environ)


def test_sign_ins_failed_sign_ins_and_exports_are_in_the_audit_trail(desk_app):
    client, store, desk, tweets, token = desk_app
    pw = desk.accounts.reset("ann", actor="test")
    assert client.post("/api/tokens", json={"name": "ann", "password": "not-it"}).status_code == 401
    tok = client.post("/api/tokens", json={"name": "ann", "password": pw}).get_json()["token"]
    assert client.get("/api/export?format=csv", headers={"Authorization": f"Bearer {tok}"}).status_code == 200
    got = [(e["actor"], e["action"], e["detail"].get("user"), e["detail"].get("format")) for e in desk.audit()
           if e["action"] in ("signed_in", "sign_in_failed", "exported")]
    assert got == [("anonymous", "sign_in_failed", "ann", None), ("ann", "signed_in", None, None),
                   ("ann", "exported", None, "csv")]
    assert all("not-it" not in str(e["detail"]) and pw not in str(e["detail"]) for e in desk.audit())


def test_a_personal_token_may_expire(desk_app):
    client, store, desk, tweets, token = desk_app
    pw = desk.accounts.reset("ann", actor="test")
    r = client.post("/api/tokens", json={"name": "ann", "password": pw, "expires_days": 0})
    assert r.status_code == 400 and r.get_json()["kind"] == "bad_field"
    r = client.post("/api/tokens", json={"name": "ann", "password": pw, "expires_days": 30})
    assert r.status_code == 201 and r.get_json()["expires_at"]
    head = {"Authorization": f"Bearer {r.get_json()['token']}"}
    assert client.get("/api/desk/inbox", headers=head).status_code == 200
    with store.transaction(write=True) as conn:  # 30 days on: the row says when it ends, as the clock reads it
        from datetime import timedelta

        from tweetdesk.tickets.schema import api_tokens

        made = conn.execute(api_tokens.select()).mappings().one()["created_at"]
        conn.execute(api_tokens.update().values(expires_at=made - timedelta(seconds=1)))
    assert client.get("/api/desk/inbox", headers=head).status_code == 401


def test_a_wrong_token_is_logged_as_a_token(desk_app, caplog):
    caplog.set_level(logging.WARNING, logger="tweetdesk.auth")
    client, store, desk, tweets, token = desk_app
    good = token("ann")["Authorization"].removeprefix("Bearer ")
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    assert client.get("/api/desk/inbox", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    logged = [r.getMessage() for r in caplog.records if r.name == "tweetdesk.auth"]
    assert len(logged) == 1 and logged[0].startswith("wrong token from ") and forged not in logged[0]


def test_a_stale_resolve_gets_409_with_what_changed(desk_app):
    client, store, desk, tweets, token = desk_app
    ann, bob = token("ann"), token("bob")
    tid = tweets[0].ticket_id
    seen = client.get(f"/api/tickets/{tid}/audit", headers=ann).get_json()["seen"]
    client.post(f"/api/tickets/{tid}/notes", json={"text": "customer called back"}, headers=bob)
    r = client.post(f"/api/tickets/{tid}/resolve", json={"seen": seen}, headers=ann)
    body = r.get_json()
    assert r.status_code == 409 and body["kind"] == "stale" and body["changes"][0].startswith("bob added a note")
    assert store.get_ticket(tid).status.value == "open"
    r = client.post(f"/api/tickets/{tid}/reply", json={"seen": seen, "text": f"@jane_doe on it. {tid}"}, headers=ann)
    assert r.status_code == 409 and store.replies_for(tid)[-1].kind.value == "auto"
    assert client.post(f"/api/tickets/{tid}/resolve", json={"seen": body["seen"]}, headers=ann).status_code == 200


def test_two_agents_answering_the_same_view_one_reply_goes(desk_app):
    """X allows one reply per interaction: the freshness check and the queueing are one transaction."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    client, store, desk, tweets, token = desk_app
    heads = [token("ann"), token("bob")]
    app = client.application
    tid = tweets[0].ticket_id
    rounds = 8
    for n in range(rounds):
        seen = client.get(f"/api/tickets/{tid}/audit", headers=heads[0]).get_json()["seen"]
        gate = Barrier(2)

        def answer(i):
            c = app.test_client()
            gate.wait()
            return c.post(f"/api/tickets/{tid}/reply", headers=heads[i],
                          json={"seen": seen, "text": f"@jane_doe on it ({n}.{i}). {tid}"}).status_code

        with ThreadPoolExecutor(2) as pool:
            codes = sorted(pool.map(answer, range(2)))
        assert codes == [202, 409], (n, codes)
    manual = [r for r in store.replies_for(tid) if r.kind.value == "manual"]
    assert len(manual) == rounds and [e["action"] for e in desk.audit(tid)] == ["replied"] * rounds


def test_agent_replies_keep_x_rules(desk_app):
    client, store, desk, tweets, token = desk_app
    ann = token("ann")
    tid, quiet = tweets[0].ticket_id, tweets[1].ticket_id
    r = client.post(f"/api/tickets/{quiet}/reply", json={"text": f"@quiet_one sorry. {quiet}"}, headers=ann)
    assert r.status_code == 409 and r.get_json()["kind"] == "not_summoned"
    r = client.post(f"/api/tickets/{tid}/reply", json={"text": f"@jane_doe see united.com {tid}"}, headers=ann)
    assert r.status_code == 400 and "URL" in r.get_json()["error"]
    r = client.post(f"/api/tickets/{tid}/reply", json={"text": f"@jane_doe your bag is in Denver. {tid}"}, headers=ann)
    assert r.status_code == 202
    mine = [x for x in store.replies_for(tid) if x.kind.value == "manual"]
    assert [x.text for x in mine] == [f"@jane_doe your bag is in Denver. {tid}"]
    assert [e["action"] for e in desk.audit(tid)] == ["replied"] and desk.audit(tid)[0]["actor"] == "ann"


def test_canned_replies_bad_input_and_corrections(desk_app):
    client, store, desk, tweets, token = desk_app
    ann = token("ann")
    tid = tweets[0].ticket_id
    good = {"title": "Bag found", "topic": "Baggage Issue", "sentiment": "negative",
            "text": "{mention} we found your bag. Ticket {ticket_id}"}
    r = client.post("/api/canned-replies", json={**good, "text": "{mention} details at t.co/x {ticket_id}"}, headers=ADMIN)
    assert r.status_code == 400 and r.get_json()["kind"] == "bad_canned_reply" and "URL" in r.get_json()["error"]
    r = client.post("/api/canned-replies", json={**good, "text": "{mention} ask @delta {ticket_id}"}, headers=ADMIN)
    assert r.status_code == 400 and "@mention" in r.get_json()["error"]
    assert client.post("/api/canned-replies", json=good, headers=ann).status_code == 403  # admins edit
    assert client.get("/api/canned-replies", headers=ann).get_json()["items"] == []  # nothing saved
    assert client.post("/api/canned-replies", json=good, headers=ADMIN).status_code == 201
    # A correction naming an unknown topic: 400, nothing changed.
    r = client.post(f"/api/tickets/{tid}/corrections", json={"topic": "Lost Dog", "sentiment": "neutral"}, headers=ann)
    assert r.status_code == 400 and r.get_json()["kind"] == "bad_topic" and "Lost Dog" in r.get_json()["error"]
    t = store.get_ticket(tid)
    assert (t.topic, t.sentiment) == ("Baggage Issue", "negative") and desk.corrections() == [] and desk.audit(tid) == []
    r = client.post(f"/api/tickets/{tid}/corrections", json={"topic": "Extra Charges", "sentiment": "neutral"}, headers=ann)
    assert r.status_code == 201 and store.get_ticket(tid).topic == "Extra Charges"
    r = client.post(f"/api/tickets/{tid}/assign", json={"assignee": "zed"}, headers=ann)
    assert r.status_code == 404 and r.get_json()["kind"] == "unknown_user"


def test_export_and_report(desk_app):
    client, store, desk, tweets, token = desk_app
    vic = token("vic")
    r = client.get("/api/export?format=parquet", headers=vic)
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    table = pq.read_table(io.BytesIO(r.data))
    assert sorted(table.column("ticket_id").to_pylist()) == sorted(t.ticket_id for t in tweets)
    r = client.get("/api/export?format=csv&listening_only=true", headers=vic)
    lines = r.data.decode("utf-8-sig").splitlines()
    assert r.status_code == 200 and len(lines) == 2 and tweets[1].ticket_id in lines[1]
    assert client.get("/api/export?format=xlsx", headers=vic).status_code == 400
    rep = client.get("/api/desk/report", headers=vic).get_json()
    assert rep["overall"]["tickets"] == 2 and {r["topic"] for r in rep["by_topic"]} == {"Baggage Issue"}
    inbox = client.get("/api/desk/inbox?class=urgent", headers=vic).get_json()
    assert sorted(i["ticket_id"] for i in inbox["items"]) == sorted(t.ticket_id for t in tweets)
    assert client.get("/api/desk/inbox?class=positive", headers=vic).get_json()["total"] == 0
    assert client.get("/api/desk/inbox?topic=Nope", headers=vic).status_code == 400


def test_openapi_documents_the_desk(desk_app):
    import re

    from openapi_spec_validator import validate

    client, *_ = desk_app
    doc = client.get("/api/openapi.json").get_json()
    validate(doc)
    rules = [r for r in client.application.url_map.iter_rules() if r.endpoint.startswith("desk_api.")]
    assert len(rules) >= 15
    for rule in rules:
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        assert path in doc["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in doc["paths"][path], (path, method)
