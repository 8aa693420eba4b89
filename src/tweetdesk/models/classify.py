"""`tweetdesk classify`: sentiment, topic, entities and the ticket ID of a text or of a file of tweets, with
the stream's own enrichment (``enrich.classify_texts``). Input need not be valid tweets: a row whose text is
missing, empty or not a string comes back unclassifiable."""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path

from tweetdesk.config import Settings
from tweetdesk.errors import InputError, TweetdeskError
from tweetdesk.models.enrich import Classified, classify_texts
from tweetdesk.records import NOT_INFERRED, UNCLASSIFIABLE
from tweetdesk.x.rules import mentions_of, normalise_handle


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


def classify_command(settings: Settings, text: str | None = None, file: Path | None = None, json_out: bool = False) -> None:
    """`tweetdesk classify "TEXT"` or `tweetdesk classify --file PATH [--json]`."""
    from tqdm.auto import tqdm

    if text is not None and file is not None:
        raise TweetdeskError("give either a TEXT or --file, not both")
    if text is None and file is None:
        raise TweetdeskError('nothing to classify: give a TEXT (tweetdesk classify "my bag is lost") or --file PATH')
    from tweetdesk.reply.templates import ReplyTemplates

    rows = [(text_id(text), text)] if file is None else read_input(file)
    templates = ReplyTemplates.from_settings(settings)
    ours = {normalise_handle(h) for h in settings.reply.our_handles}
    batch = max(1, settings.models.inference_batch_size)
    with tqdm(total=len(rows), desc="classifying", unit="tweet", file=sys.stderr, disable=file is None) as bar:
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            results, version = classify_texts([r[0] for r in chunk], [r[1] for r in chunk], settings)
            for r in results:
                # From the text's mentions (a quote or a reply to our tweet summons us too; the stream sees those).
                r.summoned = isinstance(r.text, str) and any(
                    normalise_handle(m) in ours for m in mentions_of(r.text)
                )
                if json_out:
                    sys.stdout.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
                else:
                    _print_human(r, version, settings.reply.our_handles, templates)
            sys.stdout.flush()
            bar.update(len(chunk))


def _print_human(r: Classified, version: str, our_handles: list[str], templates) -> None:
    ents = ", ".join(f"{e.text} ({e.label})" for e in r.entities) or "none"
    text = r.text if isinstance(r.text, str) else repr(r.text)
    print(f"text:      {text}")
    print(f"language:  {r.lang}")
    if r.sentiment == NOT_INFERRED:
        print(f"sentiment: not inferred (the models read English; this reads as {r.lang!r})")
        print("topic:     not inferred (the ticket goes to the language queue)")
    elif r.sentiment == UNCLASSIFIABLE:
        print("sentiment: unclassifiable (no words left after cleaning)")
        print("topic:     unclassifiable")
    else:
        print(f"sentiment: {r.sentiment} ({r.sentiment_score:.2f})")
        print(f"topic:     {r.topic} ({r.topic_score:.2f})")
    print(f"entities:  {ents}")
    print(f"ticket:    {r.ticket_id}   (model {version})")
    in_lang = templates.for_language(r.lang)
    if r.summoned and in_lang is None:
        print(f"reply:     none: no reply template in its language ({r.lang}); an agent answers")
    elif r.summoned:
        wording = in_lang.wording(r.sentiment, r.sentiment_score)
        why = " (the model is unsure: no apology or thanks)" if wording == "uncertain" else ""
        print(f"reply:     automatic, in {in_lang.lang}, [{wording}] wording{why} (it mentions one of our accounts)")
    else:
        print("reply:     none: listening only (it mentions none of our accounts)")
    checked = " ".join(f"@{h.lstrip('@')}" for h in our_handles)
    print(f"accounts:  {checked}   (TWEETDESK_OUR_HANDLES or --handle; --handle demo: the demo's airlines)")
    print()
