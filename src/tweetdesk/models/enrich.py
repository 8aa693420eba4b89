"""Tweets in, enriched tweets out: cleaning, both LSTMs, entities, ticket ID.

``enrich_batch`` is the stream job's enricher (``stream.transform.Enricher``), called inside
``mapInPandas``: importing this module loads nothing (models load on the first call, once per process,
and are cached), and the function is a plain module-level function, so it pickles by reference. Its
``warm(settings)`` hook loads the models ahead of the first micro-batch. ``classify_texts`` is the same
work for texts that need not be valid tweets (``tweetdesk classify``, in ``classify.py``).

Unclassifiable: a tweet with no words left after cleaning (only mentions, links, numbers, punctuation)
gets sentiment and topic ``records.UNCLASSIFIABLE`` with score 0.0, and still a ticket (prefix GEN).
In ``classify --file``, a row whose text is missing, empty or not a string gets the same result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tweetdesk.config import Settings
from tweetdesk.records import UNCLASSIFIABLE, EnrichedTweet, Entity, Tweet, utcnow


@dataclass
class Classified:
    """One classification result, for tweets that need not be valid ``Tweet`` records (CLI input)."""

    tweet_id: str
    text: object
    clean_text: str = ""
    sentiment: str = UNCLASSIFIABLE
    sentiment_score: float = 0.0
    topic: str = UNCLASSIFIABLE
    topic_score: float = 0.0
    entities: list[Entity] = field(default_factory=list)
    ticket_id: str = ""
    # X's rules: would this tweet get an automatic reply under the configured our_handles (it @mentions one)?
    summoned: bool = False

    def to_json(self) -> dict:
        return {
            "tweet_id": self.tweet_id,
            "text": self.text,
            "sentiment": self.sentiment,
            "sentiment_score": round(self.sentiment_score, 4),
            "topic": self.topic,
            "topic_score": round(self.topic_score, 4),
            "entities": [e.model_dump(exclude_none=True) for e in self.entities],
            "ticket_id": self.ticket_id,
            "summoned": self.summoned,
        }


def classify_texts(ids: list[str], texts: list[object], settings: Settings) -> tuple[list[Classified], str]:
    """Core shared by enrich_batch and ``tweetdesk classify``: non-text or blank texts come back
    unclassifiable. Returns the results in order and the model version."""
    from tweetdesk.models.predict import get_classifier
    from tweetdesk.nlp.clean import clean_many
    from tweetdesk.nlp.entities import get_extractor
    from tweetdesk.secret_key import ticket_key
    from tweetdesk.tickets.ids import ticket_id_for

    models = settings.models
    key = ticket_key(settings)
    clf = get_classifier(models)
    out = [Classified(tweet_id=i, text=t) for i, t in zip(ids, texts, strict=True)]
    good = [k for k, t in enumerate(texts) if isinstance(t, str) and t.strip()]
    if good:
        good_texts = [texts[k] for k in good]
        cleaned = clean_many(good_texts)
        preds = clf.predict_cleaned(cleaned, batch_size=models.inference_batch_size)
        entities = get_extractor(models).extract_many(good_texts)
        for k, c, p, ents in zip(good, cleaned, preds, entities, strict=True):
            r = out[k]
            r.clean_text = c.text
            r.sentiment, r.sentiment_score, r.topic, r.topic_score = p.sentiment, p.sentiment_score, p.topic, p.topic_score
            r.entities = list(ents)
    for r in out:
        r.ticket_id = ticket_id_for(r.tweet_id, r.topic, key=key)
    return out, clf.version


def enrich_batch(tweets: list[Tweet], settings: Settings) -> list[EnrichedTweet]:
    """Classify a batch of tweets; one EnrichedTweet per tweet, in order. Never fails on a tweet's text.
    ``settings`` name the model version and the ticket-ID key (the stream job passes its own)."""
    if not tweets:
        return []
    results, version = classify_texts([t.id for t in tweets], [t.text for t in tweets], settings)
    now = utcnow()
    return [
        EnrichedTweet(
            **t.model_dump(),
            clean_text=r.clean_text,
            sentiment=r.sentiment,
            sentiment_score=min(max(r.sentiment_score, 0.0), 1.0),
            topic=r.topic,
            topic_score=min(max(r.topic_score, 0.0), 1.0),
            entities=r.entities,
            ticket_id=r.ticket_id,
            model_version=version,
            processed_at=now,
        )
        for t, r in zip(tweets, results)
    ]


def warm(settings: Settings) -> None:
    """Load what ``enrich_batch`` uses (both models, the entity pipeline and its tables) in this process now.
    The stream job calls it in every Python worker before the first micro-batch."""
    from tweetdesk.models.predict import get_classifier
    from tweetdesk.nlp.entities import get_extractor

    get_classifier(settings.models)
    get_extractor(settings.models)


# The stream job's hook (stream.transform.Enricher): an enricher without one starts cold.
enrich_batch.warm = warm
