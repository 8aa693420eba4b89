"""Ticket IDs: ``PFX-BODYBODY-C``, e.g. ``BAG-7KQ4M2XZ-H``.

* ``PFX``  three letters naming the topic (see ``TOPIC_PREFIX``), so an agent knows the queue at a glance.
* ``BODY`` eight characters from a 32-symbol alphabet without the look-alikes 0/O and 1/I, taken from
  BLAKE2b of the tweet id **keyed with the deployment's secret** (``tweetdesk.secret_key.ticket_key``): the
  same tweet always gets the same ticket across replays and restarts, and nobody without the secret can
  compute a ticket ID from a public tweet id. 32^8 ≈ 1.1e12 values per prefix, so collisions are negligible
  at help-desk volumes (the store still keeps the tweet id unique). The store keeps each ID as issued and
  never recomputes one (tickets opened before the IDs were keyed keep their unkeyed IDs).
* ``C``    a check character, Luhn mod 32 over prefix+body: detects every single mistyped character and
  every swap of two adjacent characters but one (``2Z`` ↔ ``Z2``, the first and last symbols: Luhn mod N's
  known blind spot).

Input is forgiving about case, spaces and missing dashes; it is strict about the check character.
"""

from __future__ import annotations

import hashlib
import re

from tweetdesk.errors import InputError
from tweetdesk.records import NOT_INFERRED, TOPICS, UNCLASSIFIABLE

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # 32 symbols: no 0, 1, I, O
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
BODY_LEN = 8

TOPIC_PREFIX: dict[str, str] = {
    "Baggage Issue": "BAG",
    "Customer Experience": "CXP",
    "Delay and Customer Service": "DLY",
    "Extra Charges": "CHG",
    "Online Booking": "BKG",
    "Reschedule and Refund": "RFD",
    "Reservation Issue": "RSV",
    "Seating Preferences": "SEA",
    UNCLASSIFIABLE: "GEN",
    NOT_INFERRED: "LNG",  # a language the models do not read: the desk's language queue
}
PREFIX_TOPIC = {v: k for k, v in TOPIC_PREFIX.items()}
assert set(TOPICS) <= set(TOPIC_PREFIX)
assert all(c in _INDEX for p in TOPIC_PREFIX.values() for c in p)

_SHAPE = re.compile(r"([A-Z]{3})([%s]{%d})([%s])" % (ALPHABET, BODY_LEN, ALPHABET))  # fullmatch, never "$"


class TicketIdError(InputError):
    """A string that is not a valid ticket ID; ``kind`` says why (format | prefix | check)."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def check_char(payload: str) -> str:
    """Luhn mod N (N=32) check character for ``payload`` (characters of ALPHABET)."""
    factor, total = 2, 0
    for ch in reversed(payload):
        addend = factor * _INDEX[ch]
        factor = 1 if factor == 2 else 2
        total += addend // 32 + addend % 32
    return ALPHABET[(32 - total % 32) % 32]


def _body(tweet_id: str, key: bytes) -> str:
    digest = hashlib.blake2b(tweet_id.encode(), digest_size=8, key=key, person=b"tweetdesk-tk").digest()
    n = int.from_bytes(digest, "big")
    out = []
    for _ in range(BODY_LEN):
        n, r = divmod(n, 32)
        out.append(ALPHABET[r])
    return "".join(out)


def ticket_id_for(tweet_id: str, topic: str, *, key: bytes) -> str:
    """The ticket ID of a tweet. ``key``: ``tweetdesk.secret_key.ticket_key(settings)`` (1–64 bytes)."""
    if not key:
        raise ValueError("ticket IDs need a key (tweetdesk.secret_key.ticket_key)")
    prefix = TOPIC_PREFIX.get(topic, TOPIC_PREFIX[UNCLASSIFIABLE])
    body = _body(str(tweet_id), key)
    return f"{prefix}-{body}-{check_char(prefix + body)}"


def parse_ticket_id(raw: str) -> str:
    """Return the canonical form of ``raw`` or raise TicketIdError saying what is wrong."""
    compact = re.sub(r"[\s\-_]", "", str(raw)).upper()
    m = _SHAPE.fullmatch(compact)
    if not m:
        bad = sorted({c for c in compact[3:] if c not in _INDEX})
        hint = f" (characters {', '.join(bad)} never appear in ticket IDs)" if bad else ""
        raise TicketIdError(
            f"'{raw}' is not a ticket ID: expected the form BAG-7KQ4M2XZ-H{hint}", kind="format"
        )
    prefix, body, check = m.groups()
    if prefix not in PREFIX_TOPIC:
        raise TicketIdError(f"'{raw}' has an unknown topic prefix '{prefix}'", kind="prefix")
    if check_char(prefix + body) != check:
        raise TicketIdError(
            f"'{raw}' fails its check character: a character was probably mistyped", kind="check"
        )
    return f"{prefix}-{body}-{check}"


def topic_of(ticket_id: str) -> str:
    return PREFIX_TOPIC[parse_ticket_id(ticket_id)[:3]]


# A ticket ID as a customer may quote it in a message: dashes optional, any case, whole word.
_QUOTED = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{3})[-\s]?([%s]{%d})[-\s]?([%s])(?![A-Za-z0-9])"
                     % (ALPHABET + ALPHABET.lower(), BODY_LEN, ALPHABET + ALPHABET.lower()))


def quoted_ticket_ids(text: str) -> list[str]:
    """The valid ticket IDs a message quotes, canonical, in order, each once ("my ticket is bag-7kq4m2xz-h")."""
    found: list[str] = []
    for m in _QUOTED.finditer(text or ""):
        try:
            tid = parse_ticket_id("".join(m.groups()))
        except TicketIdError:
            continue
        if tid not in found:
            found.append(tid)
    return found
