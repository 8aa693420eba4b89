"""The labelled airline data set: load, validate, deduplicate, clean and split.

Deduplication happens *before* splitting, on two keys, so no test tweet has a twin in training:
1. ``tweet_id`` (the source repeats 155 rows), and
2. normalised text (lower case, URLs removed, whitespace collapsed): the same words posted twice, e.g.
   a copy-pasted complaint, would otherwise leak between the splits.
The first occurrence is kept. The split is stratified on ``airline_sentiment`` and seeded, and both
models use the same split, so the test tweets are the same for sentiment, topic and the LDA comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tweetdesk.errors import InputError, TweetdeskError

REQUIRED_COLUMNS = ("tweet_id", "airline_sentiment", "text")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train / validation / test
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """The key for text deduplication: case, URLs (t.co links differ per post) and spacing ignored."""
    return _SPACE.sub(" ", _URL.sub(" ", str(text).lower())).strip()


def load_dataset(path: Path) -> pd.DataFrame:
    """Read the CSV (airline data set format), checking what training needs."""
    path = Path(path)
    if not path.exists():
        raise TweetdeskError(
            f"data file {path} not found: pass --data PATH or set TWEETDESK_DATA_PATH "
            "(expected the airline tweets CSV at ../shared/data/airline_tweets.csv)"
        )
    try:
        df = pd.read_csv(path, dtype={"tweet_id": str}, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"cannot read {path} as CSV: {e}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path} lacks column(s) {', '.join(missing)} (airline data set format expected)")
    df = df[df["text"].notna() & df["airline_sentiment"].isin(["negative", "neutral", "positive"])].copy()
    df["text"] = df["text"].astype(str)
    if "airline_sentiment_confidence" not in df.columns:
        df["airline_sentiment_confidence"] = 1.0
    if "negativereason" not in df.columns:
        df["negativereason"] = np.nan
    if "airline" not in df.columns:
        df["airline"] = ""
    return df.reset_index(drop=True)


def deduplicate(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    n0 = len(df)
    df = df.drop_duplicates("tweet_id", keep="first")
    n1 = len(df)
    key = df["text"].map(normalise_text)
    df = df[~key.duplicated(keep="first")]
    stats = {"rows": n0, "duplicate_ids": n0 - n1, "duplicate_texts": n1 - len(df), "unique": len(df)}
    return df.reset_index(drop=True), stats


@dataclass
class Split:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    dedup: dict[str, int]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def split_dataset(df: pd.DataFrame, seed: int = 42) -> Split:
    """Deduplicate, then a seeded 80/10/10 split stratified on sentiment."""
    from sklearn.model_selection import train_test_split

    df, stats = deduplicate(df)
    train, rest = train_test_split(
        df, test_size=SPLIT_FRACTIONS[1] + SPLIT_FRACTIONS[2], stratify=df["airline_sentiment"], random_state=seed
    )
    val, test = train_test_split(rest, test_size=0.5, stratify=rest["airline_sentiment"], random_state=seed)
    return Split(train.reset_index(drop=True), val.reset_index(drop=True), test.reset_index(drop=True), stats)
