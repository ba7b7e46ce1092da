"""Ingest: the HTTP endpoint, the producer that batches events into the log, the demo
generator."""
