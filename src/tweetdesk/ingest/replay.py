"""Replay source: a CSV in the airline data set's format, or a JSONL of ``Tweet`` records, published at a chosen
rate.

* Every input record becomes a ``Tweet`` on topic_raw or a ``DeadLetter`` (stage "ingest", with the reason and the
  original line) on topic_dead: a malformed line is never dropped silently and never stops the replay.
* ``rate`` paces against a monotonic schedule (message i leaves at t0 + i/rate), so sleeps do not accumulate drift.
* ``loop`` replays the file again and again. The first pass keeps the file's ids (replaying the same file twice
  is a re-delivery, which downstream dedup must absorb); every later pass is new traffic: each tweet gets a fresh
  snowflake id minted now (created_at = the id's time), and replies/conversations are renumbered with the same
  mapping, so threads stay linked within the pass.
* JSONL lines carry what X's records carry: ``referenced_tweets`` (as X spells it, or ``quoted_tweet_id`` /
  ``quoted_author`` for a quote; a reply's from ``in_reply_to_tweet_id``), each with its author when an earlier
  line wrote it. ``mentions`` stay as the line gives them (None: read from the text where they are used).
* ``limit`` counts input records (tweets and dead letters), across passes.
"""

from __future__ import annotations

import csv
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from tweetdesk.config import SAMPLE_TWEETS, KafkaSettings
from tweetdesk.errors import InputError
from tweetdesk.ingest.common import check_file
from tweetdesk.ingest.publisher import IngestStats, Publisher
from tweetdesk.ingest.snowflake import SnowflakeGenerator, snowflake_time
from tweetdesk.records import DeadLetter, ReferencedTweet, Tweet, brand_of

log = logging.getLogger(__name__)

STAGE = "ingest"
CSV_REQUIRED = ("tweet_id", "text", "name", "tweet_created")
JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
_CSV_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S")

Record = Tweet | DeadLetter


