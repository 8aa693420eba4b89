"""Tweets in, enriched tweets out: cleaning, both LSTMs, entities, ticket ID. Also `tweetdesk classify`.

``enrich_batch`` is what the Spark job calls inside ``mapInPandas``: importing this module loads
nothing (models load on the first call, once per process, and are cached), and the function is a
plain module-level function, so it pickles by reference.

Unclassifiable: a tweet with no words left after cleaning (only mentions, links, numbers, punctuation)
gets sentiment and topic ``records.UNCLASSIFIABLE`` with score 0.0, and still a ticket (prefix GEN).
In ``classify --file``, a row whose text is missing, empty or not a string gets the same result.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tweetdesk.xrules import mentions_of, normalise_handle
from tweetdesk.errors import InputError, TweetdeskError
from tweetdesk.records import UNCLASSIFIABLE, Entity, EnrichedTweet, Tweet, utcnow


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


def _classify(ids: list[str], texts: list[object], settings) -> tuple[list[Classified], str]:
    """Core shared by enrich_batch and the CLI: non-text or blank texts come back unclassifiable."""
    from tweetdesk.models.predict import get_classifier
    from tweetdesk.nlp.clean import clean_many
    from tweetdesk.nlp.entities import get_extractor
    from tweetdesk.secret_key import ticket_key
    from tweetdesk.tickets.ids import ticket_id_for

    key = ticket_key(settings)
    clf = get_classifier(settings)
    out = [Classified(tweet_id=i, text=t) for i, t in zip(ids, texts, strict=True)]
    good = [k for k, t in enumerate(texts) if isinstance(t, str) and t.strip()]
    if good:
        good_texts = [texts[k] for k in good]
        cleaned = clean_many(good_texts)
        preds = clf.predict_cleaned(cleaned, batch_size=settings.inference_batch_size)
        entities = get_extractor(settings).extract_many(good_texts)
        for k, c, p, ents in zip(good, cleaned, preds, entities, strict=True):
            r = out[k]
            r.clean_text = c.text
            r.sentiment, r.sentiment_score, r.topic, r.topic_score = p.sentiment, p.sentiment_score, p.topic, p.topic_score
            r.entities = list(ents)
    for r in out:
        r.ticket_id = ticket_id_for(r.tweet_id, r.topic, key=key)
    return out, clf.version


def enrich_batch(tweets: list[Tweet], settings=None) -> list[EnrichedTweet]:
    """Classify a batch of tweets; one EnrichedTweet per tweet, in order. Never fails on a tweet's text."""
    if not tweets:
        return []
    if settings is None:
        from tweetdesk.config import get_settings

        settings = get_settings()
    results, version = _classify([t.id for t in tweets], [t.text for t in tweets], settings)
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


# ------------------------------------------------------------------------------------------ classify CLI


def text_id(text: object) -> str:
    """A stable numeric id for input without one, so the same text always shows the same ticket ID."""
    digest = hashlib.blake2b(str(text).encode("utf-8", "surrogatepass"), digest_size=8, person=b"tweetdesk-cli").digest()
    return str(int.from_bytes(digest, "big"))


def _norm_id(raw: object, text: object) -> str:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return text_id(text)
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    return str(raw).strip()


def read_input(path: Path) -> list[tuple[str, object]]:
    """(tweet_id, text) pairs from a CSV with a ``text`` column (``tweet_id`` optional) or a JSONL of
    tweets (``text`` plus ``id`` or ``tweet_id``), in file order."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input file {path} not found")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a CSV or JSONL file")
    rows: list[tuple[str, object]] = []
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"{path}:{n}: not valid JSON ({e.msg})") from None
                if not isinstance(obj, dict):
                    raise InputError(f"{path}:{n}: expected a JSON object per line")
                if n == 1 and "text" not in obj:
                    raise InputError(f"{path}: no 'text' field in the first tweet (fields: {', '.join(obj) or 'none'})")
                text = obj.get("text")
                rows.append((_norm_id(obj.get("tweet_id", obj.get("id")), text), text))
        return rows
    # csv's default field limit (128 KiB) would stop the whole file at one oversized text.
    csv.field_size_limit(max(csv.field_size_limit(), 64 * 1024 * 1024))
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.DictReader(f)
        try:
            if not reader.fieldnames or "text" not in reader.fieldnames:
                found = ", ".join(reader.fieldnames or []) or "none"
                raise InputError(f"{path} has no 'text' column (columns: {found[:200]})")
            id_col = "tweet_id" if "tweet_id" in reader.fieldnames else ("id" if "id" in reader.fieldnames else None)
            for row in reader:
                text = row.get("text")
                rows.append((_norm_id(row.get(id_col) if id_col else None, text), text))
        except csv.Error as e:
            raise InputError(f"{path}:{reader.line_num}: not valid CSV ({e})") from None
    return rows


def classify_command(settings, text: str | None = None, file: Path | None = None, json_out: bool = False) -> None:
    """`tweetdesk classify "TEXT"` or `tweetdesk classify --file PATH [--json]`."""
    from tqdm.auto import tqdm

    if text is not None and file is not None:
        raise TweetdeskError("give either a TEXT or --file, not both")
    if text is None and file is None:
        raise TweetdeskError('nothing to classify: give a TEXT (tweetdesk classify "my bag is lost") or --file PATH')
    rows = [(text_id(text), text)] if file is None else read_input(file)
    ours = {normalise_handle(h) for h in settings.our_handles}
    batch = max(1, settings.inference_batch_size)
    with tqdm(total=len(rows), desc="classifying", unit="tweet", file=sys.stderr, disable=file is None) as bar:
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            results, version = _classify([r[0] for r in chunk], [r[1] for r in chunk], settings)
            for r in results:
                # From the text's mentions (a quote or a reply to our tweet summons us too; the stream sees those).
                r.summoned = isinstance(r.text, str) and any(
                    normalise_handle(m) in ours for m in mentions_of(r.text)
                )
                if json_out:
                    sys.stdout.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
                else:
                    _print_human(r, version)
            sys.stdout.flush()
            bar.update(len(chunk))


def _print_human(r: Classified, version: str) -> None:
    ents = ", ".join(f"{e.text} ({e.label})" for e in r.entities) or "none"
    text = r.text if isinstance(r.text, str) else repr(r.text)
    print(f"text:      {text}")
    if r.sentiment == UNCLASSIFIABLE:
        print("sentiment: unclassifiable (no words left after cleaning)")
        print("topic:     unclassifiable")
    else:
        print(f"sentiment: {r.sentiment} ({r.sentiment_score:.2f})")
        print(f"topic:     {r.topic} ({r.topic_score:.2f})")
    print(f"entities:  {ents}")
    print(f"ticket:    {r.ticket_id}   (model {version})")
    print(f"reply:     {'automatic (it mentions our account)' if r.summoned else 'none: listening only (it does not mention our account)'}")
    print()
