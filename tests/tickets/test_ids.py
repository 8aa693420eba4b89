"""Ticket IDs: deterministic, readable, and every single typo or neighbour swap is caught."""

from __future__ import annotations

import random

import pytest

from tweetdesk.records import TOPICS, UNCLASSIFIABLE
from tweetdesk.tickets.ids import ALPHABET, TOPIC_PREFIX, TicketIdError, parse_ticket_id, ticket_id_for, topic_of

K = b"k" * 32


def test_same_tweet_same_ticket_and_shape():
    a = ticket_id_for("570306133677760513", "Baggage Issue", key=K)
    assert a == ticket_id_for("570306133677760513", "Baggage Issue", key=K)
    assert a.startswith("BAG-") and len(a) == 3 + 1 + 8 + 1 + 1
    assert ticket_id_for("570306133677760514", "Baggage Issue", key=K) != a
    assert not set(a.replace("-", "")) & set("01IO")


@pytest.mark.parametrize("topic", [*TOPICS, UNCLASSIFIABLE])
def test_every_topic_has_a_prefix_and_round_trips(topic):
    tid = ticket_id_for("1234567890123456789", topic, key=K)
    assert tid[:3] == TOPIC_PREFIX[topic]
    assert parse_ticket_id(tid) == tid
    assert topic_of(tid) == topic


def test_parsing_forgives_case_spaces_and_missing_dashes():
    tid = ticket_id_for("42", "Extra Charges", key=K)
    assert parse_ticket_id(tid.lower()) == tid
    assert parse_ticket_id(tid.replace("-", "")) == tid
    assert parse_ticket_id(" " + tid.replace("-", " ") + " ") == tid


def test_every_single_character_substitution_is_detected():
    tid = ticket_id_for("570301130888122368", "Online Booking", key=K).replace("-", "")
    for i in range(3, len(tid)):  # body and check char (prefix changes are caught as prefix or check errors)
        for c in ALPHABET:
            if c == tid[i]:
                continue
            typo = tid[:i] + c + tid[i + 1:]
            with pytest.raises(TicketIdError) as e:
                parse_ticket_id(typo)
            assert e.value.kind == "check"


def test_adjacent_swaps_are_detected():
    rng = random.Random(7)
    for _ in range(200):
        tid = ticket_id_for(str(rng.randrange(10**18, 10**19)), rng.choice(TOPICS), key=K).replace("-", "")
        for i in range(3, len(tid) - 1):
            # Luhn mod N's one blind spot: swapping the alphabet's first and last symbols ('2' and 'Z').
            if tid[i] == tid[i + 1] or {tid[i], tid[i + 1]} == {ALPHABET[0], ALPHABET[-1]}:
                continue
            swapped = tid[:i] + tid[i + 1] + tid[i] + tid[i + 2:]
            with pytest.raises(TicketIdError):
                parse_ticket_id(swapped)


@pytest.mark.parametrize(
    "raw,kind",
    [("", "format"), ("BAG-123", "format"), ("BAG-0OIL1234-X", "format"), ("ZZZ-ABCDEFGH-J", "prefix"), (None, "format")],
)
def test_malformed_ids_say_why(raw, kind):
    with pytest.raises(TicketIdError) as e:
        parse_ticket_id(raw)
    assert e.value.kind == kind


def test_look_alike_characters_are_named_in_the_error():
    with pytest.raises(TicketIdError, match="never appear"):
        parse_ticket_id("BAG-0OIL2345-X")


def test_the_one_swap_luhn_mod_n_misses_is_2z():
    from tweetdesk.tickets.ids import check_char

    missed = {a + b for a in ALPHABET for b in ALPHABET
              if a != b and check_char("BAG2222" + a + b + "2") == check_char("BAG2222" + b + a + "2")}
    assert missed == {"2Z", "Z2"}


def test_no_collisions_in_a_large_sample():
    ids = {ticket_id_for(str(570000000000000000 + i), "Baggage Issue", key=K) for i in range(100_000)}
    assert len(ids) == 100_000


# --- keyed with the deployment's secret (issue 12 item 11) -------------------------------------------------------

