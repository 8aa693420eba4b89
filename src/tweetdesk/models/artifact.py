"""A model version on disk: the folder layout, the manifest, saving and loading. The one module that knows them.

    <artifacts_dir>/<version>/
      model.json           the manifest: version, members, labels, split seed, cleaning rules, data checksum,
                           teacher and distillation settings, training history
      <member>.pt, .json   one LSTM each (weights as float16; config and vocabulary; ``lstm.save_model``)
      lda/                 the guided LDA behind the topic labels (gensim)
      topic_mapping.toml   the reviewed mapping the LDA was fitted with
      metrics.json         the test figures measured when the version was trained
      MODEL_CARD.md
    <artifacts_dir>/LATEST the version that ``model_version = "latest"`` resolves to

``Artifact`` holds a version in memory (``train`` returns one); ``Artifact.save`` writes it and
``Artifact.load`` reads it back. Inference (``predict.Classifier``) loads through here too.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tweetdesk.errors import ModelNotFoundError, TweetdeskError, need_extra

MANIFEST = "model.json"
LATEST = "LATEST"
METRICS = "metrics.json"
CARD = "MODEL_CARD.md"
LDA_DIR = "lda"
MAPPING = "topic_mapping.toml"


def resolve_version(artifacts_dir: Path, version: str = "latest") -> Path:
    """The artifact folder for ``version`` ("latest" = the LATEST file, else the newest folder: names are
    date-based and sort in time order)."""
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


def set_latest(artifacts_dir: Path, version: str) -> None:
    (Path(artifacts_dir) / LATEST).write_text(version + "\n", encoding="utf-8")


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelNotFoundError(f"cannot read {path}: {e}") from None


def read_metrics(folder: Path) -> dict | None:
    """The figures written when the version was trained (None if absent or unreadable)."""
    try:
        return json.loads((Path(folder) / METRICS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_labeller(folder: Path):
    """The guided LDA saved in an artifact folder, with that folder's copy of the mapping."""
    need_extra("a model version that blends the LDA into its topics", ("gensim",))
    from gensim.corpora import Dictionary
    from gensim.models import LdaModel

    from tweetdesk.models.lda import LdaLabeller, load_mapping

    folder = Path(folder)
    return LdaLabeller(
        LdaModel.load(str(folder / LDA_DIR / "lda.gensim")),
        Dictionary.load(str(folder / LDA_DIR / "dictionary.gensim")),
        load_mapping(folder / MAPPING),
    )


def _save_labeller(labeller, folder: Path) -> None:
    from tweetdesk.models.lda import MAPPING_FILE

    (folder / LDA_DIR).mkdir(parents=True, exist_ok=True)
    labeller.model.save(str(folder / LDA_DIR / "lda.gensim"))
    labeller.dictionary.save(str(folder / LDA_DIR / "dictionary.gensim"))
    shutil.copy(MAPPING_FILE, folder / MAPPING)


@dataclass
class Artifact:
    """One model version: the manifest, the LSTM members ((model, vocab) pairs) and the guided LDA."""

    manifest: dict
    sentiment: list = field(default_factory=list)
    topic: list = field(default_factory=list)
    labeller: object | None = None
    folder: Path | None = None

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def save(self, artifacts_dir: Path) -> Path:
        """Write the members, the LDA and the manifest to ``<artifacts_dir>/<version>/``; refuses to overwrite."""
        from tweetdesk.models.lstm import save_model

        folder = Path(artifacts_dir) / self.version
        if (folder / MANIFEST).exists():
            raise TweetdeskError(f"model version '{self.version}' already exists in {folder.parent}: pick another --version")
        folder.mkdir(parents=True, exist_ok=True)
        for model, vocab in [*self.sentiment, *self.topic]:
            save_model(model, vocab, folder)
        if self.labeller is not None:
            _save_labeller(self.labeller, folder)
        self.manifest["sentiment"] = [m.cfg.name for m, _ in self.sentiment]
        self.manifest["topic"] = [m.cfg.name for m, _ in self.topic]
        (folder / MANIFEST).write_text(json.dumps(self.manifest, indent=1), encoding="utf-8")
        self.folder = folder
        return folder

    def write_metrics(self, metrics: dict) -> None:
        """The test figures and the model card, beside a saved version."""
        from tweetdesk.models.card import write_model_card

        if self.folder is None:
            raise ValueError("save the artifact before writing its metrics")
        (self.folder / METRICS).write_text(json.dumps(metrics, indent=1), encoding="utf-8")
        write_model_card(self.folder, self.manifest, metrics)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file()) if self.folder else 0

    @classmethod
    def load(cls, folder: Path, labeller: bool | None = None) -> "Artifact":
        """A saved version's manifest and LSTMs, and its LDA when ``labeller`` (default: when the manifest
        blends the LDA into the topic probabilities at inference, ``topic_lda_weight`` > 0)."""
        from tweetdesk.models.lstm import load_model

        folder = Path(folder)
        manifest = read_manifest(folder)
        try:
            sentiment = [load_model(folder, n) for n in manifest["sentiment"]]
            topic = [load_model(folder, n) for n in manifest["topic"]]
        except KeyError as e:
            raise ModelNotFoundError(f"{folder / MANIFEST} names no {e} models") from None
        lda = None
        if labeller or (labeller is None and float(manifest.get("topic_lda_weight", 0.0)) > 0):
            try:
                lda = load_labeller(folder)
            except (OSError, ValueError) as e:
                raise ModelNotFoundError(f"cannot load the topic LDA in {folder / LDA_DIR}: {e}") from None
        return cls(manifest, sentiment, topic, lda, folder)
