"""Load a trained model folder and classify cleaned tweets, batched.

An artifact folder (``<artifacts_dir>/<version>/``) holds ``model.json`` (the manifest: version,
members, split seed, metrics, training history), one ``<member>.pt`` + ``<member>.json`` per LSTM,
``lda/`` (the guided LDA that made the topic weak labels) and ``MODEL_CARD.md``.
``model_version = "latest"`` resolves to the name in ``<artifacts_dir>/LATEST``, else to the
newest folder name (names are date-based and sort in time order).

Sentiment may be a small ensemble of LSTMs trained from different seeds: their class probabilities
are averaged. A tweet with no words left after cleaning (only mentions, links, numbers, punctuation or
emoji the cleaner drops) gets ``UNCLASSIFIABLE`` with score 0.0; a tweet of stop words only ("@united
done") is still classified.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tweetdesk.config import ModelSettings, Settings
from tweetdesk.errors import ModelNotFoundError
from tweetdesk.models.features import model_tokens
from tweetdesk.models.lstm import LSTMClassifier, Vocab, load_model, predict_proba
from tweetdesk.nlp.clean import CLEANING_VERSION, CleanedText
from tweetdesk.records import UNCLASSIFIABLE

MANIFEST = "model.json"
LATEST = "LATEST"


@dataclass(frozen=True)
class Prediction:
    sentiment: str
    sentiment_score: float
    topic: str
    topic_score: float


def resolve_version(artifacts_dir: Path, version: str = "latest") -> Path:
    """The artifact folder for ``version`` ("latest" = LATEST file, else newest folder)."""
    artifacts_dir = Path(artifacts_dir)
    if version != "latest":
        folder = artifacts_dir / version
        if not (folder / MANIFEST).exists():
            have = ", ".join(sorted(p.parent.name for p in artifacts_dir.glob(f"*/{MANIFEST}"))) or "none"
            raise ModelNotFoundError(f"model version '{version}' not found in {artifacts_dir} (available: {have})")
        return folder
    pointer = artifacts_dir / LATEST
    if pointer.exists():
        name = pointer.read_text(encoding="utf-8").strip()
        if (artifacts_dir / name / MANIFEST).exists():
            return artifacts_dir / name
    found = sorted(p.parent for p in artifacts_dir.glob(f"*/{MANIFEST}"))
    if not found:
        raise ModelNotFoundError(f"no trained model in {artifacts_dir}: run `tweetdesk train`")
    return found[-1]


class Classifier:
    """Both LSTMs of one artifact folder. Thread-safe for inference (torch modules in eval mode)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        try:
            self.manifest = json.loads((self.folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelNotFoundError(f"cannot read {self.folder / MANIFEST}: {e}") from None
        self.version: str = self.manifest["version"]
        # The cleaning rules the models were trained on (nlp/clean.py); they read tweets cleaned that way.
        self.cleaning = int(self.manifest.get("cleaning", 1))
        if self.cleaning > CLEANING_VERSION:
            raise ModelNotFoundError(f"{self.folder}: trained on cleaning rules {self.cleaning}, newer than this "
                                     f"tweetdesk's ({CLEANING_VERSION}): upgrade tweetdesk")
        self.sentiment: list[tuple[LSTMClassifier, Vocab]] = [load_model(self.folder, n) for n in self.manifest["sentiment"]]
        self.topic: list[tuple[LSTMClassifier, Vocab]] = [load_model(self.folder, n) for n in self.manifest["topic"]]
        self.sentiment_labels = self.sentiment[0][0].cfg.labels
        self.topic_labels = self.topic[0][0].cfg.labels
        # Optional: average the topic LSTM with the guided LDA that labelled its training data (see the model card).
        self.topic_lda_weight = float(self.manifest.get("topic_lda_weight", 0.0))
        self.lda = None
        if self.topic_lda_weight > 0:
            from tweetdesk.models.lda import load_labeller
            from tweetdesk.records import TOPICS

            if list(self.topic_labels) != list(TOPICS):
                raise ModelNotFoundError(f"{self.folder}: topic labels {self.topic_labels} are not in records.TOPICS order")
            try:
                self.lda = load_labeller(self.folder)
            except (OSError, ValueError) as e:
                raise ModelNotFoundError(f"cannot load the topic LDA in {self.folder / 'lda'}: {e}") from None

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
            si, ti = ps.argmax(1), pt.argmax(1)
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
