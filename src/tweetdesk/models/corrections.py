"""Agents' corrections as labelled examples: for ``tweetdesk train --corrections`` (added to the training
split, with their topic standing in for the LDA's weak label) and for ``tweetdesk evaluate`` (how often the
shipped models agree with the agents)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tweetdesk.records import NOT_INFERRED, TOPICS


def labelled_examples(store) -> list[dict[str, Any]]:
    """One labelled row per corrected ticket (its latest correction), in the data set's columns."""
    import sqlalchemy as sa

    from tweetdesk.tickets.schema import corrections

    latest: dict[str, dict[str, Any]] = {}
    with store.transaction() as conn:
        for c in conn.execute(sa.select(corrections).order_by(corrections.c.id)).mappings():
            latest[c["ticket_id"]] = dict(c)
    return [{"tweet_id": c["tweet_id"], "text": c["text"], "airline_sentiment": c["sentiment"], "topic": c["topic"],
             "airline_sentiment_confidence": 1.0, "model_topic": c["model_topic"],
             "model_sentiment": c["model_sentiment"], "by": c["by"], "at": c["at"]} for c in latest.values()]


def corrections_frame(settings) -> pd.DataFrame:
    """The corrections so far (latest per ticket) in the data set's columns, plus ``corrected_topic``."""
    from tweetdesk.tickets.store import TicketStore

    store = TicketStore.from_settings(settings)
    try:
        # A ticket in a language the models do not read (issue 30) teaches the English models nothing.
        rows = [r for r in labelled_examples(store) if r["model_sentiment"] != NOT_INFERRED]
    finally:
        store.close()
    df = pd.DataFrame(rows, columns=["tweet_id", "text", "airline_sentiment", "topic", "airline_sentiment_confidence"])
    df = df.rename(columns={"topic": "corrected_topic"})
    df["tweet_id"] = "desk-" + df["tweet_id"].astype(str)  # never taken for a data-set tweet id
    df["negativereason"] = np.nan
    df["airline"] = ""
    return df


# X's Developer Agreement forbids training ML models on X content (docs.x.com, Developer Guidelines): only
# tweets the operator has the right to train on may enter a training split — those replayed from a file (the
# shipped data set, the brand's own data). Tweets read from X (mentions, filtered stream), through the API, or
# of unknown origin are left out; their corrections still measure agreement (``agreement``).
TRAINABLE_SOURCES = frozenset({"replay"})
X_SOURCES = frozenset({"mentions", "x", "dms", "activity"})  # read from X: posts and direct messages


def trainable_corrections(settings, df: pd.DataFrame | None = None) -> tuple[pd.DataFrame, str]:
    """The corrections that may train a model, and one line saying what was used, left out and why."""
    import sqlalchemy as sa

    from tweetdesk.tickets.schema import rows_in, tweets_table
    from tweetdesk.tickets.store import TicketStore

    df = corrections_frame(settings) if df is None else df
    ids = [t.removeprefix("desk-") for t in df["tweet_id"].astype(str)]
    store = TicketStore.from_settings(settings)
    try:
        with store.transaction() as conn:
            source = dict(rows_in(conn, sa.select(tweets_table.c.tweet_id, tweets_table.c.source),
                                  tweets_table.c.tweet_id, ids))
    finally:
        store.close()
    origin = [source.get(i) for i in ids]
    ok = [o in TRAINABLE_SOURCES for o in origin]
    used = df[ok].reset_index(drop=True)
    from_x = sum(1 for o in origin if o in X_SOURCES)
    other = len(df) - len(used) - from_x
    line = (f"corrections: {len(used)} used (replayed from a file the operator may train on); {from_x} left out "
            f"(ingested from X: X's rules forbid training on X content)"
            + (f"; {other} left out (from the API or of unknown origin)" if other else "")
            + "; all of them still measure agreement (tweetdesk evaluate)")
    return used, line


def with_corrections(train: pd.DataFrame, corrections: pd.DataFrame) -> pd.DataFrame:
    """The training split with the corrected tweets added (a tweet also in the data set: the agent's labels win)."""
    if corrections.empty:
        return train
    known = set(corrections["text"].str.lower().str.strip())
    keep = train[~train["text"].str.lower().str.strip().isin(known)]
    return pd.concat([keep, corrections], ignore_index=True)


def corrected_weak_labels(train: pd.DataFrame, weak: tuple[list, np.ndarray]) -> tuple[list, np.ndarray]:
    """The LDA's weak topic labels of the training split, with each corrected tweet's topic at confidence 1."""
    labels, conf = list(weak[0]), np.array(weak[1], dtype=float)
    if "corrected_topic" in train.columns:
        for i, topic in enumerate(train["corrected_topic"].tolist()):
            if isinstance(topic, str) and topic in TOPICS:
                labels[i], conf[i] = topic, 1.0
    return labels, conf


def corrected_topic_targets(train: pd.DataFrame, targets: np.ndarray) -> np.ndarray:
    """Soft topic targets (rows of ``train``, columns in ``TOPICS`` order) with each corrected tweet's row one-hot
    on the agent's topic."""
    out = np.array(targets, dtype=float, copy=True)
    if "corrected_topic" in train.columns:
        for i, topic in enumerate(train["corrected_topic"].tolist()):
            if isinstance(topic, str) and topic in TOPICS:
                out[i] = 0.0
                out[i, TOPICS.index(topic)] = 1.0
    return out


def agreement(settings, reports_dir: Path | None = None) -> dict[str, Any]:
    """How often the shipped models agree with the agents' corrections (sentiment, topic); written to
    ``reports/corrections.json``."""
    from tweetdesk.models.predict import get_classifier
    from tweetdesk.nlp.clean import clean_many

    df = corrections_frame(settings)
    out: dict[str, Any] = {"corrections": len(df)}
    if df.empty:
        return out
    clf = get_classifier(settings)
    preds = clf.predict_cleaned(clean_many(df["text"].tolist()))
    s_ok = [p.sentiment == s for p, s in zip(preds, df["airline_sentiment"])]
    t_ok = [p.topic == t for p, t in zip(preds, df["corrected_topic"])]
    out.update({
        "model_version": clf.folder.name,
        "sentiment_agreement": float(np.mean(s_ok)),
        "topic_agreement": float(np.mean(t_ok)),
        "both_agree": float(np.mean([a and b for a, b in zip(s_ok, t_ok)])),
    })
    folder = Path(reports_dir or settings.reports_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corrections.json").write_text(json.dumps(out, indent=1), encoding="utf-8")
    return out


__all__ = ["agreement", "corrected_weak_labels", "corrections_frame", "trainable_corrections", "with_corrections"]
