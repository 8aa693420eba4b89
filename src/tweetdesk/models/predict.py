"""Classify cleaned tweets, batched, with the LSTMs of one model version (loaded through ``artifact.py``, which
knows the folder layout; ``model_version = "latest"`` resolves through ``artifact.resolve_version``).

Sentiment may be a small ensemble of LSTMs trained from different seeds: their class probabilities
are averaged. A tweet with no words left after cleaning (only mentions, links, numbers, punctuation or
emoji the cleaner drops) gets ``UNCLASSIFIABLE`` with score 0.0; a tweet of stop words only ("@united
done") is still classified.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tweetdesk.config import ModelSettings, Settings
from tweetdesk.errors import ModelNotFoundError
from tweetdesk.models.artifact import Artifact, resolve_version
from tweetdesk.models.features import model_tokens
from tweetdesk.models.labels import decide_topics
from tweetdesk.models.lstm import LSTMClassifier, Vocab, predict_proba
from tweetdesk.nlp.clean import CLEANING_VERSION, CleanedText
from tweetdesk.records import UNCLASSIFIABLE


@dataclass(frozen=True)
class Prediction:
    sentiment: str
    sentiment_score: float
    topic: str
    topic_score: float


class Classifier:
    """Both LSTMs of one artifact folder. Thread-safe for inference (torch modules in eval mode)."""

    def __init__(self, folder: Path):
        art = Artifact.load(folder)
        self.folder = art.folder
        self.manifest = art.manifest
        self.version: str = art.version
        # The cleaning rules the models were trained on (nlp/clean.py); they read tweets cleaned that way.
        self.cleaning = int(self.manifest.get("cleaning", 1))
        if self.cleaning > CLEANING_VERSION:
            raise ModelNotFoundError(f"{self.folder}: trained on cleaning rules {self.cleaning}, newer than this "
                                     f"tweetdesk's ({CLEANING_VERSION}): upgrade tweetdesk")
        self.sentiment: list[tuple[LSTMClassifier, Vocab]] = art.sentiment
        self.topic: list[tuple[LSTMClassifier, Vocab]] = art.topic
        self.sentiment_labels = self.sentiment[0][0].cfg.labels
        self.topic_labels = self.topic[0][0].cfg.labels
        # Optional: average the topic LSTM with the guided LDA that labelled its training data (see the model card).
        self.topic_lda_weight = float(self.manifest.get("topic_lda_weight", 0.0))
        self.lda = art.labeller if self.topic_lda_weight > 0 else None
        # Topics decided family first (labels.decide_topics); versions trained before it decide by the argmax.
        self.topic_families: list[list[str]] = [list(f) for f in self.manifest.get("topic_families", [])]
        if self.lda is not None:
            from tweetdesk.records import TOPICS

            if list(self.topic_labels) != list(TOPICS):
                raise ModelNotFoundError(f"{self.folder}: topic labels {self.topic_labels} are not in records.TOPICS order")

    @staticmethod
    def _ensemble(
        members: list[tuple[LSTMClassifier, Vocab]], cleaned: list[CleanedText], batch_size: int,
        docs_by_field: dict[str, list[list[str]]] | None = None,
    ) -> np.ndarray:
        # members reading the same CleanedText field share one list of model tokens (``docs_by_field``)
        docs_by_field = {} if docs_by_field is None else docs_by_field
        total = None
        for model, vocab in members:
            field = model.cfg.tokens
            if field not in docs_by_field:
                docs_by_field[field] = [model_tokens(c, field) for c in cleaned]
            p = predict_proba(model, vocab, docs_by_field[field], batch_size=batch_size)
            total = p if total is None else total + p
        return total / len(members)

    def proba(self, cleaned: list[CleanedText], batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """(sentiment probabilities, topic probabilities) for cleaned tweets (empty ones included)."""
        cleaned = [c.for_model(self.cleaning) for c in cleaned]
        docs: dict[str, list[list[str]]] = {}
        ps = self._ensemble(self.sentiment, cleaned, batch_size, docs)
        pt = self._ensemble(self.topic, cleaned, batch_size, docs)
        if self.lda is not None:
            # LDA posterior over the eight names, renormalised (unmapped catch-all topics left out); a tweet with no
            # word the LDA knows keeps the LSTM's probabilities. Deterministic: a tweet scores the same in any batch.
            pl = self.lda.name_probs([c.tokens for c in cleaned], fixed=True)
            mass = pl.sum(axis=1)
            has = mass > 0
            w = self.topic_lda_weight
            pt = pt.copy()
            pt[has] = (1 - w) * pt[has] + w * (pl[has] / mass[has, None])
        return ps, pt

    def predict_cleaned(self, cleaned: list[CleanedText], batch_size: int = 512) -> list[Prediction]:
        cleaned = [c.for_model(self.cleaning) for c in cleaned]
        keep = [i for i, c in enumerate(cleaned) if c.all_tokens]
        out = [Prediction(UNCLASSIFIABLE, 0.0, UNCLASSIFIABLE, 0.0)] * len(cleaned)
        if keep:
            ps, pt = self.proba([cleaned[i] for i in keep], batch_size)
            si, ti = ps.argmax(1), decide_topics(pt, self.topic_labels, self.topic_families)
            for row, i in enumerate(keep):
                out[i] = Prediction(
                    self.sentiment_labels[si[row]], float(ps[row, si[row]]),
                    self.topic_labels[ti[row]], float(pt[row, ti[row]]),
                )
        return out


_cache: dict[Path, Classifier] = {}
_lock = threading.Lock()


def get_classifier(settings: ModelSettings | Settings) -> Classifier:
    """The process-wide classifier for the model section's artifacts and version (loaded on first use, then
    reused)."""
    models = ModelSettings.of(settings)
    folder = resolve_version(models.artifacts_dir, models.model_version).resolve()
    with _lock:
        clf = _cache.get(folder)
        if clf is None:
            clf = _cache[folder] = Classifier(folder)
    return clf
