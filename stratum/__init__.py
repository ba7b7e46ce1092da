"""Stratum's shared package: settings, the event schema, metric definitions, window
arithmetic, aggregation state and the ClickHouse storage. Every layer imports it; it
imports no layer. The wiring that does (the CLI, the process roles) is :mod:`stratum.app`."""

__version__ = "0.1.0"
