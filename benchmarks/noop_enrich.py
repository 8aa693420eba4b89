"""An enricher that skips the models (constant labels, no entities), for ``benchmarks/stream.py --enricher``:
what the stream costs outside the models."""

from __future__ import annotations

from tweetdesk.records import EnrichedTweet, utcnow


def enrich_batch(tweets, settings=None):
    now = utcnow()
    return [EnrichedTweet(**t.model_dump(), clean_text=t.text.lower(), sentiment="neutral", sentiment_score=1.0,
                          topic="Customer Experience", topic_score=1.0, entities=[], ticket_id=f"GEN-{t.id}",
                          model_version="noop", processed_at=now) for t in tweets]
