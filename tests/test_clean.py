"""The tweet-cleaning rules of tweetdesk.nlp.clean (see its module docstring), one group per rule."""

from __future__ import annotations

import csv
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.lang.en.stop_words import STOP_WORDS

from tweetdesk.nlp.clean import CleanedText, clean, clean_many


# --- 3. mentions ---------------------------------------------------------------------------------------
def test_mentions_removed_and_first_is_brand():
    r = clean("@united where is my bag?? cc @AmericanAir")
    assert r.mentions == ["united", "AmericanAir"]
    assert r.brand == "united"
    assert "united" not in r.all_tokens and "americanair" not in r.all_tokens
    assert "bag" in r.tokens


def test_brand_is_lower_case_and_none_without_mention():
    assert clean("@VirginAmerica thanks").brand == "virginamerica"
    assert clean("no handle here").brand is None


def test_email_address_is_not_a_mention():
    r = clean("mail me at jane.doe@gmail.com please")
    assert r.mentions == []


def test_mention_only_tweet_is_empty_but_keeps_brand():
    r = clean("@united")
    assert r.empty and r.tokens == [] and r.brand == "united"


# --- 2. URLs --------------------------------------------------------------------------------------------
def test_urls_removed_and_counted():
    r = clean("see http://t.co/eWXwXiDTfX and https://www.united.com/web/en-US now, or www.example.com/x")
    assert r.urls == 3
    assert not any(part in w for w in r.all_tokens for part in ("http", "co", "www", "united", "example"))
    assert "see" in r.all_tokens and "now" in r.all_tokens


# --- 1. HTML entities, normalisation ---------------------------------------------------------------------
def test_html_entities_unescaped():
    r = clean("bags &amp; seats &gt; nothing &lt;3")
    # "&amp;"/"&gt;" become punctuation (dropped), "&lt;3" becomes the emoticon "<3"
    assert r.all_tokens == ["bag", "seat", "nothing", "love"]


def test_fullwidth_text_is_nfkc_normalised():
    assert clean("Ｌｏｓｔ ｂａｇｓ").tokens == ["lose", "bag"]


def test_capitalised_words_are_lemmatised_like_lower_case_ones():
    # the lookup table is case-sensitive: the cleaner lower-cases first
    assert clean("Bags were LOST. Flights Cancelled").tokens == clean("bags were lost. flights cancelled").tokens
    assert clean("BAGS WERE LOST").tokens == ["bag", "lose"]


def test_superlatives_keep_their_strength():
    assert clean("Worst airline, best crew").tokens == ["worst", "airline", "best", "crew"]


# --- 4. hashtags ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "tag, words",
    [
        ("#NeverAgain", ["never", "again"]),
        ("#WorstAirlineEver", ["worst", "airline", "ever"]),
        ("#lostluggage", ["lostluggage"]),
        ("#UA123", ["ua"]),
    ],
)
def test_hashtags_keep_their_words_split_on_camel_case(tag, words):
    r = clean(f"so done {tag}")
    assert r.hashtags == [tag[1:]]
    assert r.all_tokens[-len(words) :] == words
    assert not any("#" in w for w in r.all_tokens)


# --- 5. emoji and emoticons -----------------------------------------------------------------------------
def test_emoji_become_words_and_are_listed():
    r = clean("lost my bag 😡✈️")
    assert r.emojis == ["😡", "✈️"]
    assert "face" in r.tokens and "airplane" in r.tokens
    assert not any(ch in "".join(r.all_tokens) for ch in "😡✈")


def test_emoji_zwj_sequence_is_one_emoji():
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467"  # man ZWJ woman ZWJ girl
    r = clean(f"travelling with {family}")
    assert r.emojis == [family]
    assert "family" in r.tokens


def test_skin_tone_modifier_stays_with_its_emoji():
    r = clean("thanks 👍🏽")
    assert r.emojis == ["👍🏽"]
    assert {"thumb", "up"} <= set(r.tokens)


