"""Stratum's shared package: settings, the event schema, metric definitions, window
arithmetic, aggregation state and the ClickHouse storage. Every layer imports it; it
imports no layer (except the CLI, which wires them together)."""

__version__ = "0.1.0"
