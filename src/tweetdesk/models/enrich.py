"""Tweets in, enriched tweets out: cleaning, both LSTMs, entities, ticket ID.

``enrich_batch`` is the stream job's enricher (``stream.transform.Enricher``), called inside
``mapInPandas``: importing this module loads nothing (models load on the first call, once per process,
and are cached), and the function is a plain module-level function, so it pickles by reference. Its
``warm(settings)`` hook loads the models ahead of the first micro-batch. ``classify_texts`` is the same
work for texts that need not be valid tweets (``tweetdesk classify``, in ``classify.py``).

Unclassifiable: a tweet with no words left after cleaning (only mentions, links, numbers, punctuation)
gets sentiment and topic ``records.UNCLASSIFIABLE`` with score 0.0, and still a ticket (prefix GEN).
In ``classify --file``, a row whose text is missing, empty or not a string gets the same result.

Language (``nlp.lang``): each result has ``lang``, X's where the tweet has one, else the identifier's. The English
models label only English and undetermined tweets; any other language gets sentiment and topic
``records.NOT_INFERRED`` with score 0.0, only the entities that read no words (flight, booking code, airport,
money), and a ticket with prefix LNG (the desk's language queue).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tweetdesk.config import Settings
from tweetdesk.records import NOT_INFERRED, UNCLASSIFIABLE, EnrichedTweet, Entity, Tweet, utcnow


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
    lang: str = "und"
    # X's rules: would this tweet get an automatic reply under the configured our_handles (it @mentions one)?
    summoned: bool = False

    def to_json(self) -> dict:
        return {
            "tweet_id": self.tweet_id,
            "text": self.text,
            "lang": self.lang,
            "sentiment": self.sentiment,
            "sentiment_score": round(self.sentiment_score, 4),
            "topic": self.topic,
            "topic_score": round(self.topic_score, 4),
            "entities": [e.model_dump(exclude_none=True) for e in self.entities],
            "ticket_id": self.ticket_id,
            "summoned": self.summoned,
        }


def classify_texts(ids: list[str], texts: list[object], settings: Settings,
                   langs: list[object] | None = None) -> tuple[list[Classified], str]:
    """Core shared by enrich_batch and ``tweetdesk classify``: non-text or blank texts come back
    unclassifiable; texts in a language the models do not read come back not inferred. ``langs``: the
    language each source gave (X's ``lang``; None = identify it). Returns the results in order and the model
    version."""
    from tweetdesk.models.predict import get_classifier
    from tweetdesk.nlp.clean import clean_many
    from tweetdesk.nlp.entities import get_extractor
    from tweetdesk.nlp.lang import LANGUAGE_FREE_LABELS, is_model_language, languages_of
    from tweetdesk.secret_key import ticket_key
    from tweetdesk.tickets.ids import ticket_id_for

    models = settings.models
    key = ticket_key(settings)
    clf = get_classifier(models)
    out = [Classified(tweet_id=i, text=t) for i, t in zip(ids, texts, strict=True)]
    good = [k for k, t in enumerate(texts) if isinstance(t, str) and t.strip()]
    if good:
        good_texts = [texts[k] for k in good]
        given = [None] * len(good) if langs is None else [langs[k] for k in good]
        for k, lang in zip(good, languages_of(good_texts, given, models), strict=True):
            out[k].lang = lang
        cleaned = clean_many(good_texts)
        entities = get_extractor(models).extract_many(good_texts)
        read = [j for j, k in enumerate(good) if is_model_language(out[k].lang)]
        preds = dict(zip(read, clf.predict_cleaned([cleaned[j] for j in read], batch_size=models.inference_batch_size)))
        for j, (k, c, ents) in enumerate(zip(good, cleaned, entities, strict=True)):
            r = out[k]
            r.clean_text = c.text
            p = preds.get(j)
            if p is None:  # a language the models do not read: no guess, and no entity read from its words
                r.sentiment, r.topic = NOT_INFERRED, NOT_INFERRED
                r.entities = [e for e in ents if e.label in LANGUAGE_FREE_LABELS]
                continue
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
    results, version = classify_texts([t.id for t in tweets], [t.text for t in tweets], settings,
                                      [t.lang for t in tweets])
    now = utcnow()
    return [
        EnrichedTweet(
            **{**t.model_dump(), "lang": r.lang},
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
    from tweetdesk.nlp.lang import get_identifier

    get_classifier(settings.models)
    get_extractor(settings.models)
    get_identifier(settings.models)


# The stream job's hook (stream.transform.Enricher): an enricher without one starts cold.
enrich_batch.warm = warm
