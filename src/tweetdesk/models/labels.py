"""Label sets, and the table that turns the data set's human ``negativereason`` into our topics.

``negativereason`` is the topic yardstick on the validation and test splits, which never train anything. The
training split's reasons are one of the topic targets' sources when ``train.TOPIC_HUMAN_LABELS`` is on
(``distil.human_topic_targets``; the model card says which way a version was trained).

How topic macro-F1 is computed (``topic_agreement``):
* Gold: the test split's negative tweets whose ``negativereason`` is in ``NEGATIVEREASON_TO_TOPIC``
  ("Can't Tell" and empty reasons are excluded), mapped by that table.
* The eight topic names collapse to the five that have a human counterpart (``EVAL_COLLAPSE``):
  the human label "Flight Booking Problems" covers both "Online Booking" and "Reservation Issue",
  so either prediction counts for it. "Extra Charges" and "Seating Preferences" have no human
  counterpart: predicting them for a gold tweet is simply a miss.
* Macro-F1 = the unweighted mean of per-class F1 over the five ``EVAL_LABELS`` (scikit-learn
  ``f1_score(labels=EVAL_LABELS, average="macro")``); predictions outside them count as misses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from tweetdesk.records import SENTIMENTS, TOPICS

# human negativereason -> one of records.TOPICS
NEGATIVEREASON_TO_TOPIC: dict[str, str] = {
    "Lost Luggage": "Baggage Issue",
    "Damaged Luggage": "Baggage Issue",
    "Late Flight": "Delay and Customer Service",
    "Customer Service Issue": "Delay and Customer Service",
    "Cancelled Flight": "Reschedule and Refund",
    "Flight Booking Problems": "Online Booking",  # evaluated as "Online Booking / Reservation"
    "Bad Flight": "Customer Experience",
    "Flight Attendant Complaints": "Customer Experience",
    "longlines": "Customer Experience",
}
EXCLUDED_REASONS = frozenset({"Can't Tell"})

BOOKING_OR_RESERVATION = "Online Booking / Reservation"
EVAL_COLLAPSE: dict[str, str] = {"Online Booking": BOOKING_OR_RESERVATION, "Reservation Issue": BOOKING_OR_RESERVATION}
EVAL_LABELS: tuple[str, ...] = (
    "Baggage Issue",
    "Customer Experience",
    "Delay and Customer Service",
    BOOKING_OR_RESERVATION,
    "Reschedule and Refund",
)

SENTIMENT_INDEX = {s: i for i, s in enumerate(SENTIMENTS)}
TOPIC_INDEX = {t: i for i, t in enumerate(TOPICS)}
assert set(NEGATIVEREASON_TO_TOPIC.values()) <= set(TOPICS)


def eval_label(topic: str) -> str:
    return EVAL_COLLAPSE.get(topic, topic)


# Indices into records.TOPICS of the topics no human reason names (Extra Charges, Seating Preferences): targets
# built from the reasons leave a tweet's mass on them as it was.
UNCOVERED_TOPIC_IDS: tuple[int, ...] = tuple(i for i, t in enumerate(TOPICS) if eval_label(t) not in EVAL_LABELS)


# Topics that are kinds of one complaint: the human reasons call both "Flight Booking Problems". A model torn between
# them still knows what the complaint is about, so a version whose manifest lists these families decides the
# family first (``decide_topics``).
TOPIC_FAMILIES: tuple[tuple[str, ...], ...] = (("Online Booking", "Reservation Issue"),)


def decide_topics(probs: np.ndarray, labels: Sequence[str], families: Sequence[Sequence[str]] = ()) -> np.ndarray:
    """The index of each row's topic: the family (a lone topic is a family of one) with the most probability, then
    its most probable member. Without families this is the argmax.

    Why: with 0.40 on Delay and Customer Service and 0.30 + 0.28 on the two booking topics the tweet is about a
    booking, which the argmax would not say."""
    probs = np.asarray(probs)
    index = {label: i for i, label in enumerate(labels)}
    grouped = [[index[t] for t in f if t in index] for f in families]
    grouped = [g for g in grouped if len(g) > 1]
    if not grouped or len(probs) == 0:
        return probs.argmax(1)
    in_family = {i for g in grouped for i in g}
    groups = grouped + [[i] for i in range(probs.shape[1]) if i not in in_family]
    mass = np.stack([probs[:, g].sum(1) for g in groups], axis=1)
    members = np.stack([np.asarray(g)[probs[:, g].argmax(1)] for g in groups], axis=1)
    return members[np.arange(len(probs)), mass.argmax(1)]


def map_negativereason(reason: object) -> str | None:
    """The topic for a human reason, or None when it has none (empty, "Can't Tell", unknown)."""
    if not isinstance(reason, str) or reason in EXCLUDED_REASONS:
        return None
    return NEGATIVEREASON_TO_TOPIC.get(reason.strip())


def topic_agreement(reasons: Iterable[object], predicted: Sequence[str]) -> dict:
    """Macro-F1 (and accuracy, per-class F1, n) of predicted topics against mapped negativereason."""
    from sklearn.metrics import accuracy_score, f1_score

    gold, pred = [], []
    for reason, p in zip(reasons, predicted, strict=True):
        g = map_negativereason(reason)
        if g is not None:
            gold.append(eval_label(g))
            pred.append(eval_label(p))
    if not gold:
        return {"n": 0, "macro_f1": None, "accuracy": None, "per_class_f1": {}}
    per = f1_score(gold, pred, labels=list(EVAL_LABELS), average=None, zero_division=0)
    return {
        "n": len(gold),
        "macro_f1": _macro_f1(gold, pred),
        "accuracy": float(accuracy_score(gold, pred)),
        "per_class_f1": {label: float(f) for label, f in zip(EVAL_LABELS, per)},
    }


def reason_f1(gold: Sequence[int], predicted: Sequence[int]) -> float:
    """``topic_agreement``'s macro-F1 for topic indices whose gold side is already a mapped reason."""
    return _macro_f1([eval_label(TOPICS[g]) for g in gold], [eval_label(TOPICS[p]) for p in predicted])


def _macro_f1(gold: Sequence[str], pred: Sequence[str]) -> float:
    """Macro-F1 over the five ``EVAL_LABELS`` (gold and predictions already through ``eval_label``)."""
    from sklearn.metrics import f1_score

    return float(f1_score(gold, pred, labels=list(EVAL_LABELS), average="macro", zero_division=0))


def balance(labels: Iterable[str]) -> dict:
    """How evenly labels spread over the eight topics: counts, largest share, normalised entropy."""
    import math
    from collections import Counter

    counts = Counter(labels)
    n = sum(counts.values())
    shares = [counts.get(t, 0) / n for t in TOPICS] if n else [0.0] * len(TOPICS)
    entropy = -sum(p * math.log(p) for p in shares if p > 0) / math.log(len(TOPICS))
    return {
        "n": n,
        "counts": {t: counts.get(t, 0) for t in TOPICS},
        "largest_share": max(shares),
        "smallest_count": min(counts.get(t, 0) for t in TOPICS),
        "normalised_entropy": entropy,
    }
