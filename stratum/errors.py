"""Stratum's root exception.

    StratumError
    ├── EventError, MessageDecodeError      (stratum.events)
    ├── MetricDefinitionError               (stratum.metrics)
    ├── StorageError                        (stratum.storage)
    │   └── StorageUnavailableError
    ├── BrokerError                         (stratum.broker)
    └── LogUnavailableError                 (ingest: the log cannot take events now)
"""


class StratumError(Exception):
    """Base of every error Stratum raises on purpose."""


class BrokerError(StratumError):
    """The embedded broker could not be started or reached."""


class LogUnavailableError(StratumError):
    """The log (Kafka) did not accept events; the caller should retry later."""