# --- reading ---------------------------------------------------------------------------------------------------
def detect_format(path: Path) -> str:
    """'csv' or 'jsonl', by suffix, else by the first non-blank character."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    return "jsonl" if head.startswith(b"{") else "csv"


def read_records(path: Path) -> Iterator[Record]:
    """Each record of a replay file, in file order, as a ``Tweet`` or a ``DeadLetter`` saying what is wrong."""
    path = check_file(path)
    if detect_format(path) == "csv":
        yield from _read_csv(path)
    else:
        yield from _read_jsonl(path)


def iter_tweets(path: Path) -> Iterator[Tweet]:
    """Only the valid tweets of a replay file (for tools that have no dead-letter topic, e.g. ``classify``)."""
    for r in read_records(path):
        if isinstance(r, Tweet):
            yield r


def count_records(path: Path) -> int:
    """Records one pass yields (for the progress bar's total and the sizes of --limit)."""
    path = check_file(path)
    if detect_format(path) == "jsonl":
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    # Rows, without validating them: validation is most of a pass's cost.
    csv.field_size_limit(max(csv.field_size_limit(), 64 * 1024 * 1024))
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        reader = csv.reader(f)
        next(reader, None)
        n = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return n
            except csv.Error:
                n += 1
                continue
            n += any(cell.strip() for cell in row)


def _x_references(tweet: Tweet, raw: bytes, seen: dict[str, tuple[str, str | None]]) -> dict:
    """What X would say a replay line references: its ``referenced_tweets`` as given (X's spelling), a quote from
    ``quoted_tweet_id`` / ``quoted_author``, the tweet it replies to from ``in_reply_to_tweet_id``, each with its
    author when an earlier line of the file wrote it. Raises ``ValidationError`` for a malformed reference."""
    refs = list(tweet.referenced_tweets)
    if b'"quoted_tweet_id"' in raw:
        doc = json.loads(raw)
        qid = doc.get("quoted_tweet_id")
        if qid is not None and not any(r.type == "quoted" and r.id == str(qid) for r in refs):
            author = doc.get("quoted_author")
            refs.append(ReferencedTweet(type="quoted", id=str(qid), author_id=doc.get("quoted_author_id"),
                                        author=author.lstrip("@") if isinstance(author, str) else author))
    replied = next((r for r in refs if r.type == "replied_to"), None)
    if tweet.in_reply_to_tweet_id and replied is None:
        refs.insert(0, ReferencedTweet(type="replied_to", id=tweet.in_reply_to_tweet_id,
                                       author_id=tweet.in_reply_to_user_id))
    out = []
    for r in refs:
        if r.id in seen and (r.author is None or r.author_id is None):
            author, author_id = seen[r.id]
            r = r.model_copy(update={"author": r.author or author, "author_id": r.author_id or author_id})
        out.append(r)
    update: dict = {"referenced_tweets": out}
    if tweet.in_reply_to_tweet_id is None and replied is not None:
        update["in_reply_to_tweet_id"] = replied.id
        update["in_reply_to_user_id"] = tweet.in_reply_to_user_id or replied.author_id
    return update


def _read_jsonl(path: Path) -> Iterator[Record]:
    seen: dict[str, tuple[str, str | None]] = {}  # id -> (author, author_id) of the file's tweets so far
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            raw = line.strip()
            if not raw:
                continue
            try:
                tweet = Tweet.model_validate_json(raw)
                update: dict = {"source": "replay", "ingested_at": None, **_x_references(tweet, raw, seen)}
            except ValidationError as e:
                yield DeadLetter.from_error(raw, e, STAGE, context=f"{path.name} line {lineno}", key=f"{path.name}:{lineno}")
                continue
            if tweet.brand is None:
                update["brand"] = brand_of(tweet.text)
            seen[tweet.id] = (tweet.author, tweet.author_id)
            yield tweet.model_copy(update=update)


def _parse_csv_time(s: str | None) -> datetime | str | None:
    if not s:
        return None
    s = s.strip()
    for fmt in _CSV_TIME_FORMATS:
        try:
            return datetime.strptime(s, fmt)
        except ValueError:
            pass
    return s  # ISO or garbage: let the record's validation decide, with its message


def _csv_line(row: list[str]) -> str:
    import io

    buf = io.StringIO()
    csv.writer(buf).writerow(row)
    return buf.getvalue().rstrip("\r\n")


def _read_csv(path: Path) -> Iterator[Record]:
    # A 1 MB text field must reach validation (and become a dead letter), not stop the reader.
    csv.field_size_limit(max(csv.field_size_limit(), 64 * 1024 * 1024))
    # surrogateescape: a non-UTF-8 byte does not end the replay; the row carrying it is dead-lettered.
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return
        header = [h.strip() for h in header]
        missing = [c for c in CSV_REQUIRED if c not in header]
        if missing:
            raise InputError(
                f"{path}: not the airline data set's CSV format (missing column{'s' * (len(missing) > 1)} "
                f"{', '.join(missing)}); expected {', '.join(CSV_REQUIRED)}, airline"
            )
        col = {name: i for i, name in enumerate(header)}
        while True:
            lineno = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield DeadLetter.of("", f"{path.name} line {lineno}: unreadable CSV: {e}", STAGE,
                                    key=f"{path.name}:{lineno}")
                continue
            if not any(cell.strip() for cell in row):
                continue
            yield _csv_record(row, col, path.name, lineno)


def _csv_record(row: list[str], col: dict[str, int], name: str, lineno: int) -> Record:
    def get(c: str) -> str | None:
        i = col.get(c)
        return row[i] if i is not None and i < len(row) else None

    raw = _csv_line(row)
    where = f"{name} line {lineno}"
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        return DeadLetter.of(raw, f"{where}: not UTF-8 text", STAGE, key=f"{name}:{lineno}")
    tweet_id = (get("tweet_id") or "").strip()
    text = get("text")
    fields = {
        "id": tweet_id,
        "text": text,
        "author": (get("name") or "").strip(),
        "created_at": _parse_csv_time(get("tweet_created")),
        "brand": brand_of(text or "", get("airline")),
        # X gives a tweet that starts a conversation its own id as conversation_id.
        "conversation_id": tweet_id or None,
        "source": "replay",
    }
    try:
        return Tweet.model_validate({k: v for k, v in fields.items() if v is not None and v != ""})
    except ValidationError as e:
        return DeadLetter.from_error(raw, e, STAGE, context=where, key=f"{name}:{lineno}")


# --- pacing and passes -----------------------------------------------------------------------------------------
class Pacer:
    """Lets message i go at t0 + i/rate on a monotonic clock: a late message does not delay the ones after it,
    and sleep overshoot does not accumulate. rate 0 = no pacing."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep):
        self.rate = rate
        self._clock, self._sleep = clock, sleep
        self._t0: float | None = None
        self.sent = 0

    def wait(self) -> None:
        if self.rate > 0:
            now = self._clock()
            if self._t0 is None:
                self._t0 = now
            delay = self._t0 + self.sent / self.rate - now
            if delay > 0:
                self._sleep(delay)
        self.sent += 1


class Renumber:
    """Fresh ids for one loop pass; the mapping is shared by id, in_reply_to_tweet_id, conversation_id and the
    referenced tweets. A quoted or retweeted tweet outside the file (``known``: the file's ids) keeps its id: a
    quote of one of our tweets on X still quotes that tweet in every pass."""

    def __init__(self, mint: Callable[[], str], known: set[str] | None = None):
        self._mint = mint
        self._map: dict[str, str] = {}
        self._known = known

    def _id(self, old: str | None) -> str | None:
        if old is None:
            return None
        new = self._map.get(old)
        if new is None:
            new = self._map[old] = self._mint()
        return new

    def __call__(self, tweet: Tweet) -> Tweet:
        new_id = self._id(tweet.id)
        return tweet.model_copy(update={
            "id": new_id,
            "created_at": snowflake_time(new_id),
            "in_reply_to_tweet_id": self._id(tweet.in_reply_to_tweet_id),
            "conversation_id": self._id(tweet.conversation_id),
            "referenced_tweets": [
                r.model_copy(update={"id": self._id(r.id)})
                if r.type == "replied_to" or self._known is None or r.id in self._known else r
                for r in tweet.referenced_tweets
            ],
        })


def replay_records(path: Path, *, loop: bool = False,
                   mint: Callable[[], str] | None = None) -> Iterator[tuple[int, Record]]:
    """(pass number, record) for one pass, or endless passes with ``loop``. Stops if a pass yields nothing."""
    mint = mint or SnowflakeGenerator()
    n = 0
    known: set[str] = set()  # the file's tweet ids, seen in the first pass
    while True:
        renumber = Renumber(mint, known) if n > 0 else None
        yielded = 0
        for rec in read_records(path):
            yielded += 1
            if isinstance(rec, Tweet):
                if renumber is not None:
                    rec = renumber(rec)
                else:
                    known.add(rec.id)
            yield n, rec
        if not loop or yielded == 0:
            return
        n += 1


# --- the source ------------------------------------------------------------------------------------------------
def replay(
    kafka: KafkaSettings,
    path: Path | None = None,
    *,
    rate: float = 0.0,
    limit: int | None = None,
    loop: bool = False,
    progress: bool | None = None,
    stop: threading.Event | None = None,
    publisher: Publisher | None = None,
    pacer: Pacer | None = None,
) -> IngestStats:
    """Publish a replay file to ``kafka`` (the settings' Kafka section, bound to a running cluster). Returns the counts after the final flush.

    ``stop`` ends the replay early (e.g. from the demo's Ctrl-C handler); ``publisher``/``pacer`` can be given
    to share a producer or to drive pacing with a test clock.
    """
    path = check_file(path or SAMPLE_TWEETS)
    if rate < 0:
        raise InputError(f"--rate must be ≥ 0 tweets/s, not {rate}")
    total = limit if (loop or limit is not None) else None
    if not loop:
        n = count_records(path)
        total = min(n, limit) if limit is not None else n
    if total == 0 and not loop:
        raise InputError(f"replay file {path} holds no records")
    stop = stop or threading.Event()
    if pacer is None:
        # Interruptible sleep: a stop request does not wait out a slow rate's gap.
        pacer = Pacer(rate, sleep=stop.wait)
    own = publisher is None
    pub = publisher or Publisher(kafka, total=total, progress=progress,
                                 desc=f"replay {path.name}")
    if not own:
        pub.set_total(total)
    passes = sent = 0
    try:
        for passes, rec in replay_records(path, loop=loop):
            if stop.is_set() or (limit is not None and sent >= limit):
                break
            pacer.wait()
            if isinstance(rec, Tweet):
                pub.publish(rec)
            else:
                pub.dead_letter(rec)
            sent += 1
            if limit is not None and sent >= limit:
                break  # before the reader opens another pass
        pub.stats.extra["passes"] = passes + 1
    finally:
        if own:
            pub.close()
    return pub.stats

