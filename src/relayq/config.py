"""One settings object, read from the environment and an optional `.env` file.

Every setting is documented in docs/configuration.md; names and defaults follow the original
Relay service so existing deployments keep their environment files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote

# What the server's logging (uvicorn's levels) understands, lower-case.
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class ConfigError(ValueError):
    """A setting has a value that cannot be used; raised at start-up, never per request."""


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines (quotes stripped, `#` comments ignored) without touching os.environ."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _env(name: str, default: Any = None, *, doc: str = "") -> Any:
    """Declare a setting: the environment variable name rides along in the field metadata."""
    return field(default=default, metadata={"env": name, "doc": doc})


@dataclass(frozen=True, slots=True)
class Settings:
    """All runtime settings. Build with `Settings.from_env()`; tests pass overrides."""

    database_url: str = _env("DATABASE_URL", "", doc="PostgreSQL URL; empty means POSTGRES_* or embedded")
    postgres_host: str = _env("POSTGRES_HOST", "")
    postgres_port: int = _env("POSTGRES_PORT", 5432)
    postgres_database: str = _env("POSTGRES_DATABASE", "relay")
    postgres_user: str = _env("POSTGRES_USER", "postgres")
    postgres_password: str = _env("POSTGRES_PASSWORD", "")
    postgres_ssl: bool = _env("POSTGRES_SSL", False)
    pool_size: int = _env("POSTGRES_POOL_SIZE", 20, doc="maximum connections in the pool")
    pool_min_size: int = _env("POSTGRES_POOL_MIN_SIZE", 2)
    pool_idle_timeout: float = _env("POSTGRES_POOL_IDLE_TIMEOUT", 300.0, doc="seconds before an idle connection closes")
    connect_timeout: float = _env("POSTGRES_CONNECT_TIMEOUT", 5.0)
    statement_timeout_ms: int = _env("POSTGRES_STATEMENT_TIMEOUT_MS", 30000)
    statement_cache_size: int = _env("POSTGRES_STATEMENT_CACHE_SIZE", 200, doc="0 for pgbouncer transaction mode")
    bulk_statement_timeout_ms: int = _env(
        "POSTGRES_BULK_STATEMENT_TIMEOUT_MS", 3_600_000,
        doc="statement_timeout of the admin operations whose work grows with a queue (delete, purge, rename, "
            "clear, export); 0 for none",
    )
    data_dir: str = _env("RELAY_DATA_DIR", "", doc="embedded PostgreSQL data directory")
    listen_database_url: str = _env(
        "LISTEN_DATABASE_URL", "", doc="direct URL for LISTEN (live events) when DATABASE_URL goes through pgbouncer"
    )

    host: str = _env("HOST", "0.0.0.0")
    port: int = _env("PORT", 3001)
    secret_key: str = _env("SECRET_KEY", "")
    log_level: str = _env("LOG_LEVEL", "info")

    ack_timeout_seconds: int = _env("ACK_TIMEOUT_SECONDS", 30)
    max_attempts: int = _env("MAX_ATTEMPTS", 3)
    require_lock_token: bool = _env("REQUIRE_LOCK_TOKEN", False)
    max_payload_bytes: int = _env("MAX_PAYLOAD_BYTES", 1024 * 1024)
    max_request_bytes: int = _env("MAX_REQUEST_BYTES", 64 * 1024 * 1024)
    max_batch_size: int = _env("MAX_BATCH_SIZE", 10000)
    reaper_interval_ms: int = _env("REAPER_INTERVAL_MS", 500)
    maintenance_interval_seconds: float = _env(
        "MAINTENANCE_INTERVAL_SECONDS", 30.0, doc="how often each process runs retention and partition upkeep"
    )
    acknowledged_retention_hours: float = _env(
        "ACKNOWLEDGED_RETENTION_HOURS", 168.0,
        doc="default retention of acknowledged and archived messages; 0 keeps them forever",
    )
    retention_batch_size: int = _env("RETENTION_BATCH_SIZE", 5000, doc="rows one retention DELETE removes")
    maintenance_vacuum: bool = _env(
        "MAINTENANCE_VACUUM", True,
        doc="VACUUM a message table right after retention deleted rows from it, not at autovacuum's next turn",
    )
    partitions_ahead: int = _env("PARTITIONS_AHEAD", 3, doc="future time partitions kept ready per queue")
    event_flush_ms: int = _env("EVENT_FLUSH_MS", 100, doc="coalescing window for change notifications")
    event_ping_seconds: float = _env("EVENT_PING_SECONDS", 15.0, doc="SSE keep-alive ping interval")
    event_keyless_streams_max: int = _env(
        "EVENT_KEYLESS_STREAMS_MAX", 100,
        doc="with SECRET_KEY set, most event streams open at once without the key (counts only) per process",
    )
    coalesce_enabled: bool = _env("ENQUEUE_BUFFER_ENABLED", True, doc="natural batching of single-message requests")
    coalesce_max_batch: int = _env("ENQUEUE_BUFFER_MAX_SIZE", 500, doc="most items one coalesced statement carries")
    coalesce_max_inflight: int = _env(
        "ENQUEUE_BUFFER_MAX_INFLIGHT", 0,
        doc="most coalesced statements in flight per operation and queue; 0 = the pool size",
    )

    activity_log_enabled: bool = _env("ACTIVITY_LOG_ENABLED", True)
    activity_log_retention_hours: float = _env(
        "ACTIVITY_LOG_RETENTION_HOURS", 168.0, doc="age at which activity entries are deleted; 0 keeps them forever",
    )
    activity_buffer_max: int = _env("ACTIVITY_BUFFER_MAX", 50000, doc="entries held in memory before dropping")
    activity_flush_size: int = _env("ACTIVITY_FLUSH_SIZE", 500)
    activity_flush_interval_ms: int = _env("ACTIVITY_FLUSH_INTERVAL_MS", 100)
    activity_payload_max_bytes: int = _env(
        "ACTIVITY_PAYLOAD_MAX_BYTES", 10000, doc="payloads up to this size are copied into activity entries")
    activity_retention_interval_seconds: float = _env(
        "ACTIVITY_RETENTION_INTERVAL_SECONDS", 300.0, doc="how often old activity entries are removed")
    large_payload_threshold_bytes: int = _env("ACTIVITY_LARGE_PAYLOAD_THRESHOLD_BYTES", 5000)
    flash_message_threshold_ms: int = _env("ACTIVITY_FLASH_MESSAGE_THRESHOLD_MS", 500)
    long_processing_threshold_ms: int = _env("ACTIVITY_LONG_PROCESSING_THRESHOLD_MS", 10000)
    zombie_threshold_multiplier: float = _env("ACTIVITY_ZOMBIE_THRESHOLD_MULTIPLIER", 2.0)
    near_dlq_threshold: int = _env("ACTIVITY_NEAR_DLQ_THRESHOLD", 1)
    burst_threshold_count: int = _env("ACTIVITY_BURST_THRESHOLD_COUNT", 50)
    burst_threshold_seconds: float = _env("ACTIVITY_BURST_THRESHOLD_SECONDS", 5.0)
    bulk_operation_threshold: int = _env("ACTIVITY_BULK_OPERATION_THRESHOLD", 5)
    disabled_detectors: str = _env("ACTIVITY_DISABLED_DETECTORS", "", doc="comma list of anomaly types to turn off")

    @classmethod
    def from_env(
        cls, environ: dict[str, str] | None = None, dotenv: Path | None = Path(".env"), **overrides: Any
    ) -> Settings:
        """Read settings: explicit overrides > process environment > `.env` > defaults."""
        source: dict[str, str] = {}
        if dotenv is not None:
            source.update(read_dotenv(dotenv))
        source.update(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in overrides:
                values[f.name] = overrides[f.name]
                continue
            raw = source.get(f.metadata["env"])
            if raw is None or raw == "" and f.type != "str":
                continue
            values[f.name] = _convert(f.metadata["env"], f.type, raw)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Reject values that would only fail later, deep inside a request."""
        positive = {
            "POSTGRES_POOL_SIZE": self.pool_size,
            "ACK_TIMEOUT_SECONDS": self.ack_timeout_seconds,
            "MAX_ATTEMPTS": self.max_attempts,
            "MAX_PAYLOAD_BYTES": self.max_payload_bytes,
            "MAX_REQUEST_BYTES": self.max_request_bytes,
            "ACTIVITY_FLUSH_SIZE": self.activity_flush_size,
            "ACTIVITY_BUFFER_MAX": self.activity_buffer_max,
            "MAINTENANCE_INTERVAL_SECONDS": self.maintenance_interval_seconds,
            "RETENTION_BATCH_SIZE": self.retention_batch_size,
            "ACTIVITY_FLUSH_INTERVAL_MS": self.activity_flush_interval_ms,
            "ACTIVITY_RETENTION_INTERVAL_SECONDS": self.activity_retention_interval_seconds,
            "EVENT_PING_SECONDS": self.event_ping_seconds,
            "ACTIVITY_BURST_THRESHOLD_COUNT": self.burst_threshold_count,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        if self.event_keyless_streams_max < 0:
            raise ConfigError(f"EVENT_KEYLESS_STREAMS_MAX must be >= 0 (0: no stream without the key), "
                              f"got {self.event_keyless_streams_max}")
        if self.acknowledged_retention_hours < 0 or self.partitions_ahead < 1:
            raise ConfigError("ACKNOWLEDGED_RETENTION_HOURS must be >= 0 and PARTITIONS_AHEAD >= 1")
        if self.log_level.lower() not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        if self.activity_log_retention_hours < 0:
            raise ConfigError(f"ACTIVITY_LOG_RETENTION_HOURS must be >= 0, got {self.activity_log_retention_hours}")
        if self.pool_min_size > self.pool_size:
            raise ConfigError("POSTGRES_POOL_MIN_SIZE must not exceed POSTGRES_POOL_SIZE")

    @property
    def uses_embedded_database(self) -> bool:
        """No DATABASE_URL and no POSTGRES_HOST: Relay runs its own PostgreSQL."""
        return not self.database_url and not self.postgres_host

    def dsn(self) -> str:
        """The connection URL, built from POSTGRES_* when DATABASE_URL is not set."""
        if self.database_url:
            return self.database_url
        auth = quote(self.postgres_user, safe="")
        if self.postgres_password:
            auth += ":" + quote(self.postgres_password, safe="")
        url = f"postgresql://{auth}@{self.postgres_host}:{self.postgres_port}/{quote(self.postgres_database)}"
        return url + ("?sslmode=require" if self.postgres_ssl else "")

    def documented(self) -> list[tuple[str, Any, str]]:
        """(environment name, default, doc) of every setting, for docs and `relay config`."""
        return [(f.metadata["env"], f.default, f.metadata["doc"]) for f in fields(self)]


def _convert(name: str, type_name: Any, raw: str) -> Any:
    try:
        if type_name == "bool":
            return _parse_bool(name, raw)
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from exc
    return raw
