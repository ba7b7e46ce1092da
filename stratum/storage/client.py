"""ClickHouse access through clickhouse-connect: chDB in-process or a server.

Third-party errors are translated here, where they enter, and chained, so the layers
only ever see :class:`StorageError` (bad statement, our bug) or
:class:`StorageUnavailableError` (the store cannot be reached; retry later).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse, urlunparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError, OperationalError

from stratum.errors import StratumError
from stratum.settings import Settings
from stratum.storage.schema import ddl

log = logging.getLogger(__name__)
_migrated: set[tuple[str, str]] = set()
_migrate_lock = threading.Lock()


class StorageError(StratumError):
    """ClickHouse refused a statement."""


class StorageUnavailableError(StorageError):
    """ClickHouse cannot be reached; the caller should back off and retry."""


def _translate(exc: Exception, what: str) -> StorageError:
    if isinstance(exc, OperationalError) or isinstance(exc, OSError):
        return StorageUnavailableError(f"ClickHouse unreachable during {what}: {exc}")
    return StorageError(f"ClickHouse failed during {what}: {exc}")


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Raise the driver's and the network's errors as :class:`StorageError`, chained."""
    try:
        yield
    except (ClickHouseError, OSError) as exc:
        raise _translate(exc, what) from exc


@dataclass(frozen=True, slots=True)
class ServerAuth:
    """Credentials and trust for an http(s) ClickHouse server, from the settings, over
    what the URL says (a password here needs no URL encoding)."""

    user: str | None = None
    password: str | None = None
    ca_cert: str | None = None


class Storage:
    """One component's connection. chDB clients serialise their own calls, so every
    component (worker, API, scheduler) opens its own :class:`Storage`."""

    def __init__(self, url: str, database: str, auth: ServerAuth | None = None) -> None:
        self.url = url
        self.database = database
        self._client = _connect(url, auth)
        self._insert_types: dict[tuple[str, tuple[str, ...]], Sequence[Any]] = {}

    @property
    def client(self) -> Client:
        return self._client

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        with _translated("command"):
            return self._client.command(sql, parameters=parameters)

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with _translated("query"):
            rows = self._client.query(sql, parameters=parameters).result_rows
            return [tuple(row) for row in rows]  # tuples already; the driver types a Sequence

    def query_dicts(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        with _translated("query"):
            result = self._client.query(sql, parameters=parameters)
        names = result.column_names
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
        """Row-oriented insert of small batches (checkpoints, jobs, coverage). The column
        types are asked of ClickHouse once per (table, columns) and remembered: otherwise
        every insert costs an extra DESCRIBE round trip."""
        if not rows:
            return
        full = f"{self.database}.{table}"
        key = (table, tuple(columns))
        try:
            types = self._insert_types.get(key)
            if types is None:
                types = self._client.create_insert_context(full, list(columns)).column_types
                self._insert_types[key] = types
            self._client.insert(full, rows, column_names=list(columns), column_types=types)
        except (ClickHouseError, OSError) as exc:
            self._insert_types.pop(key, None)  # the table may have changed: ask again
            raise _translate(exc, f"insert into {table}") from exc

    def insert_arrow(self, table: str, arrow_table: Any) -> None:
        with _translated(f"insert into {table}"):
            self._client.insert_arrow(f"{self.database}.{table}", arrow_table)

    def ping(self) -> bool:
        try:
            return self._client.command("SELECT 1") == 1
        except (ClickHouseError, OSError):
            return False

    def close(self) -> None:
        if not self.url.startswith("chdb://"):
            self._client.close()


def redact_url(url: str) -> str:
    """The URL without its password and query, for logs, errors and health details."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url.split("?", 1)[0]
    netloc = f"{parsed.username or ''}:***@{parsed.hostname or ''}"
    if parsed.port:
        netloc += f":{parsed.port}"
    return urlunparse(parsed._replace(netloc=netloc, query=""))


def server_options(url: str, auth: ServerAuth | None = None) -> dict[str, Any]:
    """clickhouse-connect's arguments for an ``http(s)://user:password@host:port`` URL;
    user and password are percent-encoded in the URL (a password may hold ``@`` or ``:``).
    ``auth`` (the settings' user, password, CA) wins over the URL."""
    parsed = urlparse(url)
    auth = auth or ServerAuth()
    options: dict[str, Any] = {
        "host": parsed.hostname or "localhost",
        "port": parsed.port or (8443 if parsed.scheme == "https" else 8123),
        "username": auth.user or unquote(parsed.username or "") or "default",
        "password": auth.password if auth.password is not None else unquote(parsed.password or ""),
        "secure": parsed.scheme == "https",
    }
    if auth.ca_cert and options["secure"]:
        options["ca_cert"] = auth.ca_cert
    return options


def _connect(url: str, auth: ServerAuth | None = None) -> Client:
    with _translated(f"connect to {redact_url(url)}"):
        if url.startswith("chdb://"):
            client = clickhouse_connect.get_client(dsn=url)
            # chDB runs mutations synchronously (mutations_sync = 1), a ClickHouse server
            # in the background (0). Callers write their deletes as background work (the
            # batch run's prune of superseded versions, a dropped speed generation): made
            # synchronous, the prune alone took 1.3-2 s of an incremental batch run over
            # 10 M events, growing with the history. The setting lives in the session.
            client.command("SET mutations_sync = 0")
            return client
        return clickhouse_connect.get_client(**server_options(url, auth))


def open_storage(settings: Settings, *, migrate: bool = True) -> Storage:
    """Connect, and create or migrate the schema once per process and URL."""
    url = settings.clickhouse_url
    if url.startswith("chdb://"):
        (settings.data_dir / "clickhouse").mkdir(parents=True, exist_ok=True)
    ch = settings.clickhouse
    storage = Storage(
        url, ch.database, ServerAuth(ch.user, ch.password, str(ch.ca_cert) if ch.ca_cert else None)
    )
    if migrate:
        with _migrate_lock:
            key = (url, settings.clickhouse.database)
            if key not in _migrated:
                for statement in ddl(settings.clickhouse.database):
                    storage.command(statement)
                _migrated.add(key)
                log.info("ClickHouse schema ready at %s (database %s)", redact_url(url), key[1])
    return storage


__all__ = ["DatabaseError", "Storage", "StorageError", "StorageUnavailableError", "open_storage"]
