"""The reply's tone against the model's certainty: how many automatic replies apologise to a tweet that was not
negative or thank a tweet that was, at each sentiment-score threshold below which the reply takes the neutral
[uncertain] wording (``reply.templates.TONE_MIN_CONFIDENCE``).

The threshold is chosen on the validation split (``choose``: the one that maximises mismatched replies avoided
minus half the fitting apologies and thank-yous given up: a reply that takes the wrong side embarrasses the brand
more than a neutral one that could have taken the right side) and measured on the test split, both from the
manifest's seeded split (``models.dataset``). ``python -m tweetdesk.models.tone`` prints both as JSON.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

GRID = tuple(round(0.50 + 0.05 * i, 2) for i in range(10))  # 0.50 … 0.95
LOST_WEIGHT = 0.5  # a fitting apology or thank-you given up counts half a mismatched one avoided


@dataclass(frozen=True)
class Tone:
    threshold: float
    replies: int
    apologies: int  # replies from [negative]
    thanks: int  # replies from [positive]
    neutral_wording: int  # replies from [uncertain] (toned sentiment below the threshold)
    apologies_to_non_negative: int
    thanks_to_negative: int
    fitting_given_up: int  # apologies to negative and thank-yous to positive tweets turned neutral

    @property
    def mismatched(self) -> int:
        return self.apologies_to_non_negative + self.thanks_to_negative


def tone_at(gold: list[str], pred: list[str], score: list[float], threshold: float) -> Tone:
    """The replies' tones if every tweet got one, with the [uncertain] wording below ``threshold``."""
    ap = th = neutral = ap_wrong = th_wrong = lost = 0
    for g, p, s in zip(gold, pred, score, strict=True):
        if p not in ("negative", "positive"):
            continue
        if s < threshold:
            neutral += 1
            lost += (p == "negative" and g == "negative") or (p == "positive" and g == "positive")
        elif p == "negative":
            ap += 1
            ap_wrong += g != "negative"
        else:
            th += 1
            th_wrong += g == "negative"
    return Tone(threshold, len(gold), ap, th, neutral, ap_wrong, th_wrong, lost)


def choose(gold: list[str], pred: list[str], score: list[float]) -> float:
    """The threshold of ``GRID`` that maximises mismatches avoided − LOST_WEIGHT × fitting replies given up."""
    base = tone_at(gold, pred, score, 0.0).mismatched

    def gain(t: float) -> float:
        x = tone_at(gold, pred, score, t)
        return (base - x.mismatched) - LOST_WEIGHT * x.fitting_given_up

    return max(GRID, key=lambda t: (gain(t), -t))


def measure(settings) -> dict:
    """Predictions on the validation and test splits; the chosen threshold; before/after figures on test."""
    from tweetdesk.models.dataset import load_dataset, split_dataset
    from tweetdesk.models.evaluate import set_threads
    from tweetdesk.models.predict import get_classifier
    from tweetdesk.nlp.clean import clean_many

    set_threads()
    clf = get_classifier(settings)
    split = split_dataset(load_dataset(Path(settings.data_path)), seed=int(clf.manifest.get("split_seed", 42)))
    out: dict = {"model_version": clf.version, "grid": list(GRID), "lost_weight": LOST_WEIGHT}
    per: dict[str, tuple[list[str], list[str], list[float]]] = {}
    for name in ("val", "test"):
        df = getattr(split, name)
        preds = clf.predict_cleaned(clean_many(list(df["text"])))
        per[name] = (list(df["airline_sentiment"]), [p.sentiment for p in preds], [p.sentiment_score for p in preds])
    chosen = choose(*per["val"])
    out["chosen_threshold"] = chosen
    out["validation_curve"] = [asdict(tone_at(*per["val"], t)) | {"mismatched": tone_at(*per["val"], t).mismatched}
                               for t in (0.0, *GRID)]
    before, after = tone_at(*per["test"], 0.0), tone_at(*per["test"], chosen)
    out["test_before"] = asdict(before) | {"mismatched": before.mismatched}
    out["test_after"] = asdict(after) | {"mismatched": after.mismatched}
    return out


def main() -> None:
    from tweetdesk.config import get_settings

    print(json.dumps(measure(get_settings()), indent=1))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
