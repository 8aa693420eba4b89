"""What the classifiers read: the cleaner's lemmas plus a few marker tokens the cleaner drops.

The cleaner removes punctuation, URLs and mentions, which is right for topics but throws away
sentiment cues: a question mark marks most neutral tweets ("can I change my flight?"), "!" and a
shared link are common in praise and news. So the model input appends, after the words:
``<q>`` (the tweet has "?"), ``<excl>`` ("!"), ``<url>`` (it had a link), ``<mention>`` (it names
someone besides the brand). Words come first so truncation (last max_len tokens) keeps markers.
"""

from __future__ import annotations

from tweetdesk.nlp.clean import CleanedText

MARKERS = ("<q>", "<excl>", "<url>", "<mention>")


def model_tokens(c: CleanedText, field: str = "all_tokens") -> list[str]:
    # A tweet of stop words only ("@united done", "why not me?") still has words: the topic model
    # then reads them all rather than nothing.
    words = list(c.all_tokens if field == "all_tokens" else (c.tokens or c.all_tokens))
    if not words:
        return []  # nothing to classify: the caller reports the tweet as unclassifiable
    text = c.original if isinstance(c.original, str) else ""
    if "?" in text:
        words.append("<q>")
    if "!" in text:
        words.append("<excl>")
    if c.urls:
        words.append("<url>")
    if len(c.mentions) > 1:
        words.append("<mention>")
    return words
