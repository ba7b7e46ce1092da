"""The one Settings object: environment variables (prefix ``STRATUM_``, nested with ``__``)
and an optional ``stratum.env`` file, with embedded defaults for everything so that
``stratum up`` needs no flags.

Examples: ``STRATUM_KAFKA__URL=kafka:9092``, ``STRATUM_CLICKHOUSE__URL=http://ch:8123``,
``STRATUM_DATA_DIR=/var/lib/stratum``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_METRICS_FILE = Path(__file__).with_name("metrics.toml")
# Refused outside development by Settings; only for a local `stratum up`.
DEV_ADMIN_TOKEN = "stratum-dev-admin"  # noqa: S105
# Outside development every token must be at least this long (e.g. openssl rand -hex 24).
MIN_TOKEN_CHARS = 24


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Group):
    url: str = Field(
        "embedded",
        description="'embedded' starts the local tansu broker; otherwise host:port[,host:port]",
    )
    topic: str = "events"
    late_topic: str = "events-late"
    dead_letter_topic: str = "events-dead-letter"
    partitions: int = Field(4, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1)
    retention_ms: int = Field(7 * 24 * 3600 * 1000, ge=60_000)
    events_per_message: int = Field(500, ge=1, le=10_000)
    # Security for a real cluster (every client: producer, Faust consumer, admin, replay).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="SASL_SSL across hosts; SASL_PLAINTEXT only inside a private network",
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: Path | None = Field(
        None, description="CA bundle that signed the brokers' certificates (default: the system's)"
    )
    ssl_certfile: Path | None = Field(None, description="client certificate (mutual TLS)")
    ssl_keyfile: Path | None = None

    @property
    def embedded(self) -> bool:
        return self.url == "embedded"

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @model_validator(mode="after")
    def _complete_security(self) -> KafkaSettings:
        if self.sasl and not (self.sasl_username and self.sasl_password):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs "
                "STRATUM_KAFKA__SASL_USERNAME and STRATUM_KAFKA__SASL_PASSWORD"
            )
        if self.embedded and self.security_protocol != "PLAINTEXT":
            raise ValueError(
                "the embedded broker speaks PLAINTEXT only; set "
                "STRATUM_KAFKA__URL to a real cluster for SASL or TLS"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together (mutual TLS)")
        return self


class ClickHouseSettings(_Group):
    url: str | None = Field(
        None,
        description="chdb:///abs/path or http(s)://host:port; default chdb://<data_dir>/clickhouse",
    )
    database: str = "stratum"
    user: str | None = Field(None, description="for an http(s) server; overrides the URL's")
    password: str | None = Field(
        None, description="for an http(s) server; overrides the URL's (and needs no URL encoding)"
    )
    ca_cert: Path | None = Field(
        None,
        description="https: the CA that signed the server's certificate (default: the system's)",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("chdb://", "http://", "https://")):
            raise ValueError("must start with chdb://, http:// or https://")
        return value


class SpeedSettings(_Group):
    # Windows written this often: with aggregation between flushes (speed_layer.workers,
    # APPLY_AFTER_S), 0.5 s kept freshness p99 within 1.5 s at half the maximum rate.
    flush_interval_s: float = Field(0.5, gt=0, le=60)
    allowed_lateness_ms: int = Field(5 * 60_000, ge=0)
    idle_timeout_s: float = Field(
        10.0,
        gt=0,
        description="a partition quiet this long advances its watermark with "
        "the wall clock, closing its last windows",
    )
    dedup_ids: int = Field(
        50_000,
        ge=0,
        description="recent event ids remembered per partition to drop duplicates (0: off)",
    )
    run_replays: bool = Field(
        True,
        description="may this worker run queued Kappa replays; "
        "among several, a lease in ClickHouse picks one at a time",
    )
    session_timeout_s: float = Field(4.0, gt=0)
    heartbeat_interval_s: float = Field(1.0, gt=0)
    consumer_group: str = "stratum-speed"


class ArchiveSettings(_Group):
    flush_interval_s: float = Field(5.0, gt=0)
    max_buffered_events: int = Field(200_000, ge=1)


class BatchSettings(_Group):
    interval_s: float = Field(300.0, gt=0, description="seconds between scheduled batch runs")
    enabled: bool = True
    keep_versions_s: float = Field(
        0.0,
        ge=0,
        description="superseded batch versions are "
        "kept this long, for as-of reads (0: dropped at once)",
    )


class DefinitionsSettings(_Group):
    poll_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="how often every process looks for a new version of the metric definitions",
    )
    deleted_retention_s: float = Field(
        7 * 86_400.0, ge=0, description="a deleted metric's stored windows are dropped after this"
    )


class ApiSettings(_Group):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    admin_token: str = DEV_ADMIN_TOKEN
    read_token: str | None = Field(
        None,
        description="if set, reads, /metrics and the dashboard need it (or the admin "
        "token); the dashboard asks for it on a sign-in page",
    )
    ingest_token: str | None = Field(
        None,
        description="if set, POST /v1/events needs it (or the admin token); required in production",
    )
    cors_origins: tuple[str, ...] = Field(
        (), description="origins a browser may call the API from (JSON list); none: CORS off"
    )
    max_events_per_body: int = Field(
        100_000,
        ge=1,
        description="items in one ingest body; past it the body is refused "
        "whole (413) before any event is validated",
    )
    max_rejections_listed: int = Field(
        100,
        ge=0,
        description="rejected events an ingest answer lists with their reasons; "
        "the rest are only counted",
    )
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    ingest_timeout_s: float = Field(
        5.0,
        gt=0,
        le=60,
        description="how long ingest waits for the log's acknowledgement before it answers 503",
    )
    max_in_flight_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="request bodies being read or waiting for "
        "the log, over all requests; past it ingest answers 429 (bounds ingest's memory)",
    )
    drain_timeout_s: float = Field(
        20.0,
        ge=0,
        le=600,
        description="embedded broker: at a graceful stop, how long to "
        "wait for the speed layer to store every accepted event before stopping anyway "
        "(the journal keeps the rest for the next start)",
    )
    keep_alive_s: int = Field(
        65,
        ge=1,
        le=3600,
        description="how long an idle HTTP connection stays open; longer than clients' "
        "pools (httpx drops idle ones after 5 s) and load balancers (60 s), so the server "
        "never closes one just as a request is sent on it",
    )
    public_url: str | None = Field(
        None, description="where the dashboard reaches the API; default http://host:port"
    )
    max_event_age_days: float = Field(
        365.0,
        gt=0,
        description="ingest rejects events older than this (a ts in seconds "
        "instead of milliseconds reads as January 1970, and is rejected with a hint)",
    )

    @model_validator(mode="after")
    def _one_body_fits_in_flight(self) -> ApiSettings:
        if self.max_in_flight_bytes < self.max_body_bytes:
            raise ValueError("max_in_flight_bytes must be at least max_body_bytes")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STRATUM_",
        env_nested_delimiter="__",
        env_file="stratum.env",
        frozen=True,
        extra="ignore",
    )

    environment: str = Field("development", pattern="^(development|production)$")
    data_dir: Path = Path(".stratum")
    metrics_file: Path = DEFAULT_METRICS_FILE
    kafka: KafkaSettings = KafkaSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    speed: SpeedSettings = SpeedSettings()
    archive: ArchiveSettings = ArchiveSettings()
    batch: BatchSettings = BatchSettings()
    definitions: DefinitionsSettings = DefinitionsSettings()
    api: ApiSettings = ApiSettings()

    @model_validator(mode="after")
    def _tokens_are_secrets_in_production(self) -> Settings:
        if self.environment != "development":
            problem = token_problem(self.api)
            if problem:
                raise ValueError(problem)
        return self

    @property
    def clickhouse_url(self) -> str:
        return self.clickhouse.url or f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def api_url(self) -> str:
        if self.api.public_url:
            return self.api.public_url.rstrip("/")
        return f"http://{self.api.host}:{self.api.port}"


def token_problem(api: ApiSettings) -> str | None:
    """Why the tokens are not secrets (outside development), or None: each at least
    MIN_TOKEN_CHARS long, none the development default, no two the same."""
    named = {
        "STRATUM_API__ADMIN_TOKEN": api.admin_token,
        "STRATUM_API__READ_TOKEN": api.read_token,
        "STRATUM_API__INGEST_TOKEN": api.ingest_token,
    }
    seen: dict[str, str] = {}
    for name, token in named.items():
        if token is None:
            if name == "STRATUM_API__INGEST_TOKEN":
                return (
                    f"{name} must be set in production: ingest is open to anyone who "
                    "can reach the API otherwise"
                )
            continue
        if token == DEV_ADMIN_TOKEN:
            return f"{name} must be set to a secret value in production, not the default"
        if len(token) < MIN_TOKEN_CHARS:
            return (
                f"{name} is {len(token)} characters long; in production every token "
                f"needs at least {MIN_TOKEN_CHARS} (e.g. openssl rand -hex 24)"
            )
        if token in seen:
            return f"{name} must differ from {seen[token]}: each token grants other rights"
        seen[token] = name
    return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
