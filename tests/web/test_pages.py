"""The web pages through Flask's test client on the real app (tweetdesk.app.create_app) and a real
SQLite ticket store: tracking messages, agent sign-in, CSRF, what the public page may show."""

from __future__ import annotations

import re

import pytest

from tests.fixtures.browser import seed_store
from tweetdesk.app import create_app
from tweetdesk.config import Settings
from tweetdesk.tickets.ids import ALPHABET, ticket_id_for

KEY = "s3cret-agent-key-for-the-web-page-tests"
UNKNOWN = ticket_id_for("42", "Baggage Issue", key=b"test")  # well-formed, valid check character, never seeded


def _app(tmp_path, store, api_key=None):
    app = create_app(Settings(work_dir=tmp_path, api_key=api_key), store)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def seeded(sqlite_store):
    return seed_store(sqlite_store, n=12)


@pytest.fixture
def open_client(tmp_path, sqlite_store, seeded):
    return _app(tmp_path, sqlite_store).test_client()


@pytest.fixture
def agent_app(tmp_path, sqlite_store, seeded):
    return _app(tmp_path, sqlite_store, api_key=KEY)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _typo(ticket_id: str) -> str:
    """Change the check character: the shape stays valid, the check fails."""
    c = ticket_id[-1]
    return ticket_id[:-1] + ALPHABET[(ALPHABET.index(c) + 1) % len(ALPHABET)]


def _login(client, key=KEY, next_url="/"):
    html = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"api_key": key, "csrf_token": _csrf(html), "next": next_url})


# --- tracking page ------------------------------------------------------------------------------


def test_tracking_page_shows_status_topic_and_no_personal_data(open_client, seeded, sqlite_store):
    tw = seeded["tweets"][4]
    r = open_client.get(f"/t/{tw.ticket_id}")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert f'data-status="{seeded["statuses"][tw.ticket_id]}"' in html
    assert tw.topic in html
    t = sqlite_store.get_ticket(tw.ticket_id)
    for private in (tw.author, tw.text, t.reply_text, tw.id):
        assert private not in html


def test_tracking_mistyped_id_names_the_check_character(open_client, seeded):
    r = open_client.get(f"/t/{_typo(seeded['tweets'][0].ticket_id)}")
    html = r.get_data(as_text=True)
    assert r.status_code == 400
    assert 'data-kind="check"' in html and "check character" in html


def test_tracking_unknown_id_is_not_found(open_client):
    r = open_client.get(f"/t/{UNKNOWN}")
    html = r.get_data(as_text=True)
    assert r.status_code == 404
    assert 'data-kind="not_found"' in html and "well-formed ticket ID" in html


