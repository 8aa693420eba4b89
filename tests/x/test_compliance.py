"""X's data rules against the X API stand-in: batch compliance jobs, the one removal path, erasure, retention,
the record of use."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import requests
import sqlalchemy as sa

from tests.fixtures.store import enriched_tweet, everything_stored
from tweetdesk.cli import main
from tweetdesk.records import DeadLetter
from tweetdesk.tickets import schema
from tweetdesk.tickets.compliance import run_cycle
from tweetdesk.tickets.erase import erase_author, purge_older_than, record_of_use
from tweetdesk.x.compliance import ComplianceClient, ComplianceError, parse_results

SECRET = "lost my bag on UA 1234, jane's secret complaint"


# --- the stand-in speaks X's contract -------------------------------------------------------------
def test_standin_job_lifecycle_and_result_lines(xapi):
    xapi.compliance.mark_tweet("111", "deleted")
    xapi.compliance.mark_tweet("333", "scrub_geo")
    h = {"Authorization": "Bearer app"}
    job = requests.post(f"{xapi.base_url}/2/compliance/jobs", json={"type": "tweets"}, headers=h).json()["data"]
    assert job["status"] == "created" and job["type"] == "tweets"
    assert {"id", "upload_url", "download_url", "upload_expires_at", "download_expires_at", "created_at"} <= set(job)
    # X allows one concurrent job per type; a users job is fine.
    second = requests.post(f"{xapi.base_url}/2/compliance/jobs", json={"type": "tweets"}, headers=h)
    assert second.status_code == 400 and "one concurrent job" in second.json()["detail"]
    assert requests.post(f"{xapi.base_url}/2/compliance/jobs", json={"type": "users"}, headers=h).status_code == 200
    assert requests.post(f"{xapi.base_url}/2/compliance/jobs", json={"type": "posts"}, headers=h).status_code == 400
    assert requests.get(job["download_url"]).status_code == 403  # nothing to download before completion
    assert requests.put(job["upload_url"], data=b"111\n222\n333\n", headers={"Content-Type": "text/plain"}).ok
    status = requests.get(f"{xapi.base_url}/2/compliance/jobs/{job['id']}", headers=h).json()["data"]
    assert status["status"] == "complete"
    lines = [json.loads(x) for x in requests.get(job["download_url"]).content.splitlines()]
    assert [(x["id"], x["action"], x["reason"]) for x in lines] == [("111", "delete", "deleted"),
                                                                    ("333", "scrub_geo", "scrub_geo")]


@pytest.fixture
def clock():
    from tests.fixtures.clock import FakeClock

    return FakeClock()


def test_standin_upload_url_expires(clocked_xapi, clock):
    job = requests.post(f"{clocked_xapi.base_url}/2/compliance/jobs", json={"type": "users"}).json()["data"]
    clock.t += 16 * 60
    assert requests.put(job["upload_url"], data=b"1\n").status_code == 403
    assert requests.get(f"{clocked_xapi.base_url}/2/compliance/jobs/{job['id']}").json()["data"]["status"] == "expired"
    # An expired job no longer blocks a new one of its type.
    assert requests.post(f"{clocked_xapi.base_url}/2/compliance/jobs", json={"type": "users"}).status_code == 200


# --- the removal path ---------------------------------------------------------------------------
def _fill(store):
    a = enriched_tweet("1001", author="jane_doe", author_id="501", text=f"@united {SECRET}")
    b = enriched_tweet("1002", author="bob_b", author_id="502", text="@united my flight UA 99 is late, bob here")
    c = enriched_tweet("1003", author="carl_c", author_id="503", text="@united carl's seat is broken")
    d = enriched_tweet("1004", author="carl_c", author_id="503", text="@united carl again, another thing",
                       topic="Flight Delay")
    store.add_tickets([a, b, c, d], lambda t: f"@{t.author} we are on it, ticket {t.ticket_id}")
    store.record_dead_letters([DeadLetter.of(json.dumps({"id": "1001", "text": SECRET}), "bad lang", "validate",
                                             key="1001")])
    return a, b, c, d


def _settings_env(monkeypatch, tmp_path, store, xapi):
    monkeypatch.setenv("TWEETDESK_DATABASE_URL", store.url)
    monkeypatch.setenv("TWEETDESK_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("TWEETDESK_X_API_BASE", xapi.base_url)
    monkeypatch.setenv("TWEETDESK_X_BEARER_TOKEN", "app-bearer")


def test_a_post_deleted_on_x_is_gone_after_one_compliance_run(store, xapi, monkeypatch, tmp_path, capsys):
    a, b, c, d = _fill(store)
    before = store.stats()
    assert SECRET in everything_stored(store)
    xapi.compliance.mark_tweet("1001", "deleted")
    _settings_env(monkeypatch, tmp_path, store, xapi)
    assert main(["compliance"]) == 0
    assert "1 posts removed" in capsys.readouterr().out
    assert SECRET not in everything_stored(store) and "jane_doe" not in everything_stored(store)
    t = store.get_ticket(a.ticket_id)
    assert (t.text, t.author, t.topic, t.sentiment) == ("", "[removed]", "Baggage Issue", "negative")
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(schema.tickets).where(schema.tickets.c.ticket_id == a.ticket_id)).mappings().one()
    assert row["removed_reason"] == "removed: deleted on X" and row["removed_at"] is not None
    assert store.stats() == before  # counts still add up
    assert store.get_ticket(b.ticket_id).text == b.text  # the others untouched
    # Both jobs went through X, one ID per line.
    kinds = dict(xapi.compliance.uploaded)
    assert {"1001", "1002", "1003", "1004"} <= set(kinds["tweets"]) and "501" in kinds["users"]


def test_an_account_deleted_on_x_loses_all_its_posts(store, xapi):
    a, b, c, d = _fill(store)
    xapi.compliance.mark_user("503", "suspended")
    report = run_cycle(None, store, ComplianceClient(xapi.base_url, "app", poll_seconds=0))
    assert report.removed_posts == {"1003", "1004"}
    assert "carl" not in everything_stored(store)
    assert store.get_ticket(c.ticket_id).text == "" and store.get_ticket(b.ticket_id).text == b.text


def test_an_edit_keeps_the_newest_version_only(store, xapi):
    old = enriched_tweet("2001", author="dee", author_id="601", text="@united first version of my complaint")
    new = enriched_tweet("2002", author="dee", author_id="601", text="@united edited version of my complaint",
                         conversation_id="2001", in_reply_to_tweet_id=None)
    store.add_tickets([old, new])
    xapi.compliance.mark_tweet("2001", "edited")
    run_cycle(None, store, ComplianceClient(xapi.base_url, "app", poll_seconds=0))
    everything = everything_stored(store)
    assert "first version" not in everything and "edited version of my complaint" in everything


def test_malformed_result_lines_are_logged_and_the_rest_applied(store, xapi, caplog):
    _fill(store)
    xapi.compliance.mark_tweet("1002", "deleted")
    xapi.compliance.extra_lines["tweets"] += [b"{not json", b'{"id": "1003", "action": "explode"}', b"[1]"]
    report = run_cycle(None, store, ComplianceClient(xapi.base_url, "app", poll_seconds=0))
    assert report.removed_posts == {"1002"}
    assert len(report.malformed) == 3 and "unknown action 'explode'" in report.malformed[1]
    assert "malformed result line" in caplog.text
    with store.engine.connect() as conn:
        reasons = [r[0] for r in conn.execute(sa.select(schema.compliance_log.c.reason).where(
            schema.compliance_log.c.action == "malformed"))]
    assert len(reasons) == 3 and reasons[0].startswith("tweets line")


def test_a_second_concurrent_job_is_a_readable_error(store, xapi):
    _fill(store)
    requests.post(f"{xapi.base_url}/2/compliance/jobs", json={"type": "tweets"})
    with pytest.raises(ComplianceError, match="one concurrent job per type"):
        run_cycle(None, store, ComplianceClient(xapi.base_url, "app", poll_seconds=0))


def test_parse_results_reasons():
    ok, bad = parse_results("users", b'{"id":"1","action":"protect","reason":"protected"}\n{"id":2}\n\n')
    assert [x["id"] for x in ok] == ["1"] and bad == ["users line 2: no valid id"]


def test_erase_by_handle_is_audited_without_the_content(store, monkeypatch, tmp_path, capsys):
    a, b, c, d = _fill(store)
    monkeypatch.setenv("TWEETDESK_DATABASE_URL", store.url)
    monkeypatch.setenv("TWEETDESK_WORK_DIR", str(tmp_path / "work"))
    assert main(["erase", "--author", "@Carl_C"]) == 0
    assert "2 posts" in capsys.readouterr().out
    everything = everything_stored(store)
    assert "carl" not in everything.lower()
    with store.engine.connect() as conn:
        line = conn.execute(sa.select(schema.compliance_log).where(schema.compliance_log.c.source == "erase")).mappings().one()
    assert line["posts"] == 2 and line["detail"]["actor"] == "cli" and len(line["detail"]["author_digest"]) == 32


def test_retention_purges_older_content(store):
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    old = enriched_tweet("3001", text="@united an old complaint", created_at=now - timedelta(days=40))
    fresh = enriched_tweet("3002", text="@united a fresh complaint", created_at=now - timedelta(days=2))
    store.add_tickets([old, fresh])
    r = purge_older_than(store, 30, now=now)
    assert r.tweet_ids == {"3001"}
    everything = everything_stored(store)
    assert "old complaint" not in everything and "fresh complaint" in everything


def test_record_of_use_exports_the_log(store, monkeypatch, tmp_path):
    _fill(store)
    erase_author(store, "bob_b", actor="admin", key=b"k" * 32)
    doc = record_of_use(store)
    assert doc["compliance_log"][0]["source"] == "erase" and doc["tickets"] == {"with_content": 3, "tombstones": 1}
    monkeypatch.setenv("TWEETDESK_DATABASE_URL", store.url)
    monkeypatch.setenv("TWEETDESK_WORK_DIR", str(tmp_path / "work"))
    assert main(["x-records", "--out", str(tmp_path / "audit.json")]) == 0
    assert json.loads((tmp_path / "audit.json").read_text())["compliance_log"][0]["action"] == "remove"


def test_bad_every_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TWEETDESK_WORK_DIR", str(tmp_path))
    assert main(["compliance", "--every", "often"]) == 1
    assert "give a duration" in capsys.readouterr().err


# --- the web: the tracking page says so; erasure through the admin API ------------------------------------
ADMIN_KEY = "s3cret-admin-key-for-the-compliance-tests"


def _web(tmp_path, store):
    from tweetdesk.app import create_app
    from tweetdesk.config import Settings

    app = create_app(Settings(work_dir=tmp_path, api_key=ADMIN_KEY), store)
    app.config["TESTING"] = True
    return app.test_client()


def test_tracking_page_says_the_content_was_removed(sqlite_store, tmp_path):
    a, b, *_ = _fill(sqlite_store)
    erase_author(sqlite_store, "jane_doe", actor="test", key=b"k" * 32)
    client = _web(tmp_path, sqlite_store)
    page = client.get(f"/t/{a.ticket_id}").get_data(as_text=True)
    assert 'id="ticket-removed"' in page and "removed: erased on request" in page
    assert 'id="ticket-removed"' not in client.get(f"/t/{b.ticket_id}").get_data(as_text=True)


def test_erase_api_is_admin_only_and_uses_the_same_path(sqlite_store, tmp_path):
    from tweetdesk.config import Settings
    from tweetdesk.desk.core import Desk

    _fill(sqlite_store)
    client = _web(tmp_path, sqlite_store)
    pw = Desk(sqlite_store, Settings(work_dir=tmp_path, api_key=ADMIN_KEY)).accounts.add("ann", "agent", actor="t")[1]
    tok = client.post("/api/tokens", json={"name": "ann", "password": pw, "label": "t"}).get_json()["token"]
    agent = {"Authorization": f"Bearer {tok}"}
    assert client.post("/api/erase", json={"author": "bob_b"}, headers=agent).status_code == 403
    assert client.post("/api/erase", json={"author": "bob_b"}).status_code == 401
    assert client.post("/api/erase", json={"author": "not a handle!"},
                       headers={"X-API-Key": ADMIN_KEY}).status_code == 400
    r = client.post("/api/erase", json={"author": "@bob_b"}, headers={"X-API-Key": ADMIN_KEY})
    assert r.status_code == 200 and r.get_json() == {"posts_removed": 1, "tickets_removed": 1}
    assert "bob_b" not in everything_stored(sqlite_store).replace('"erase"', "")
    assert "post" in client.get("/api/openapi.json").get_json()["paths"]["/api/erase"]


def test_unreachable_x_is_one_line_and_retention_runs_from_the_cli(store, monkeypatch, tmp_path, capsys):
    store.add_tickets([enriched_tweet("4001", text="@united an ancient complaint"),  # created 2015
                       enriched_tweet("4002", text="@united a fresh one", created_at=datetime.now(timezone.utc))])
    monkeypatch.setenv("TWEETDESK_DATABASE_URL", store.url)
    monkeypatch.setenv("TWEETDESK_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("TWEETDESK_X_API_BASE", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("TWEETDESK_X_BEARER_TOKEN", "app")
    monkeypatch.setenv("TWEETDESK_RETENTION_DAYS", "30")
    assert main(["compliance"]) == 1
    out, err = capsys.readouterr()
    assert "retention: 1 posts older than 30 days purged" in out
    assert err.startswith("tweetdesk: error: cannot reach X") and "Traceback" not in err
    assert "ancient complaint" not in everything_stored(store) and "a fresh one" in everything_stored(store)
