"""ClickHouse storage: schema, connection, and the reads and writes of each table."""

from stratum.storage.client import Storage, StorageError, StorageUnavailableError, open_storage

__all__ = ["Storage", "StorageError", "StorageUnavailableError", "open_storage"]