@pytest.mark.parametrize(
    "text, word",
    [("great crew :)", "smile"), ("delayed again :(", "sad"), ("love you <3", "love"), ("hmm :/", "annoyed"),
     ("haha :D", "laugh")],
)
def test_emoticons_become_words(text, word):
    r = clean(text)
    lemma = clean(word).all_tokens[0]  # the emoticon's word goes through the lemmatiser too
    assert lemma in r.tokens
    assert not any(c in "".join(r.all_tokens) for c in ":()<"), r.all_tokens


# --- 6. numbers -----------------------------------------------------------------------------------------
def test_pure_numbers_dropped_mixed_tokens_keep_letters():
    r = clean("waited 2hrs for flight 1234 at 10:30 with 3 bags")
    assert "hrs" in r.tokens
    assert "bag" in r.tokens and "flight" in r.tokens
    assert not any(c.isdigit() for w in r.all_tokens for c in w)


# --- 7. case, punctuation, lemmas -----------------------------------------------------------------------
def test_lower_case_punctuation_dropped_and_lemmatised():
    r = clean("The BAGS were LOST!!! The crew flew away...")
    assert r.tokens == ["bag", "lose", "crew", "fly", "away"]
    assert all(w == w.lower() for w in r.all_tokens)


def test_airline_nouns_keep_their_noun_lemma():
    r = clean("crew lounge boarding luggage")
    assert r.tokens == ["crew", "lounge", "boarding", "luggage"]


# --- 8. stop words and negations --------------------------------------------------------------------------
def test_negations_are_spacy_stop_words_yet_kept():
    # The rule does work only if spaCy's list holds them; it does.
    assert {"not", "no", "never"} <= STOP_WORDS
    r = clean("not happy, no help, never again")
    assert r.tokens == ["not", "happy", "no", "help", "never", "again"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("I can't believe it", ["i", "can", "not", "believe", "it"]),
        ("they won't help", ["they", "will", "not", "help"]),
        ("don't care", ["do", "not", "care"]),
        ("cannot board", ["can", "not", "board"]),
    ],
)
def test_contractions_become_negations(text, expected):
    r = clean(text)
    assert r.all_tokens == expected
    assert "not" in r.tokens


def test_stop_words_removed_from_tokens_but_kept_in_all_tokens():
    r = clean("where is my bag and why is it still in the plane")
    assert r.all_tokens == ["where", "be", "my", "bag", "and", "why", "be", "it", "still", "in", "the", "plane"]
    assert r.tokens == ["bag", "still", "plane"]  # "still" is a domain word kept on purpose
    assert r.text == "bag still plane"


# --- empty and bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", " ", "   \n\t ", "\u200b\u200b", "!!! ... ???", "123 456"])
def test_empty_and_contentless_text_gives_empty_result(text):
    r = clean(text)
    assert isinstance(r, CleanedText)
    assert r.tokens == [] and r.empty and r.text == ""


@pytest.mark.parametrize("bad", [None, 123, 1.5, b"bytes", ["a list"], {"text": "x"}])
def test_non_text_input_raises_type_error(bad):
    with pytest.raises(TypeError, match="must be str"):
        clean(bad)
    with pytest.raises(TypeError, match="must be str"):
        clean_many(["fine", bad])


# --- clean_many ---------------------------------------------------------------------------------------------
EXAMPLES = [
    "@united where is my bag?? #NeverAgain 😡",
    "",
    "@SouthwestAir thanks!!! :) http://t.co/x",
    "I can't believe it &amp; won't fly again",
    "   ",
    "مرحبا @JetBlue الرحلة تأخرت",
]


def test_clean_many_equals_clean_one_by_one():
    assert clean_many(EXAMPLES) == [clean(t) for t in EXAMPLES]
    assert clean_many([]) == []


def test_clean_many_matches_clean_on_the_data_set(airline_csv):
    with airline_csv.open(newline="", encoding="utf-8") as fh:
        texts = [row["text"] for row in itertools.islice(csv.DictReader(fh), 0, 3000, 10)]
    many = clean_many(texts, batch_size=64)
    assert many == [clean(t) for t in texts]
    # the data set's tweets are addressed to an airline: nearly all have a brand
    assert sum(r.brand is not None for r in many) > 0.95 * len(texts)


