"""Agents' corrections as labelled examples: the rows `tweetdesk train --corrections` adds to the training
split, the weak topic labels they override, and the shipped models' agreement with them (real models)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from tests.fixtures.store import enriched_tweet
from tweetdesk.config import Settings
from tweetdesk.desk.accounts import bootstrap_admin
from tweetdesk.desk.core import Desk
from tweetdesk.models.corrections import agreement, corrected_weak_labels, corrections_frame, with_corrections
from tweetdesk.tickets.store import TicketStore


def _corrected(tmp_path):
    settings = Settings(work_dir=tmp_path, reports_dir=tmp_path / "reports")
    store = TicketStore.from_settings(settings)
    store.add_tickets([
        enriched_tweet("1", text="@united my bag is lost, nobody at the baggage desk in Denver knows where it is"),
        enriched_tweet("2", text="@united thank you so much for the upgrade, the crew was lovely", topic="Extra Charges"),
    ])
    desk = Desk(store, settings)
    admin = bootstrap_admin()
    t1, t2 = (store.get_ticket_by_tweet(i).ticket_id for i in ("1", "2"))
    desk.correct(t1, admin, topic="Baggage Issue", sentiment="negative")
    desk.correct(t2, admin, topic="Customer Experience", sentiment="positive")
    store.close()
    return settings


def test_corrections_become_training_rows(tmp_path):
    settings = _corrected(tmp_path)
    df = corrections_frame(settings)
    assert len(df) == 2 and set(df["corrected_topic"]) == {"Baggage Issue", "Customer Experience"}
    assert {"tweet_id", "text", "airline_sentiment", "airline_sentiment_confidence", "negativereason"} <= set(df.columns)
    train = pd.DataFrame({"tweet_id": ["9"], "text": ["@United Thank you so much for the upgrade, the crew was lovely"],
                          "airline_sentiment": ["neutral"], "airline_sentiment_confidence": [0.6]})
    merged = with_corrections(train, df)
    assert len(merged) == 2  # the data set's copy of a corrected tweet gives way to the agent's labels
    assert merged["airline_sentiment"].tolist() == ["negative", "positive"]
    labels, conf = corrected_weak_labels(merged, (["Online Booking", None], np.array([0.4, 0.0])))
    assert labels == ["Baggage Issue", "Customer Experience"] and conf.tolist() == [1.0, 1.0]


def test_evaluate_reports_agreement_with_the_corrections(tmp_path):
    settings = _corrected(tmp_path)
    got = agreement(settings)
    assert got["corrections"] == 2 and got["model_version"]
    for k in ("sentiment_agreement", "topic_agreement", "both_agree"):
        assert got[k] in (0.0, 0.5, 1.0)
    # The shipped sentiment models read these two plainly.
    assert got["sentiment_agreement"] == 1.0
    assert json.loads((tmp_path / "reports" / "corrections.json").read_text()) == got
    assert agreement(Settings(work_dir=tmp_path / "empty")) == {"corrections": 0}


def test_a_corrected_topic_is_the_students_target(tmp_path):
    from tweetdesk.models.corrections import corrected_topic_targets
    from tweetdesk.records import TOPICS

    df = corrections_frame(_corrected(tmp_path))
    train = pd.concat([pd.DataFrame({"text": ["late again"], "corrected_topic": [np.nan]}), df], ignore_index=True)
    soft = np.full((3, len(TOPICS)), 1 / len(TOPICS))
    out = corrected_topic_targets(train, soft)
    assert out[0].tolist() == soft[0].tolist()  # an uncorrected tweet keeps the teacher's target
    for row, topic in zip(out[1:], df["corrected_topic"]):
        assert row.argmax() == TOPICS.index(topic) and row.sum() == 1.0
    assert soft[1].max() < 1.0  # the input is left as it was


def test_corrections_of_tweets_from_x_never_enter_training(tmp_path):
    """X's rules forbid training on X content: a correction of a tweet ingested from X (mentions timeline,
    filtered stream) measures agreement but never joins a training split."""
    from tweetdesk.models.corrections import trainable_corrections

    settings = Settings(work_dir=tmp_path, reports_dir=tmp_path / "reports")
    store = TicketStore.from_settings(settings)
    store.add_tickets([
        enriched_tweet("11", text="@united my bag is lost in Denver", source="mentions"),
        enriched_tweet("12", text="@united the crew was lovely today", source="x", topic="Extra Charges"),
        enriched_tweet("13", text="@united my flight is late again", source="replay", topic="Flight Delay"),
    ])
    desk, admin = Desk(store, settings), bootstrap_admin()
    for i in ("11", "12", "13"):
        desk.correct(store.get_ticket_by_tweet(i).ticket_id, admin, topic="Customer Experience", sentiment="neutral")
    store.close()
    used, line = trainable_corrections(settings)
    assert used["text"].tolist() == ["@united my flight is late again"]
    assert line.startswith("corrections: 1 used") and "2 left out (ingested from X" in line
    assert len(corrections_frame(settings)) == 3  # all three still measure agreement
