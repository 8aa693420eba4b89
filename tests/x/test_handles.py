"""Spoofed handles and forged log lines (issue 12 item 8): X's user-name rule at ingest (anything else is
dead-lettered with the reason), user values logged with %r, and user text isolated with <bdi> on the pages."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError

from tests.fixtures.browser import seed_store
from tests.fixtures.store import enriched_tweet
from tweetdesk.config import Settings
from tweetdesk.ingest.replay import read_records
from tweetdesk.records import DeadLetter, Tweet
from tweetdesk.stream.transform import parse_record

SPOOFS = {
    "full-width copy of our handle": "ｔｗｅｅｔｄｅｓｋ",
    "right-to-left override": "kay\u202eb_yak",
    "zero-width space": "tweet\u200bdesk",
    "line break (a forged log line)": "kay_b\n2026-11-27 12:00:00 INFO tweetdesk: all replies posted",
    "longer than 15": "a_very_long_handle",
    "space": "kay b",
    "empty after '@'": "@",
}


def _tweet(author: str, i: int = 1) -> dict:
    return {"id": str(1899000000000000000 + i), "text": "@united my bag is lost", "author": author,
            "created_at": "2026-11-25T10:00:00Z"}


@pytest.mark.parametrize("author", SPOOFS.values(), ids=SPOOFS.keys())
def test_records_refuse_what_x_would_not_call_a_user_name(author):
    with pytest.raises(ValidationError, match="not an X user name"):
        Tweet.model_validate(_tweet(author))


def test_real_handles_pass():
    for author in ("kay_b", "@United", "A", "x" * 15, "_1_"):
        assert Tweet.model_validate(_tweet(author)).author == author.removeprefix("@")


def test_replay_dead_letters_spoofed_handles_with_the_reason(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(_tweet(a, i)) for i, a in enumerate(["kay_b", *SPOOFS.values()])) + "\n",
                    encoding="utf-8")
    records = list(read_records(path))
    assert isinstance(records[0], Tweet)
    dead = records[1:]
    assert len(dead) == len(SPOOFS) and all(isinstance(d, DeadLetter) for d in dead)
    assert all("author" in d.reason and "not an X user name" in d.reason for d in dead)
    assert all("\n" not in d.reason and "\u202e" not in d.reason and "\u200b" not in d.reason for d in dead)


def test_the_stream_job_dead_letters_them_too():
    for author in SPOOFS.values():
        stage, reason = parse_record(json.dumps(_tweet(author)).encode(), 25_000)
        assert stage == "validate" and "not an X user name" in reason


def test_user_values_never_start_a_log_line(tmp_path, sqlite_store, caplog):
    """An agent's reply text and a resolve note with line breaks are logged on one line each."""
    from tweetdesk.app import create_app
    from tweetdesk.reply.poster import Poster
    from tweetdesk.tickets.intake import Intake

    key = "handles-test-admin-key-long-enough-for-rules"
    settings = Settings(work_dir=tmp_path, api_key=key)
    tw = enriched_tweet("6001")
    sqlite_store.add_tickets([tw], intake=Intake.from_settings(settings))  # it mentions @united: ours (conftest)
    client = create_app(settings, sqlite_store).test_client()
    forged = "\n2026-11-27 12:00:00,000 INFO poster: posted reply 1 (ticket X): all good"
    caplog.set_level(logging.INFO)
    r = client.post("/api/replies", headers={"X-API-Key": key}, json={"tweet_id": tw.id, "text": "@jane_doe hi" + forged})
    assert r.status_code == 202, r.get_json()
    Poster(settings, sqlite_store).deliver([r.get_json()["id"]])
    client.post(f"/api/tickets/{tw.ticket_id}/resolve", headers={"X-API-Key": key}, json={"note": "done" + forged})
    messages = [rec.getMessage() for rec in caplog.records]
    assert any("DRY-RUN reply" in m for m in messages) and any("resolved" in m for m in messages)
    assert not any("\n" in m for m in messages), [m for m in messages if "\n" in m]


def test_pages_isolate_user_text_with_bdi(tmp_path, sqlite_store):
    from tests.fixtures.browser import make_tweet
    from tweetdesk.app import create_app

    seed_store(sqlite_store, n=3)
    rtl = make_tweet(50, text="@united \u202eevil reversed text")
    sqlite_store.add_tickets([rtl], reply_text=lambda t: f"@{t.author} sorry. Ticket {t.ticket_id}")
    key = "handles-test-admin-key-long-enough-for-rules"
    c = create_app(Settings(work_dir=tmp_path, api_key=key), sqlite_store).test_client()
    dash = c.get("/", headers={"X-API-Key": key}).get_data(as_text=True)
    assert f"@<bdi>{rtl.author}</bdi>" in dash and "<bdi>@united \u202eevil reversed text</bdi>" in dash
    agent = c.get(f"/tickets/{rtl.ticket_id}", headers={"X-API-Key": key}).get_data(as_text=True)
    assert f"@<bdi>{rtl.author}</bdi>" in agent and "<bdi>@united \u202eevil reversed text</bdi>" in agent
    summary = c.get("/web/api/summary", headers={"X-API-Key": key}).get_json()
    assert "<bdi>@united \u202eevil reversed text</bdi>" in summary["newest_html"]
