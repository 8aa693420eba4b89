"""The X API stand-in speaks X's Direct Message contract (tests/fixtures/xdm.py) through tweepy, as the DM source
and the DM sender call it: pages newest first, X's rate limits and send caps, DMs only to users who DMed us,
and the Activity API's signed push and CRC. The contract the DM tests on both sides rely on."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests
import tweepy
from pydantic import SecretStr

from tests.fixtures.clock import FakeClock
from tests.fixtures.xapi import ACCOUNT_HANDLE, ACCOUNT_ID, Answer, XApiStandIn
from tests.fixtures.xdm import DM_NOT_ALLOWED, LOOKUP_LIMIT, SEND_DAY_LIMIT, SEND_LIMIT, conversation_id, signature
from tweetdesk.config import Settings
from tweetdesk.reply.poster import make_x_client

FIELDS = ["id", "text", "event_type", "created_at", "dm_conversation_id", "sender_id"]


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def x(clocked_xapi):
    return clocked_xapi


def client(tmp_path, x):
    return make_x_client(Settings(
        work_dir=tmp_path, x_api_base=x.base_url, x_consumer_key=SecretStr("ck"), x_consumer_secret=SecretStr("cs"),
        x_access_token=SecretStr("at"), x_access_token_secret=SecretStr("ats")))


def events(c, **kw) -> requests.Response:
    c.return_type = requests.Response
    return c.get_direct_message_events(user_auth=True, **kw)


def test_dm_events_come_newest_first_in_pages_with_the_fields_and_senders_asked_for(tmp_path, x):
    c = client(tmp_path, x)
    ids = [x.add_dm(f"my booking ref is ABC12{i}", author=f"cust{i % 3}") for i in range(7)]
    first = events(c, max_results=5, dm_event_fields=FIELDS, expansions=["sender_id"], user_fields=["username"]).json()
    assert [e["id"] for e in first["data"]] == ids[::-1][:5]
    e = first["data"][0]
    assert set(e) == set(FIELDS) and e["event_type"] == "MessageCreate" and e["text"] == "my booking ref is ABC126"
    assert e["dm_conversation_id"] == conversation_id(ACCOUNT_ID, e["sender_id"])
    assert {u["username"] for u in first["includes"]["users"]} == {"cust0", "cust1", "cust2"}
    token = first["meta"]["next_token"]
    assert len(token) >= 16  # X's pagination tokens are base32, at least 16 characters
    second = events(c, max_results=5, pagination_token=token).json()
    assert [e["id"] for e in second["data"]] == ids[::-1][5:] and "next_token" not in second["meta"]
    assert set(second["data"][0]) == {"id", "event_type", "text"}  # X's default fields


def test_lookups_are_user_context_only_limited_to_15_per_15_minutes_and_30_days(tmp_path, x, clock):
    old = x.add_dm("a month ago", author="kay_b", created_at=clock.dt() - timedelta(days=31))
    x.add_dm("today", author="kay_b")
    assert requests.get(f"{x.base_url}/2/dm_events", headers={"Authorization": "Bearer app-token"}).status_code == 401
    c = client(tmp_path, x)
    assert [e["text"] for e in events(c).json()["data"]] == ["today"] and old  # 30 days of history
    for _ in range(LOOKUP_LIMIT - 1):
        assert events(c).status_code == 200
    c.wait_on_rate_limit = False
    with pytest.raises(tweepy.TooManyRequests) as e:
        events(c)
    assert int(e.value.response.headers["x-rate-limit-reset"]) == int(clock.t + 900)
    clock.t += 901
    assert events(c).status_code == 200
    with pytest.raises(tweepy.BadRequest, match="expansions"):
        events(c, expansions=["author_id"])


def test_a_dm_goes_only_to_a_user_who_dmed_us_and_lands_in_their_conversation(tmp_path, x):
    c = client(tmp_path, x)
    kay = x.user_id("kay_b")
    stranger = x.user_id("stranger")
    x.add_dm("DM us your confirmation number, they said. Here: ZX81QP", author="kay_b")
    with pytest.raises(tweepy.Forbidden) as e:
        c.create_direct_message(participant_id=stranger, text="Hello!", user_auth=True)
    assert DM_NOT_ALLOWED in e.value.api_messages
    sent = c.create_direct_message(participant_id=kay, text="Thanks, ticket BAG-7KQ4M2XZ-H is open.", user_auth=True)
    conv = "-".join(sorted([kay, ACCOUNT_ID], key=int))
    assert sent["data"]["dm_conversation_id"] == conv
    assert x.dm_sends() == [{"participant_id": kay, "text": "Thanks, ticket BAG-7KQ4M2XZ-H is open.",
                             "dm_event_id": sent["data"]["dm_event_id"], "dm_conversation_id": conv}]
    c.return_type = requests.Response
    convo = c.get_direct_message_events(participant_id=kay, dm_event_fields=FIELDS, user_auth=True).json()["data"]
    assert [m["sender_id"] for m in convo] == [ACCOUNT_ID, kay]  # newest first: our answer, then kay's DM
    with pytest.raises(tweepy.BadRequest):
        c.create_direct_message(participant_id=kay, text="", user_auth=True)


def test_sends_are_capped_per_15_minutes_and_per_day(tmp_path, x, clock):
    c = client(tmp_path, x)
    kay = x.user_id("kay_b")
    x.add_dm("hi", author="kay_b")
    x.dms.send_day.limit = SEND_LIMIT + 5  # X's 1,440 a day would take 96 windows to reach here
    for i in range(SEND_LIMIT):
        c.create_direct_message(participant_id=kay, text=f"update {i}", user_auth=True)
    with pytest.raises(tweepy.TooManyRequests) as e:
        c.create_direct_message(participant_id=kay, text="one too many", user_auth=True)
    h = e.value.response.headers
    assert h["x-rate-limit-limit"] == str(SEND_LIMIT) and h["x-rate-limit-remaining"] == "0"
    assert int(h["x-rate-limit-reset"]) == int(clock.t + 900)
    clock.t += 901
    for i in range(5):
        c.create_direct_message(participant_id=kay, text=f"later {i}", user_auth=True)
    clock.t += 901
    with pytest.raises(tweepy.TooManyRequests) as e:  # the 15 minutes are fresh, the day is not
        c.create_direct_message(participant_id=kay, text="past the day's cap", user_auth=True)
    h = e.value.response.headers
    assert h["x-user-limit-24hour-remaining"] == "0" and int(h["x-user-limit-24hour-reset"]) > clock.t
    assert len(x.dm_sends()) == SEND_LIMIT + 5
    clock.t += 86400
    c.create_direct_message(participant_id=kay, text="a new day", user_auth=True)
    assert SEND_DAY_LIMIT == 1440


def test_scripted_answers_come_first(tmp_path, x):
    c = client(tmp_path, x)
    kay = x.user_id("kay_b")
    x.add_dm("hi", author="kay_b")
    x.script_dm_sends(x.unavailable())
    with pytest.raises(tweepy.TwitterServerError):
        c.create_direct_message(participant_id=kay, text="hello", user_auth=True)
    x.script_dm_reads(x.malformed(b"{not json"), Answer(200, transform=lambda body: {**body, "data": "oops"}))
    assert events(c).content == b"{not json"
    assert events(c).json()["data"] == "oops"
    assert len(x.dm_requests("GET")) == 2 and len(x.dm_requests("POST")) == 1


def test_the_push_is_signed_like_x_and_the_crc_is_checked_like_x(x):
    eid = x.add_dm("my bag never arrived", author="kay_b")
    event = x.dms.activity_event(eid)
    d = event["data"]
    assert d["event_type"] == "dm.received" and d["filter"] == {"user_id": ACCOUNT_ID}
    m = d["payload"]["direct_message_events"][0]
    assert m["id"] == eid and m["message_create"]["target"]["recipient_id"] == ACCOUNT_ID
    assert m["message_create"]["message_data"]["text"] == "my bag never arrived"
    sender = m["message_create"]["sender_id"]
    assert d["payload"]["users"][sender]["data"]["username"] == "kay_b"
    assert d["payload"]["users"][ACCOUNT_ID]["data"]["username"] == ACCOUNT_HANDLE
    aaa = x.dms.account_activity_event(eid)
    assert aaa["for_user_id"] == ACCOUNT_ID and aaa["direct_message_events"] == [m]
    body = json.dumps(event).encode()
    # X's documented example values (webhooks quickstart): HMAC-SHA256 with the consumer secret, base64, "sha256=".
    assert signature("secret", b"challenge_string").startswith("sha256=") and len(signature("s", body)) == 51


def test_a_stand_in_on_the_real_clock_starts_with_empty_dms():
    server = XApiStandIn().start()
    try:
        assert server.dm_sends() == [] and server.dms.events == {}
    finally:
        server.stop()
