"""Ticket IDs: deterministic, readable, and every single typo or neighbour swap is caught."""

from __future__ import annotations

import random

import pytest

from tweetdesk.records import TOPICS, UNCLASSIFIABLE
from tweetdesk.tickets.ids import ALPHABET, TOPIC_PREFIX, TicketIdError, parse_ticket_id, ticket_id_for, topic_of


def test_same_tweet_same_ticket_and_shape():
    a = ticket_id_for("570306133677760513", "Baggage Issue")
    assert a == ticket_id_for("570306133677760513", "Baggage Issue")
    assert a.startswith("BAG-") and len(a) == 3 + 1 + 8 + 1 + 1
    assert ticket_id_for("570306133677760514", "Baggage Issue") != a
    assert not set(a.replace("-", "")) & set("01IO")


@pytest.mark.parametrize("topic", [*TOPICS, UNCLASSIFIABLE])
def test_every_topic_has_a_prefix_and_round_trips(topic):
    tid = ticket_id_for("1234567890123456789", topic)
    assert tid[:3] == TOPIC_PREFIX[topic]
    assert parse_ticket_id(tid) == tid
    assert topic_of(tid) == topic


def test_parsing_forgives_case_spaces_and_missing_dashes():
    tid = ticket_id_for("42", "Extra Charges")
    assert parse_ticket_id(tid.lower()) == tid
    assert parse_ticket_id(tid.replace("-", "")) == tid
    assert parse_ticket_id(" " + tid.replace("-", " ") + " ") == tid


def test_every_single_character_substitution_is_detected():
    tid = ticket_id_for("570301130888122368", "Online Booking").replace("-", "")
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
        tid = ticket_id_for(str(rng.randrange(10**18, 10**19)), rng.choice(TOPICS)).replace("-", "")
        for i in range(3, len(tid) - 1):
            if tid[i] == tid[i + 1]:
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


def test_no_collisions_in_a_large_sample():
    ids = {ticket_id_for(str(570000000000000000 + i), "Baggage Issue") for i in range(100_000)}
    assert len(ids) == 100_000