@pytest.mark.parametrize("path", ["/no-such-page", "/t//0", "/desk/nothing/here"])
def test_a_path_no_route_matches_is_a_page_for_a_browser_and_json_for_the_rest(open_client, path):
    page = open_client.get(path, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "There is nothing at this address." in page.get_data(as_text=True)
    assert 'href="/t/"' in page.get_data(as_text=True)  # the site's navigation, as on every page
    plain = open_client.get(path, headers={"Accept": "*/*"})
    assert plain.status_code == 404 and plain.get_json()["status"] == 404
    api = open_client.get("/api/no-such-thing", headers={"Accept": "text/html"})
    assert api.status_code == 404 and api.get_json()["status"] == 404  # an API path stays JSON


@pytest.mark.parametrize("raw,kind", [("hello", "format"), ("BAG-0O0O0O0O-1", "format"), ("ZZZ-22222222-2", "prefix")])
def test_tracking_malformed_ids(open_client, raw, kind):
    r = open_client.get(f"/t/{raw}")
    assert r.status_code == 400
    assert f'data-kind="{kind}"' in r.get_data(as_text=True)


def test_tracking_form_and_forgiving_input(open_client, seeded):
    tid = seeded["tweets"][1].ticket_id
    r = open_client.get("/t", query_string={"id": f" {tid.lower().replace('-', ' ')} "})
    assert r.status_code == 302
    r = open_client.get(r.headers["Location"])
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/t/{tid}")  # canonical form
    assert open_client.get(r.headers["Location"]).status_code == 200
    form = open_client.get("/t").get_data(as_text=True)
    assert '<label for="ticket-id">Ticket ID</label>' in form


# --- dashboard ----------------------------------------------------------------------------------


def test_dashboard_without_key_is_open_and_says_so(open_client, seeded):
    r = open_client.get("/")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "No API key is set" in html
    assert 'data-kpi="totals.tickets"' in html
    assert "vendor/chartjs/chart.umd.min.js" in html
    js = open_client.get("/web/static/vendor/chartjs/chart.umd.min.js")
    assert js.status_code == 200 and b"Chart.js v4" in js.data[:200]
    # Links go to the public page when there is no agent view.
    assert f'href="/t/{seeded["tweets"][-1].ticket_id}"' in html


def test_summary_json(open_client, seeded):
    data = open_client.get("/web/api/summary").get_json()
    assert data["totals"]["tickets"] == 12
    assert {r["status"]: r["count"] for r in data["by_status"]} == {
        s: seeded["counts"].get(s, 0) for s in ("open", "replied", "resolved", "failed")
    }
    assert data["version"] and "newest_html" in data
    again = open_client.get("/web/api/summary").get_json()
    assert again["version"] == data["version"]  # nothing changed: the page will not redraw
    f = open_client.get("/web/api/summary?sentiment=positive").get_json()
    assert f["filters"]["sentiment"] == "positive"
    assert f["totals"]["tickets"] == sum(1 for t in seeded["tweets"] if t.sentiment == "positive")
    assert f["version"] != data["version"]


def test_dashboard_needs_sign_in_when_a_key_is_set(agent_app):
    c = agent_app.test_client()
    r = c.get("/?topic=Baggage+Issue")
    assert r.status_code == 302 and "/login?next=" in r.headers["Location"]
    assert c.get("/web/api/summary").status_code == 401
    assert c.get("/web/api/summary", headers={"X-API-Key": KEY}).status_code == 200
    r = _login(c, next_url="/?topic=Baggage+Issue")
    assert r.status_code == 303 and r.headers["Location"] == "/?topic=Baggage+Issue"
    assert c.get("/").status_code == 200


# --- agent view ---------------------------------------------------------------------------------


def test_agent_view_off_without_key(open_client, seeded):
    r = open_client.get(f"/tickets/{seeded['tweets'][0].ticket_id}")
    assert r.status_code == 403 and "TWEETDESK_API_KEY" in r.get_data(as_text=True)
    assert open_client.get("/login").status_code == 403


def test_agent_sign_in_wrong_key_and_open_redirect(agent_app):
    c = agent_app.test_client()
    r = _login(c, key="wrong")
    assert r.status_code == 401 and "not right" in r.get_data(as_text=True)
    # A sign-in link cannot send the agent to another site.
    r = _login(c, next_url="https://evil.example/")
    assert r.status_code == 303 and r.headers["Location"] == "/"
    # Without the CSRF token the form is refused.
    c2 = agent_app.test_client()
    assert c2.post("/login", data={"api_key": KEY}).status_code == 400


def test_agent_view_and_resolve(agent_app, seeded, sqlite_store):
    tw = next(t for t in seeded["tweets"] if seeded["statuses"][t.ticket_id] == "replied")
    c = agent_app.test_client()
    r = c.get(f"/tickets/{tw.ticket_id}")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    _login(c)
    html = c.get(f"/tickets/{tw.ticket_id}").get_data(as_text=True)
    assert tw.author in html and "Resolve ticket" in html
    for e in tw.entities:
        assert f'data-label="{e.label}" title="{e.label}">{e.text}</mark>' in html  # highlighted in the tweet
    assert sqlite_store.get_ticket(tw.ticket_id).reply_text in html

    # The resolve POST needs the session's CSRF token.
    assert c.post(f"/tickets/{tw.ticket_id}/resolve").status_code == 400
    assert sqlite_store.get_ticket(tw.ticket_id).status.value == "replied"
    r = c.post(f"/tickets/{tw.ticket_id}/resolve", data={"csrf_token": _csrf(html)})
    assert r.status_code == 303
    assert sqlite_store.get_ticket(tw.ticket_id).status.value == "resolved"
    assert "resolved" in c.get(r.headers["Location"]).get_data(as_text=True)

    # A script may resolve with the key as a header (no cookie, so no CSRF token).
    other = next(t for t in seeded["tweets"] if seeded["statuses"][t.ticket_id] == "open")
    anon = agent_app.test_client()
    assert anon.post(f"/tickets/{other.ticket_id}/resolve").status_code == 401
    r = anon.post(f"/tickets/{other.ticket_id}/resolve", headers={"X-API-Key": KEY})
    assert r.status_code == 303 and sqlite_store.get_ticket(other.ticket_id).status.value == "resolved"


def test_agent_view_bad_ids(agent_app, seeded):
    c = agent_app.test_client()
    _login(c)
    assert c.get(f"/tickets/{_typo(seeded['tweets'][0].ticket_id)}").status_code == 400
    assert c.get(f"/tickets/{UNKNOWN}").status_code == 404


def test_changing_the_key_signs_agents_out(tmp_path, sqlite_store, seeded):
    app = _app(tmp_path, sqlite_store, api_key=KEY)
    c = app.test_client()
    _login(c)
    assert c.get("/").status_code == 200
    # Same app secret, new key (e.g. rotated in settings): the old session is no longer an agent.
    app.extensions["tweetdesk"].settings = Settings(work_dir=tmp_path, api_key="a-new-key-rotated-in-the-settings-0001")
    assert c.get("/").status_code == 302


def test_agent_view_shows_the_whole_conversation(agent_app, seeded, sqlite_store):
    """The thread as GET /api/tickets/<id> has it: the customer's follow-ups, our own tweets and our replies,
    oldest first, each with its time."""
    from datetime import timedelta

    from tests.fixtures.browser import make_tweet

    first = next(t for t in seeded["tweets"] if seeded["statuses"][t.ticket_id] == "replied")
    replied_at = sqlite_store.get_ticket(first.ticket_id).replied_at
    follow = make_tweet(90, text="@united still nothing, and now my connection is cancelled", when=replied_at
                        + timedelta(hours=1)).model_copy(update={"author": first.author, "conversation_id": first.id,
                                                                 "in_reply_to_tweet_id": first.id})
    assert sqlite_store.add_tickets([follow]).threaded == [follow.id]
    c = agent_app.test_client()
    html = c.get(f"/tickets/{first.ticket_id}", headers={"X-API-Key": KEY}).get_data(as_text=True)
    api = c.get(f"/api/tickets/{first.ticket_id}", headers={"X-API-Key": KEY}).get_json()["conversation"]
    assert [m["kind"] for m in api] == ["customer", "reply", "customer"]
    section = html[html.index('id="conversation"'):html.index('id="replies"')]
    assert section.index(first.text) < section.index(api[1]["text"]) < section.index(follow.text)
    assert section.count("<time datetime=") == 3


def test_languages_on_the_dashboard_the_ticket_and_the_inbox(agent_app, seeded, sqlite_store):
    from tests.fixtures.store import enriched_tweet
    from tweetdesk.records import NOT_INFERRED
    from tweetdesk.reply.templates import ReplyTemplates

    unread = dict(sentiment=NOT_INFERRED, sentiment_score=0.0, topic=NOT_INFERRED, topic_score=0.0, entities=[])
    es = enriched_tweet("7001", lang="es", text="@united mi vuelo fue cancelado", **unread)
    de = enriched_tweet("7002", lang="de", author="max", text="@united gibt es eine Lounge?", **unread)
    sqlite_store.add_tickets([es, de], ReplyTemplates.load().render)
    c = agent_app.test_client()
    _login(c)
    data = c.get("/web/api/summary?lang=es").get_json()
    assert data["filters"]["lang"] == "es" and data["totals"]["tickets"] == 1
    assert data["by_lang"] == [{"lang": "es", "count": 1}]
    assert {r["sentiment"]: r["count"] for r in data["by_sentiment"]} == {NOT_INFERRED: 1}  # counted apart
    html = c.get("/?lang=de").get_data(as_text=True)
    assert 'id="f-lang"' in html and '<option value="de" selected>de</option>' in html and 'id="t-lang"' in html
    page = c.get(f"/tickets/{de.ticket_id}").get_data(as_text=True)
    assert "<dt>Language</dt><dd>de" in page and "not inferred" in page
    assert "no reply template in the customer&#39;s language (de)" in page
    got = c.get("/api/desk/inbox?class=language&lang=de", headers={"X-API-Key": KEY}).get_json()
    assert [(i["ticket_id"], i["class"], i["lang"]) for i in got["items"]] == [(de.ticket_id, "language", "de")]
    assert c.get("/api/desk/inbox?lang=Deutsch!", headers={"X-API-Key": KEY}).status_code == 400