# --- unicode edge cases never crash -----------------------------------------------------------------------
UNICODE_CASES = [
    "مرحبا united الرحلة تأخرت",  # Arabic, right to left
    "שלום flight \u202eedisrever\u202c ok",  # Hebrew and a right-to-left override
    "zero\u200bwidth joi\u200dner non\u200cjoiner \ufeffbom \u2060wj",
    "\U0001F469\u200d\u2764\ufe0f\u200d\U0001F48B\u200d\U0001F468 \U0001F3F3\ufe0f\u200d\U0001F308",  # ZWJ emoji
    "\U0001F1FA\U0001F1F8 flags \U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F",
    "cafe\u0301 nai\u0308ve \u0301\u0301\u0301 lone combining marks x\u0336\u0336",
    "Z\u0351\u0352\u0353a\u0354\u0355l\u0356g\u0357o",  # zalgo
    "lone surrogate \ud800 here",
    "\x00\x01 control \x7f chars \u2028 line sep",
    "ｆｕｌｌｗｉｄｔｈ ＴＥＸＴ and ﬁ ligature",
    "日本語のツイート 遅延",
    "\U0001F600" * 200,
]


@pytest.mark.parametrize("text", UNICODE_CASES)
def test_unicode_edge_cases_never_crash(text):
    r = clean(text)
    assert isinstance(r, CleanedText)
    # cleaning leaves no zero-width or direction-control characters in the tokens
    assert not any(c in w for w in r.all_tokens for c in "\u200b\u200c\u200d\u202e\u2060\ufeff")
    assert clean_many([text]) == [r]


def test_unicode_letters_are_kept_whole():
    r = clean("café naïve Zoë")
    assert r.tokens[:2] == ["café", "naïve"]
    assert "zoë" in r.tokens


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=280))
def test_any_text_cleans_without_crashing(text):
    r = clean(text)
    assert all(w and w == w.lower() for w in r.tokens)
    assert set(r.tokens) <= set(r.all_tokens)


# --- the fast lemma path equals spaCy's lemmatizer over Token objects ---------------------------------------
def _lemmas_of_doc(doc) -> list[str]:
    """The cleaner's lemmas as they were read from spaCy ``Token`` objects before the array path."""
    from tweetdesk.nlp.clean import LEMMA_OVERRIDES, _words_of_lemma

    out: list[str] = []
    for tok in doc:
        if tok.is_space or tok.is_punct:
            continue
        lemma = LEMMA_OVERRIDES.get(tok.lower_) or (tok.lemma_.lower() if tok.lemma_ else tok.lower_)
        if tok.lower_ in ("ca", "wo") and tok.i + 1 < len(doc) and doc[tok.i + 1].lower_ == "n't":
            lemma = "can" if tok.lower_ == "ca" else "will"
        out.extend(_words_of_lemma(lemma))
    return out


def _reference_tokens(texts):
    from tweetdesk.nlp import clean as C

    return [_lemmas_of_doc(d) for d in C._nlp().pipe(C._prepare(t)[0] for t in texts)]


def test_lemmas_equal_the_spacy_token_path_on_examples():
    texts = ["I can't and won't, ca n't wo n't", "@united 2hrs late, bags lost, crew flew off :( #NeverAgain",
             "café naïve 😡 3:30pm it's the worst", "don't DON'T Don't", ""]
    assert [c.all_tokens for c in clean_many(texts)] == _reference_tokens(texts)


def test_lemmas_equal_the_spacy_token_path_on_the_data_set(airline_csv):
    with airline_csv.open(newline="", encoding="utf-8") as fh:
        texts = [row["text"] for row in itertools.islice(csv.DictReader(fh), 0, 14700, 7)]
    assert [c.all_tokens for c in clean_many(texts)] == _reference_tokens(texts)