def _unkeyed(tweet_id: str, topic: str) -> str:
    """The IDs issued before they were keyed: anyone could compute them from a public tweet id."""
    import hashlib

    from tweetdesk.tickets.ids import BODY_LEN, check_char

    n = int.from_bytes(hashlib.blake2b(tweet_id.encode(), digest_size=8, person=b"tweetdesk-tk").digest(), "big")
    body = ""
    for _ in range(BODY_LEN):
        n, r = divmod(n, 32)
        body += ALPHABET[r]
    prefix = TOPIC_PREFIX[topic]
    return f"{prefix}-{body}-{check_char(prefix + body)}"


def test_a_public_tweet_id_does_not_give_its_ticket_id(tmp_path):
    from tweetdesk.config import Settings
    from tweetdesk.secret_key import ticket_key

    a = Settings(work_dir=tmp_path, secret_key="a" * 32)
    b = Settings(work_dir=tmp_path, secret_key="b" * 32)
    tid = ticket_id_for("570306133677760513", "Baggage Issue", key=ticket_key(a))
    assert tid == ticket_id_for("570306133677760513", "Baggage Issue", key=ticket_key(a))  # stable
    assert tid != ticket_id_for("570306133677760513", "Baggage Issue", key=ticket_key(b))
    assert tid != _unkeyed("570306133677760513", "Baggage Issue")
    assert parse_ticket_id(tid) == tid  # the check character scheme is unchanged
    with pytest.raises(ValueError):
        ticket_id_for("1", "Baggage Issue", key=b"")


def test_enrich_issues_ids_keyed_with_the_secret(tmp_path):
    from datetime import datetime, timezone

    from tweetdesk.config import Settings
    from tweetdesk.models.enrich import enrich_batch
    from tweetdesk.records import Tweet
    from tweetdesk.secret_key import ticket_key

    tw = Tweet(id="1899000000000000001", text="@united lost my bag at ORD", author="kay_b",
               created_at=datetime(2026, 11, 25, tzinfo=timezone.utc))
    s1 = Settings(work_dir=tmp_path / "a")
    (e1,) = enrich_batch([tw], s1)
    assert e1.ticket_id == ticket_id_for(tw.id, e1.topic, key=ticket_key(s1))  # the work dir's key file
    assert enrich_batch([tw], Settings(work_dir=tmp_path / "a"))[0].ticket_id == e1.ticket_id
    assert enrich_batch([tw], Settings(work_dir=tmp_path / "b"))[0].ticket_id != e1.ticket_id
    assert e1.ticket_id != _unkeyed(tw.id, e1.topic)


def test_the_stream_job_ships_the_secret_to_its_workers(tmp_path):
    import pickle

    from tweetdesk.config import Settings
    from tweetdesk.secret_key import ticket_key
    from tweetdesk.stream.job import StreamJob

    settings = Settings(work_dir=tmp_path, kafka_bootstrap="127.0.0.1:9")
    job = StreamJob(settings)
    shipped = pickle.loads(pickle.dumps(job.settings))
    assert shipped.secret_key.get_secret_value() == (tmp_path / "secret_key").read_text().strip()
    # A worker elsewhere (another work dir, no key file) computes the driver's IDs.
    far = shipped.model_copy(update={"work_dir": tmp_path / "elsewhere"})
    assert ticket_key(far) == ticket_key(settings) and not (tmp_path / "elsewhere").exists()


def test_tickets_keep_the_ids_they_were_opened_with(sqlite_store):
    """Tickets opened before the IDs were keyed keep their IDs: a replayed tweet, now carrying a keyed ID, is a
    duplicate, and a follow-up joins the old ticket."""
    from tests.fixtures.store import enriched_tweet

    legacy = enriched_tweet("5001").model_copy(update={"ticket_id": _unkeyed("5001", "Baggage Issue")})
    assert sqlite_store.add_tickets([legacy]).created == [legacy.ticket_id]
    replay = enriched_tweet("5001")  # the same tweet through the keyed stream
    assert replay.ticket_id != legacy.ticket_id
    r = sqlite_store.add_tickets([replay])
    assert r.created == [] and r.duplicates == ["5001"]
    follow = enriched_tweet("5002", in_reply_to_tweet_id="5001", conversation_id="5001")
    assert sqlite_store.add_tickets([follow]).threaded == ["5002"]
    t = sqlite_store.get_ticket(legacy.ticket_id)
    assert t is not None and t.message_count == 2 and sqlite_store.get_ticket(replay.ticket_id) is None
